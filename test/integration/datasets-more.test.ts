/**
 * Datasets end to end, continued (issue 6): real IexecNodes (libp2p on
 * 127.0.0.1, Helia, level), a real anvil with the hub, WASI apps.
 *
 * - an encrypted FOLDER dataset (packed into the deterministic archive, then
 *   encrypted, by `POST /v1/datasets` as `dataset publish DIR` does) used by
 *   a real task: the worker unpacks it to a folder for the app, and the
 *   app's output counts every file of it;
 * - the dataset owner's node offline: its encrypted blocks are still served
 *   by a node that fetched them, a deal that uses the dataset is made, no
 *   worker gets the key (each records DATASET_OWNER_UNREACHABLE), and past
 *   the final deadline the task is claimed and the requester refunded in
 *   full, RLC conserved (anvil time travel, no waiting).
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { createChainClient } from '../../node/chain/index.js'
import type { ChainClient } from '../../node/chain/index.js'
import { dataDirPaths } from '../../node/config/index.js'
import { catContent, packFolder } from '../../node/storage/index.js'
import { TaskStatus } from '../../contracts-abi/index.js'
import { taskId } from '../../protocols/eip712.js'
import type { IexecNode } from '../../node/node.js'
import { RLC, ok, startSwarm, waitFor } from './market-helpers.js'
import type { Swarm } from './market-helpers.js'

const WORDCOUNT = new URL('../../examples/apps/wordcount/wordcount.wasm', import.meta.url)
const MARKER = 'FOLDER-PLAINTEXT-MARKER-91d3'

async function collect (source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const p of source) parts.push(p)
  return Buffer.concat(parts)
}

/** Publishes an app module through a provider's API. */
async function publishApp (node: IexecNode, name: string, module: Uint8Array): Promise<void> {
  const added = await ok(node, 'POST', '/v1/content', { data: Buffer.from(module).toString('base64') })
  await ok(node, 'POST', '/v1/apps', { name, cid: added.cid, checksum: added.checksum, price: '0' })
}

async function waitForDatasetOrder (nodes: IexecNode[], dataset: string): Promise<void> {
  for (const n of nodes) {
    await waitFor(async () => ((await ok(n, 'GET', `/v1/orderbook?type=dataset&dataset=${dataset}`)).orders as unknown[]).length === 1, 15_000, 'dataset order in the book')
  }
}

async function taskStatusOf (node: IexecNode, dealId: string): Promise<string> {
  return (((await ok(node, 'GET', `/v1/deals/${dealId}`)).tasks as Array<{ status: string }>)[0]).status
}

/** The report foldercount (examples/apps/foldercount) prints for one file: what the test expects of it. */
function folderCountLine (name: string, text: string): string {
  const words = text.split(/[ \t\n\r\v\f]+/).filter((w) => w !== '').length
  const lines = [...text].filter((c) => c === '\n').length
  return `${name} lines=${lines} words=${words} bytes=${Buffer.byteLength(text)}\n`
}

