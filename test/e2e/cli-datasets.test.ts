import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isAlive } from '../../node/cli/processes.js'
import type { SwarmFile, SwarmUpJson } from '../../node/cli/index.js'
import type { DatasetDetails, DealView, OwnDatasetView, UnpublishedDataset } from '../../node/api/client.js'
import { assertBuilt, jsonError, pollUntil, runCli, type RunResult } from './cli-helpers.js'

/**
 * The dataset CLI against a real swarm (`swarm up`: anvil, hub, 1 requester
 * and 3 providers as separate processes): publish (file and folder, --json
 * and human with progress), list, show, a task over the encrypted dataset,
 * unpublish, and bad input.
 */
describe('e2e: the dataset CLI on a 4-node swarm with a local chain', function () {
  this.timeout(300_000)
  let dir = ''
  let swarmDir = ''
  let file: SwarmFile | undefined
  let swarm: SwarmUpJson

  const dataDir = (i: number): string => join(swarmDir, `node-${i}`)
  const on = async (i: number, args: string[], timeoutMs?: number): Promise<RunResult> => await runCli([...args, '--data-dir', dataDir(i)], timeoutMs)
  async function json<T> (i: number, args: string[], timeoutMs?: number): Promise<T> {
    const r = await on(i, [...args, '--json'], timeoutMs)
    assert.equal(r.code, 0, `${args.join(' ')} on node-${i}: ${r.stderr}`)
    return JSON.parse(r.stdout) as T
  }

  before(async () => {
    assertBuilt()
    dir = await mkdtemp(join(tmpdir(), 'iexec-e2e-datasets-'))
    swarmDir = join(dir, 'swarm')
    const up = await runCli(['swarm', 'up', '--nodes', '4', '--dir', swarmDir, '--json'], 240_000)
    if (existsSync(join(swarmDir, 'swarm.json'))) file = JSON.parse(await readFile(join(swarmDir, 'swarm.json'), 'utf8')) as SwarmFile
    assert.equal(up.code, 0, up.stderr)
    swarm = JSON.parse(up.stdout) as SwarmUpJson
    assert.equal(swarm.nodes[0].role, 'requester')
  })

  after(async () => {
    if (swarmDir !== '') await runCli(['swarm', 'down', '--dir', swarmDir], 60_000).catch(() => {})
    // whatever failed, nothing of this test may outlive it
    for (const pid of [...(file?.nodes.map((n) => n.pid) ?? []), file?.chain?.pid ?? 0]) {
      if (pid > 0 && await isAlive(pid)) {
        try { process.kill(pid, 'SIGKILL') } catch {}
      }
    }
    if (dir !== '') await rm(dir, { recursive: true, force: true })
  })

  it('publish --json, list, show on another node, a task over the encrypted dataset, unpublish', async () => {
    const text = 'one two three\nfour five\nsix\n'
    const path = join(dir, 'words.txt')
    await writeFile(path, text)
    // the app first: the owner allows it alone to read the dataset
    const app = await json<{ address: string }>(1, ['app', 'publish', 'examples/apps/wordcount/wordcount.wasm', '--name', 'wc-datasets'])
    // the requester node owns it: workers find it by its owner CID (it publishes no advert)
    const pub = await json<{ address: string, cid: string, checksum: string, orderHash: string, orderHashes: string[], policy: { apps: string[] } }>(0, ['dataset', 'publish', path, '--name', 'words', '--price', '1RLC', '--app', 'wc-datasets'])
    assert.deepEqual(Object.keys(pub).sort(), ['address', 'checksum', 'cid', 'orderHash', 'orderHashes', 'policy'])
    assert.match(pub.address, /^0x[0-9a-fA-F]{40}$/)
    assert.equal(pub.checksum, '0x' + createHash('sha256').update(text).digest('hex'))
    assert.match(pub.orderHash, /^0x[0-9a-f]{64}$/)
    assert.deepEqual(pub.orderHashes, [pub.orderHash])
    assert.deepEqual(pub.policy.apps, [app.address])

    // a folder, in clear
    const folder = join(dir, 'folder')
    await mkdir(join(folder, 'sub'), { recursive: true })
    await writeFile(join(folder, 'a.txt'), 'a\n')
    await writeFile(join(folder, 'sub', 'b.txt'), 'b\n')
    const plain = await json<{ address: string }>(0, ['dataset', 'publish', folder, '--no-encrypt', '--any-app', '--free'])

    const list = await json<OwnDatasetView[]>(0, ['dataset', 'list'])
    assert.deepEqual(list.map((d) => [d.address, d.name, d.encrypted, d.kind, d.published]), [
      [pub.address, 'words', true, 'file', true],
      [plain.address, 'folder', false, 'folder', true]
    ])
    assert.equal(list[0].price, (10n ** 9n).toString())
    assert.deepEqual(list[0].orders, [pub.orderHash])
    const human = await on(0, ['dataset', 'list'])
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.stdout, /ADDRESS\s+NAME\s+STATE/)
    assert.ok(human.stdout.includes(pub.address))

    // another node sees it on the hub and, once gossiped, its order
    const shown = await pollUntil('the dataset order on node-2', async () => await json<DatasetDetails>(2, ['dataset', 'show', pub.address]),
      (d) => d.orders.length === 1, 30_000, 300)
    assert.equal(shown.owner, swarm.nodes[0].address)
    assert.equal(shown.cid, pub.cid)
    assert.equal(shown.mine, false)
    assert.equal(shown.orders[0].orderHash, pub.orderHash)

    // a task over it: the worker fetches the ciphertext, gets the key from node-0, counts the words
    await pollUntil('the app order on node-0', async () => await json<{ orders: Array<{ orderHash: string }> }>(0, ['orderbook', 'app', '--app', app.address]),
      (b) => b.orders.length > 0, 30_000, 300)
    const deal = await json<{ dealId: string }>(0, ['task', 'submit', '--app', 'wc-datasets', '--dataset', pub.address, '--bidding-window', '3000'], 150_000)
    const done = await pollUntil('the task to end', async () => await json<DealView>(0, ['deal', 'show', deal.dealId]),
      (d) => d.tasks.every((t) => t.status === 'COMPLETED' || t.status === 'FAILED'), 120_000, 300)
    assert.deepEqual(done.tasks.map((t) => t.status), ['COMPLETED'])
    assert.equal(done.dataset, pub.address)
    const result = await json<{ stdout: string }>(0, ['result', 'get', done.tasks[0].taskId], 90_000)
    assert.equal(result.stdout, `dataset lines=3 words=6 bytes=${Buffer.byteLength(text)}\n`)

    // a file published in clear: the worker checks its sha256 and asks nobody for a key
    const clearPath = join(dir, 'clear.txt')
    await writeFile(clearPath, 'in clear\n')
    // --any-app: it works, and the owner is warned on stderr
    const anyApp = await on(0, ['dataset', 'publish', clearPath, '--no-encrypt', '--any-app', '--free', '--json'])
    assert.equal(anyApp.code, 0, anyApp.stderr)
    assert.match(anyApp.stderr, /^warning: --any-app lets ANY app read this dataset/m)
    const clear = JSON.parse(anyApp.stdout) as { address: string, orderHash: string, policy: { apps: unknown } }
    assert.equal(clear.policy.apps, 'any')
    const clearDeal = await json<{ dealId: string }>(0, ['task', 'submit', '--app', 'wc-datasets', '--dataset', clear.address, '--bidding-window', '3000'], 150_000)
    const clearDone = await pollUntil('the clear-dataset task to end', async () => await json<DealView>(0, ['deal', 'show', clearDeal.dealId]),
      (d) => d.tasks.every((t) => t.status === 'COMPLETED' || t.status === 'FAILED'), 120_000, 300)
    assert.deepEqual(clearDone.tasks.map((t) => t.status), ['COMPLETED'])
    const clearResult = await json<{ stdout: string }>(0, ['result', 'get', clearDone.tasks[0].taskId], 90_000)
    assert.equal(clearResult.stdout, 'dataset lines=1 words=2 bytes=9\n')

    // unpublish: its order is cancelled, then gone from the other books
    const un = await json<UnpublishedDataset>(0, ['dataset', 'unpublish', pub.address])
    assert.deepEqual(un.cancelled.map((c) => c.orderHash), [pub.orderHash])
    assert.equal(un.keyRemoved, true)
    await pollUntil('the order gone from node-2', async () => await json<DatasetDetails>(2, ['dataset', 'show', pub.address]), (d) => d.orders.length === 0, 30_000, 300)
    const none = await on(0, ['task', 'submit', '--app', 'wc-datasets', '--dataset', pub.address, '--bidding-window', '1000', '--json'], 60_000)
    assert.equal(none.code, 1)
    assert.equal(jsonError(none).code, 'NO_DATASET_ORDER')
    const after = await json<OwnDatasetView[]>(0, ['dataset', 'list'])
    assert.equal(after[0].published, false)
    const again = await on(0, ['dataset', 'unpublish', pub.address])
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stdout, /no live order to cancel/)
  })

  it('publish without --json shows its phases on stderr while a 64 MiB file is encrypted and added', async () => {
    const path = join(dir, 'big.bin')
    await writeFile(path, randomBytes(64 * 1024 * 1024))
    const t0 = Date.now()
    const r = await on(3, ['dataset', 'publish', path, '--name', 'big', '--any-app', '--price', '5'], 240_000)
    const ms = Date.now() - t0
    assert.equal(r.code, 0, r.stderr)
    console.info(`      dataset publish of 64 MiB (encrypt, add, register, order): ${(ms / 1000).toFixed(1)} s`)
    assert.match(r.stdout, /dataset big published: 67108864 bytes \(file\), encrypted/)
    assert.match(r.stdout, /^address 0x[0-9a-fA-F]{40}$/m)
    assert.match(r.stderr, /(encrypting|adding to the swarm)…/, `progress lines on stderr, got: ${r.stderr}`)
  })

  it('bad input: one clear line, the right code and exit code', async () => {
    const missing = await on(0, ['dataset', 'publish', '--json'])
    assert.equal(missing.code, 2)
    assert.equal(jsonError(missing).code, 'CLI_MISSING_ARGUMENT')
    const unreadable = await on(0, ['dataset', 'publish', join(dir, 'no-such-file'), '--any-app', '--free', '--json'])
    assert.equal(unreadable.code, 1)
    assert.equal(jsonError(unreadable).code, 'CLI_FILE_UNREADABLE')
    const special = await on(0, ['dataset', 'publish', '/dev/null', '--any-app', '--free', '--json'])
    assert.equal(special.code, 2)
    assert.equal(jsonError(special).code, 'CLI_BAD_OPTION')
    await writeFile(join(dir, 'p.txt'), 'x')
    for (const price of ['abc', '-1', '1.0000000001RLC']) {
      const r = await on(0, ['dataset', 'publish', join(dir, 'p.txt'), '--price', price, '--any-app', '--json'])
      assert.equal(r.code, 2, `--price ${price}`)
      assert.equal(jsonError(r).code, 'CLI_BAD_OPTION')
    }
    for (const cmd of ['show', 'unpublish']) {
      const r = await on(0, ['dataset', cmd, '0x1234', '--json'])
      assert.equal(r.code, 2)
      assert.equal(jsonError(r).code, 'CLI_BAD_OPTION')
    }
    // a well-formed address no dataset has
    const unknown = await on(0, ['dataset', 'show', `0x${'ab'.repeat(20)}`, '--json'])
    assert.equal(unknown.code, 1)
    assert.equal(jsonError(unknown).code, 'DATASET_NOT_FOUND')
    // someone else's dataset: node-3 published big.bin above, node-0 may not unpublish it
    const others = (await json<OwnDatasetView[]>(3, ['dataset', 'list']))
    assert.ok(others.length >= 1, 'node-3 has a dataset')
    const notMine = await on(0, ['dataset', 'unpublish', others[0].address, '--json'])
    assert.equal(notMine.code, 1)
    assert.equal(jsonError(notMine).code, 'DATASET_NOT_OWNED')
    // who may use it: each bad flag is a usage error (exit 2) before anything reaches the node;
    // an unknown app is the node's answer (exit 1); nothing is published either way
    const listed = (await json<OwnDatasetView[]>(0, ['dataset', 'list'])).length
    const p = join(dir, 'p.txt')
    const policyCases: Array<[string[], number, string]> = [
      [['--price', '1'], 2, 'DATASET_APPS_REQUIRED'],
      [['--price', '1', '--app', 'x', '--any-app'], 2, 'CLI_BAD_OPTION'],
      [['--price', '1', '--app', '0x12'], 2, 'CLI_BAD_OPTION'],
      [['--price', '1', '--app', 'has space'], 2, 'CLI_BAD_OPTION'],
      [['--price', '1', '--any-app', '--requester', '0x12'], 2, 'CLI_BAD_OPTION'],
      [['--price', '1', '--any-app', '--tag', 'region:mars'], 2, 'CLI_BAD_OPTION'],
      [['--price', '1', '--any-app', '--volume', '-1'], 2, 'CLI_BAD_OPTION'],
      [['--price', '1', '--any-app', '--volume', '0'], 2, 'CLI_BAD_OPTION'],
      [['--price', '1', '--any-app', '--volume', 'many'], 2, 'CLI_BAD_OPTION'],
      [['--any-app'], 2, 'CLI_MISSING_ARGUMENT'],
      [['--any-app', '--price', '0'], 2, 'CLI_BAD_OPTION'],
      [['--any-app', '--price', '1', '--free'], 2, 'CLI_BAD_OPTION'],
      [['--price', '1', '--app', 'no-such-app'], 1, 'APP_NOT_FOUND'],
      [['--price', '1', '--app', `0x${'ab'.repeat(20)}`], 1, 'APP_NOT_FOUND']
    ]
    for (const [flags, code, error] of policyCases) {
      const r = await on(0, ['dataset', 'publish', p, ...flags, '--json'])
      assert.equal(r.code, code, flags.join(' '))
      assert.equal(jsonError(r).code, error, flags.join(' '))
      assert.equal(r.stderr.includes('warning: --any-app'), false, 'no warning for a publish that did not happen')
    }
    assert.equal((await json<OwnDatasetView[]>(0, ['dataset', 'list'])).length, listed, 'nothing published')
    const noChoice = await on(0, ['dataset', 'publish', p, '--price', '1'])
    assert.equal(noChoice.code, 2)
    assert.match(noChoice.stderr, /--app ADDR\|NAME.*--any-app/, 'the error explains both choices')
    // app publish takes the same flags: bad ones stop it before the module is added
    const appCases: Array<[string[], number, string]> = [
      [['--dataset', '0x12'], 2, 'CLI_BAD_OPTION'],
      [['--requester', 'me'], 2, 'CLI_BAD_OPTION'],
      [['--tag', 'fast'], 2, 'CLI_BAD_OPTION'],
      [['--volume', '-3'], 2, 'CLI_BAD_OPTION'],
      [['--dataset', `0x${'cd'.repeat(20)}`], 1, 'DATASET_NOT_FOUND']
    ]
    for (const [flags, code, error] of appCases) {
      const r = await on(1, ['app', 'publish', 'examples/apps/copy/copy.wasm', '--name', 'copy-bad', ...flags, '--json'])
      assert.equal(r.code, code, flags.join(' '))
      assert.equal(jsonError(r).code, error, flags.join(' '))
    }

    // human form: one line with the code
    const h = await on(0, ['dataset', 'show', 'nope'])
    assert.equal(h.code, 2)
    assert.match(h.stderr.trim(), /^iexec-p2p: .* \(CLI_BAD_OPTION\)$/)
  })
})
