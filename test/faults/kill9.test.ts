/**
 * Node processes killed with SIGKILL at each state of a task, then
 * restarted on their data dirs: real node processes (`swarm up`, the built
 * CLI), real anvil. The states are reached deterministically: the test
 * reads each node's node.log (the worker's "task assigned") and holds the
 * chain (automine off) so that a transaction waits in anvil's pool until
 * the test has killed its sender; the test then mines by hand, holding
 * back only the kind of transaction it waits for.
 *
 * States covered: assigned (trust 1); commit sent but not mined (trust 1
 * and trust 3: the restarted worker finds it in the pool and sends no
 * second one); computed with its commit lost (trust 3: the commit is
 * dropped from the pool once its sender is dead); contributed (trust 3,
 * its commit mined, consensus not reached yet); revealing (its reveal
 * sent, not mined); finalize sent (the scheduler, its finalize not mined).
 * Each ends with the task completed once, no worker contributing twice,
 * and the hub's RLC accounted for to the nRLC.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HDNodeWallet, Mnemonic, Wallet } from 'ethers'
import { isAlive } from '../../node/cli/processes.js'
import type { SwarmFile } from '../../node/cli/index.js'
import type { DealView, OrderbookEntry, SubmittedTask } from '../../node/api/client.js'
import { ANVIL_MNEMONIC, createChainClient, hubInterface, type ChainClient } from '../../node/chain/index.js'
import { SWARM_PROVIDER_PRICE } from '../../node/cli/swarm.js'
import { assertBuilt, CliProcess, pollUntil, runCli } from '../e2e/cli-helpers.js'

interface PoolTx { hash: string, from: string, selector: string, nonce: number }

const hubAbi = hubInterface()
const SELECTOR = {
  initialize: hubAbi.getFunction('initialize')!.selector,
  contribute: hubAbi.getFunction('contribute')!.selector,
  contributeAndFinalize: hubAbi.getFunction('contributeAndFinalize')!.selector,
  multicall: hubAbi.getFunction('multicall')!.selector,
  reveal: hubAbi.getFunction('reveal')!.selector,
  finalize: hubAbi.getFunction('finalize')!.selector
}
const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase()

describe('faults: kill -9 at every task state, restarted (node processes, anvil)', function () {
  this.timeout(600_000)
  let dir = ''
  let swarmDir = ''
  let file: SwarmFile | undefined
  let reader: ChainClient | undefined
  /** the processes this test restarted (the swarm's own are in `file`) */
  const procs: CliProcess[] = []
  /** each node's live pid (a restart replaces it) */
  const pids = new Map<number, number>()
  let id = 0

  const f = (): SwarmFile => file as SwarmFile
  const dataDir = (i: number): string => join(swarmDir, `node-${i}`)
  const json = async <T>(i: number, args: string[], timeoutMs?: number): Promise<T> => {
    const r = await runCli([...args, '--data-dir', dataDir(i), '--json'], timeoutMs)
    assert.equal(r.code, 0, `${args.join(' ')} on node-${i}: ${r.stderr}`)
    return JSON.parse(r.stdout) as T
  }
  const rpc = async <T>(method: string, params: unknown[] = []): Promise<T> => {
    const res = await fetch(f().chain!.rpc, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: ++id, method, params }) })
    const body = await res.json() as { result?: T, error?: { message: string } }
    if (body.error !== undefined) throw new Error(`${method}: ${body.error.message}`)
    return body.result as T
  }
  const pool = async (): Promise<PoolTx[]> => {
    const content = await rpc<{ pending: Record<string, Record<string, { hash: string, from: string, input: string, nonce: string }>> }>('txpool_content')
    return Object.values(content.pending).flatMap((byNonce) => Object.values(byNonce))
      .map((t) => ({ hash: t.hash, from: t.from, selector: t.input.slice(0, 10), nonce: Number(t.nonce) }))
  }
  const indexOf = (address: string): number => f().nodes.findIndex((n) => same(n.address, address))
  const logOf = async (i: number): Promise<Array<Record<string, unknown>>> =>
    (await readFile(join(dataDir(i), 'node.log'), 'utf8')).split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l) as Record<string, unknown> } catch { return {} } })

  /**
   * Mines by hand until `done` holds: a block whenever anvil's pool holds
   * transactions and none of them is `held` (a block takes the whole pool),
   * the same ones on two reads 50 ms apart (a held one sent meanwhile would
   * be mined with them).
   */
  const drive = async (what: string, held: (t: PoolTx) => boolean, done: (txs: PoolTx[]) => boolean | Promise<boolean>, timeoutMs = 120_000): Promise<PoolTx[]> => {
    const deadline = Date.now() + timeoutMs
    while (true) {
      const txs = await pool()
      if (await done(txs)) return txs
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms driving the chain to ${what}; pool: ${JSON.stringify(txs)}`)
      if (txs.length > 0 && !txs.some(held)) {
        await new Promise((r) => setTimeout(r, 50))
        const again = await pool()
        if (again.length === txs.length && again.every((t) => txs.some((u) => u.hash === t.hash))) await rpc('evm_mine')
      }
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  const kill = async (i: number): Promise<void> => {
    const pid = pids.get(i) as number
    process.kill(pid, 'SIGKILL')
    await pollUntil(`node-${i} to die`, async () => await isAlive(pid), (alive) => !alive, 10_000, 50)
  }
  /** Starts node i again on its data dir, as `swarm up` started it. */
  const restart = async (i: number): Promise<void> => {
    const n = f().nodes[i]
    const boot = f().nodes.filter((_, j) => j !== i).map((m) => m.multiaddrs[0])
    const p = new CliProcess(['start', '--data-dir', n.dataDir, '--swarm-key', f().swarmKeyFile, '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0',
      ...(n.role === 'requester' ? ['--requester'] : ['--price', SWARM_PROVIDER_PRICE.toString()]),
      ...boot.flatMap((b) => ['--bootstrap', b]), '--json'])
    procs.push(p)
    await p.waitFor(`node-${i} to be ready again`, () => p.stdout.includes('{'), 120_000)
    pids.set(i, p.child.pid as number)
  }

  const dealEnds = async (dealId: string): Promise<DealView> => await pollUntil(`deal ${dealId} to end`, async () => await json<DealView>(0, ['deal', 'show', dealId]),
    (d) => d.tasks.every((t) => t.status === 'COMPLETED' || t.status === 'FAILED'), 240_000, 500)

  /** One TaskFinalized, no worker's TaskContributed twice, and none of `nodes` ever logged the task failed. */
  const assertClean = async (taskid: string, nodes: number[]): Promise<void> => {
    const hub = reader!.hub!
    const from = f().chain!.blockNumber
    assert.equal((await hub.queryFilter(hub.filters.TaskFinalized(taskid), from)).length, 1, 'finalized once')
    const contributed = await hub.queryFilter(hub.filters.TaskContributed(taskid), from)
    const workers = contributed.map((e) => (e.args.worker as string).toLowerCase())
    assert.equal(new Set(workers).size, workers.length, `no worker contributed twice: ${workers.join(', ')}`)
    for (const i of new Set(nodes)) {
      const failed = (await logOf(i)).filter((l) => l.msg === 'task failed' && same(String(l.taskid), taskid))
      assert.deepEqual(failed, [], `node-${i} never marks the task failed`)
    }
  }
  /** Waits for node i to log `msg` about the task. */
  const logged = async (i: number, msg: string, taskid: string, extra: Record<string, unknown> = {}): Promise<void> => {
    await pollUntil(`node-${i} to log "${msg}"`, async () => (await logOf(i)).some((l) => l.msg === msg && same(String(l.taskid), taskid) &&
      Object.entries(extra).every(([k, v]) => l[k] === v)), (found) => found, 120_000, 100)
  }

  /** sum of accounts + frozen + stakes + kitty is the hub's RLC, and every RLC of the supply is somewhere known */
  const assertConserved = async (): Promise<void> => {
    const hub = reader!.hub!
    const rlc = reader!.rlc!
    let accounted = await hub.kitty()
    let held = await rlc.balanceOf(f().chain!.hub)
    for (const n of f().nodes) {
      const [balance, frozen] = await hub.accountOf(n.address)
      const [stake] = await hub.stakeOf(n.address)
      accounted += balance + frozen + stake
      held += await rlc.balanceOf(n.address)
    }
    assert.equal(await rlc.balanceOf(f().chain!.hub), accounted, 'RLC conserved to the nRLC')
    const deployer = HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(ANVIL_MNEMONIC), "m/44'/60'/0'/0/0").address
    held += await rlc.balanceOf(deployer)
    assert.equal(held, await rlc.totalSupply(), 'the total supply is held by the hub, the nodes and the deployer')
  }

  before(async () => {
    assertBuilt()
    dir = await mkdtemp(join(tmpdir(), 'iexec-kill9-'))
    swarmDir = join(dir, 'swarm')
    const up = await runCli(['swarm', 'up', '--nodes', '4', '--dir', swarmDir, '--json'], 240_000)
    if (existsSync(join(swarmDir, 'swarm.json'))) file = JSON.parse(await readFile(join(swarmDir, 'swarm.json'), 'utf8')) as SwarmFile
    assert.equal(up.code, 0, up.stderr)
    f().nodes.forEach((n, i) => pids.set(i, n.pid))
    const chain = f().chain!
    reader = await createChainClient({ rpcUrl: chain.rpc, privateKey: Wallet.createRandom().privateKey, hub: chain.hub, rlc: chain.rlc })
    // the chain's clock an hour ahead of the wall clock: while the test holds the chain (no block for
    // a minute or more), no node's watchdog sees a deadline due by the wall clock and mines a block
    // (scheduler letTimePass), which would take the held transactions with it
    await rpc('evm_increaseTime', [3600])
    await rpc('evm_mine')
    const app = await json<{ orderHash: string }>(2, ['app', 'publish', 'examples/apps/primes/primes.wasm', '--name', 'primes-k9', '--price', '0'])
    await pollUntil('the app order in node-0\'s book', async () => await json<{ orders: OrderbookEntry[] }>(0, ['orderbook', 'app']),
      (b) => b.orders.some((o) => o.orderHash === app.orderHash), 30_000, 300)
  })

  after(async () => {
    if (file?.chain != null) await rpc('evm_setAutomine', [true]).catch(() => {})
    for (const p of procs) await p.stop()
    await reader?.close()
    if (dir === '') return
    await runCli(['swarm', 'down', '--dir', swarmDir], 60_000).catch(() => {})
    for (const pid of [...pids.values(), ...(file?.nodes.map((n) => n.pid) ?? []), file?.chain?.pid ?? 0]) {
      if (pid > 0 && await isAlive(pid)) {
        try { process.kill(pid, 'SIGKILL') } catch {}
      }
    }
    // KILL9_KEEP=1 keeps the swarm dir (the nodes' node.log) to read after a failure
    if (process.env.KILL9_KEEP === undefined) await rm(dir, { recursive: true, force: true })
  })

  it('trust 1: a worker killed once assigned, then one killed with its commit sent but not mined: completed once', async () => {
    const deal = await json<SubmittedTask>(0, ['task', 'submit', '--app', 'primes-k9', '--args', '20000000', '--bidding-window', '3000'], 150_000)
    const taskid = deal.tasks[0].taskId
    // held from here: no commit lands before the test has killed its sender
    await rpc('evm_setAutomine', [false])
    const assigned = await pollUntil('a worker to log the assignment', async () => {
      for (const i of f().nodes.keys()) {
        if ((await logOf(i)).some((l) => l.component === 'worker' && l.msg === 'task assigned' && same(String(l.taskid), taskid))) return i
      }
      return -1
    }, (i) => i >= 0, 60_000, 50)
    await kill(assigned)
    await restart(assigned)
    // the restarted worker computes it again (or the scheduler gave it to another): its commit waits in the pool
    const isCommit = (t: PoolTx): boolean => t.selector === SELECTOR.contributeAndFinalize || t.selector === SELECTOR.multicall
    const commits = await drive('a commit of the task in the pool', isCommit, (txs) => txs.some(isCommit))
    const sender = indexOf(commits.find(isCommit)!.from)
    assert.ok(sender >= 0, 'the commit comes from a swarm node')
    await kill(sender)
    await restart(sender)
    // the restarted worker finds its commit in the pool and sends no second one
    await logged(sender, 'transaction of an earlier run pending: waiting for it', taskid, { what: 'commit' })
    await rpc('evm_setAutomine', [true])
    await rpc('evm_mine')
    const done = await dealEnds(deal.dealId)
    assert.deepEqual(done.tasks.map((t) => t.status), ['COMPLETED'])
    await assertClean(taskid, [sender])
    await assertConserved()
  })

  it('trust 3: workers killed with a commit sent, computed, contributed and revealing, the scheduler with its finalize sent: completed, nothing doubled', async () => {
    const deal = await json<SubmittedTask>(0, ['task', 'submit', '--app', 'primes-k9', '--args', '2000000', '--trust', '3', '--bidding-window', '3000'], 150_000)
    const taskid = deal.tasks[0].taskId
    await rpc('evm_setAutomine', [false])
    const isCommit = (t: PoolTx): boolean => t.selector === SELECTOR.contribute
    // the scheduler's initialize is mined; the two workers' commits wait
    const pending = await drive('two commits in the pool', isCommit, (txs) => txs.filter(isCommit).length >= 2)
    const [a, b] = pending.filter(isCommit).map((t) => ({ tx: t, node: indexOf(t.from) }))
    assert.ok(a.node >= 0 && b.node >= 0 && a.node !== b.node, 'the commits come from two swarm nodes')
    // both killed: a with its commit in the pool, b's commit vanishes (computed, never sent)
    await Promise.all([kill(a.node), kill(b.node)])
    await rpc('anvil_dropTransaction', [b.tx.hash])
    await restart(a.node)
    await logged(a.node, 'transaction of an earlier run pending: waiting for it', taskid, { what: 'commit' })
    // a's commit is mined; a takes it as its contribution, then is killed in `contributed` (b's missing: no consensus yet)
    await rpc('evm_mine')
    await logged(a.node, 'task contribution found on the hub', taskid)
    await kill(a.node)
    await Promise.all([restart(a.node), restart(b.node)])
    // b computes and commits again: the consensus is reached; the reveals wait, and the first revealer is killed
    const isReveal = (t: PoolTx): boolean => t.selector === SELECTOR.reveal
    const revealing = await drive('a reveal in the pool', isReveal, (txs) => txs.some(isReveal))
    const revealer = indexOf(revealing.find(isReveal)!.from)
    assert.ok(revealer >= 0, 'the reveal comes from a swarm node')
    await kill(revealer)
    await restart(revealer)
    await logged(revealer, 'transaction of an earlier run pending: waiting for it', taskid, { what: 'reveal' })
    // the reveals are mined; the finalize waits, and its sender (the scheduler) is killed
    const isFinalize = (t: PoolTx): boolean => t.selector === SELECTOR.finalize
    const finalizing = await drive('the finalize in the pool', isFinalize, (txs) => txs.some(isFinalize))
    const scheduler = indexOf(finalizing.find(isFinalize)!.from)
    assert.ok(scheduler >= 0, 'the finalize comes from a swarm node')
    await kill(scheduler)
    await restart(scheduler)
    await logged(scheduler, 'finalize of an earlier run pending: waiting for it', taskid)
    await rpc('evm_setAutomine', [true])
    await rpc('evm_mine')
    const done = await dealEnds(deal.dealId)
    assert.deepEqual(done.tasks.map((t) => t.status), ['COMPLETED'])
    const contributors = (await reader!.hub!.queryFilter(reader!.hub!.filters.TaskContributed(taskid), f().chain!.blockNumber)).map((e) => indexOf(e.args.worker as string))
    assert.ok(contributors.includes(a.node), 'the commit held through the kill landed')
    // b was dead long enough for the scheduler to give the task to a third worker: if that one's
    // commit reached the consensus first, b's new commit reverts (a lost race, no stake lost)
    await assertClean(taskid, [a.node, revealer, scheduler, ...(contributors.includes(b.node) ? [b.node] : [])])
    await assertConserved()
  })
})