describe('datasets through the node, more: a folder dataset in a task; the owner offline (anvil, WASI)', function () {
  this.timeout(300_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  it('an encrypted folder dataset is unpacked to a folder for the app: the result counts each of its files', async () => {
    const s = await startSwarm({ providers: 2, requesters: 1, market: { biddingWindowMs: 3_000 } }, cleanup)
    const owner = s.requesters[0]
    const [p0] = s.providers
    await publishApp(p0, 'foldercount', new Uint8Array(await readFile(new URL('../../examples/apps/foldercount/foldercount.wasm', import.meta.url))))

    // a folder with a nested one: the archive keeps the structure
    const folder = join(s.root, 'corpus')
    const files: Record<string, string> = {
      'a.txt': `${MARKER} alpha beta\ngamma\n`,
      'notes/b.md': '# title\n\nsome words here\n',
      'notes/deep/c.csv': `x,y\n1,2\n3,4 ${MARKER}\n`
    }
    for (const [name, text] of Object.entries(files)) {
      await mkdir(dirname(join(folder, name)), { recursive: true })
      await writeFile(join(folder, name), text)
    }
    const pub = await ok(owner, 'POST', '/v1/datasets', { path: folder, name: 'corpus-folder', apps: ['foldercount'] })
    const dataset = String(pub.address)
    assert.equal(pub.kind, 'folder')
    assert.equal(pub.encrypted, true)
    // the registry's checksum is the sha256 of the deterministic archive of the folder
    const archive = await collect(packFolder(folder))
    assert.equal(pub.checksum, '0x' + createHash('sha256').update(archive).digest('hex'))
    // what the swarm can read is ciphertext: no file's text, no file name
    const ciphertext = await collect(catContent(p0.network.helia, String(pub.cid), { timeoutMs: 20_000 }))
    assert.equal(ciphertext.indexOf(MARKER), -1, 'the ciphertext holds no plaintext')
    assert.equal(ciphertext.indexOf('notes/deep'), -1, 'nor the archive\'s paths')
    await waitForDatasetOrder(s.all, dataset)

    const deal = await ok(owner, 'POST', '/v1/tasks', { app: 'foldercount', dataset, trust: 1, args: Object.keys(files).join(' '), maxPrice: (20n * RLC).toString() })
    const dealId = String(deal.dealId)
    await waitFor(async () => await taskStatusOf(owner, dealId) === 'COMPLETED', 120_000, 'the task COMPLETED')
    const result = await ok(owner, 'GET', `/v1/results/${taskId(dealId, 0)}`)
    assert.equal(result.stdout, Object.entries(files).map(([name, text]) => folderCountLine(name, text)).join(''))
  })

  it('the owner offline: blocks still served by a node that fetched them, but no worker gets the key; the task is claimed at its final deadline and the requester refunded in full', async () => {
    const s: Swarm = await startSwarm({ providers: 2, requesters: 2, market: { biddingWindowMs: 3_000 } }, cleanup)
    const [owner, requester] = s.requesters
    const [p0, p1] = s.providers
    await publishApp(p0, 'wordcount', await readFile(WORDCOUNT))
    const path = join(s.root, 'corpus.txt')
    await writeFile(path, 'alpha beta\ngamma\n')
    const pub = await ok(owner, 'POST', '/v1/datasets', { path, name: 'corpus', price: (1n * RLC).toString(), apps: ['wordcount'] })
    const dataset = String(pub.address)
    const cid = String(pub.cid)
    await waitForDatasetOrder(s.all, dataset)
    // p0 fetched the blocks (as a worker of an earlier task would have), then the owner goes away
    const ciphertext = await collect(catContent(p0.network.helia, cid, { timeoutMs: 20_000 }))
    await owner.stop()
    // the first half of the README's promise: the blocks are still there, served by p0
    assert.deepEqual(await collect(catContent(p1.network.helia, cid, { timeoutMs: 20_000, stallTimeoutMs: 10_000 })), ciphertext)

    const chain: ChainClient = await createChainClient({ rpcUrl: s.anvil.rpcUrl, privateKey: s.anvil.privateKeys[1], hub: s.chain.hub, rlc: s.chain.rlc })
    cleanup.push(async () => { await chain.close() })
    const hub = chain.hub!
    const [before, frozenBefore] = await hub.accountOf(requester.address)

    // a deal made while the owner is offline: its signed order is in every book
    const deal = await ok(requester, 'POST', '/v1/tasks', { app: 'wordcount', dataset, trust: 1, maxPrice: (20n * RLC).toString() })
    const dealId = String(deal.dealId)
    const tid = taskId(dealId, 0)
    const [during, frozen] = await hub.accountOf(requester.address)
    assert.ok(frozen > frozenBefore && before - during === frozen - frozenBefore, 'the payment is frozen')

    // every worker that tries is refused by absence: the record and the log say why, as a code
    const failedOn = async (p: IexecNode): Promise<boolean> => {
      const rec = await p.execution?.worker.task(tid)
      return rec?.state === 'failed' && rec.errorCode === 'DATASET_OWNER_UNREACHABLE'
    }
    await waitFor(async () => await failedOn(p0) || await failedOn(p1), 60_000, 'a worker failed the task for want of the key')
    const worker = await failedOn(p0) ? p0 : p1
    // the log line follows the record by a moment
    const logged = async (): Promise<boolean> => (await readFile(dataDirPaths(worker.dataDir).logs, 'utf8')).split('\n')
      .filter((l) => l.includes('"msg":"task failed"'))
      .some((l) => { const e = JSON.parse(l) as { taskid?: string, code?: string }; return e.taskid === tid && e.code === 'DATASET_OWNER_UNREACHABLE' })
    await waitFor(logged, 5_000, 'node.log records the task failed with DATASET_OWNER_UNREACHABLE')
    assert.notEqual(Number(await hub.taskStatus(dealId, 0)), TaskStatus.COMPLETED, 'the task did not run')

    // past the final deadline (anvil time travel), a scheduler claims the task
    const final = Number(((await ok(requester, 'GET', `/v1/deals/${dealId}`)).deadlines as { final: number }).final)
    const now = (await chain.provider.getBlock('latest'))!.timestamp
    await chain.provider.send('evm_increaseTime', [final - now + 1])
    await chain.provider.send('evm_mine', [])
    await waitFor(async () => Number(await hub.taskStatus(dealId, 0)) === TaskStatus.FAILED, 60_000, 'the task claimed')
    for (const p of s.providers) {
      const rec = await p.execution?.worker.task(tid)
      assert.ok(rec === undefined || rec.state === 'failed', `no worker got further than failing (${rec?.state ?? 'none'})`)
    }
    const [after, frozenAfter] = await hub.accountOf(requester.address)
    assert.equal(after, before, 'the requester is refunded in full')
    assert.equal(frozenAfter, frozenBefore)
    // nothing was paid to the dataset's owner for a task that did not run
    const [ownerBalance] = await hub.accountOf(owner.address)
    assert.equal(ownerBalance, 10_000n * RLC)

    // conservation: the hub holds exactly what its accounts and the kitty add up to
    let accounted = await hub.kitty()
    for (const n of s.all) {
      const [balance, locked] = await hub.accountOf(n.address)
      const [stake] = await hub.stakeOf(n.address)
      accounted += balance + locked + stake
    }
    assert.equal(await chain.rlc!.balanceOf(s.chain.hub), accounted, 'RLC conservation')
  })
})
