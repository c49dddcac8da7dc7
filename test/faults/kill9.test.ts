/**
 * A node process killed with SIGKILL in the middle of a task, then
 * restarted on its data dir: real node processes (`swarm up`, the built
 * CLI), real anvil.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wallet } from 'ethers'
import { isAlive } from '../../node/cli/processes.js'
import type { SwarmFile } from '../../node/cli/index.js'
import type { DealView, OrderbookEntry, SubmittedTask } from '../../node/api/client.js'
import { createChainClient, type ChainClient } from '../../node/chain/index.js'
import { assertBuilt, CliProcess, pollUntil, runCli } from '../e2e/cli-helpers.js'

describe('faults: kill -9 of a worker node mid-task, restarted (node processes, anvil)', function () {
  this.timeout(400_000)
  let dir = ''
  let file: SwarmFile | undefined
  const procs: CliProcess[] = []
  let reader: ChainClient | undefined

  before(assertBuilt)

  after(async () => {
    for (const p of procs) await p.stop()
    await reader?.close()
    if (dir === '') return
    await runCli(['swarm', 'down', '--dir', join(dir, 'swarm')], 60_000).catch(() => {})
    for (const pid of [...(file?.nodes.map((n) => n.pid) ?? []), file?.chain?.pid ?? 0]) {
      if (pid > 0 && await isAlive(pid)) {
        try { process.kill(pid, 'SIGKILL') } catch {}
      }
    }
    await rm(dir, { recursive: true, force: true })
  })

  it('the task ends COMPLETED with one contribution, and the hub holds exactly the RLC it accounts for', async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-kill9-'))
    const swarmDir = join(dir, 'swarm')
    const up = await runCli(['swarm', 'up', '--nodes', '4', '--dir', swarmDir, '--json'], 240_000)
    if (existsSync(join(swarmDir, 'swarm.json'))) file = JSON.parse(await readFile(join(swarmDir, 'swarm.json'), 'utf8')) as SwarmFile
    assert.equal(up.code, 0, up.stderr)
    const f = file as SwarmFile
    const chain = f.chain!
    const dataDir = (i: number): string => join(swarmDir, `node-${i}`)
    const json = async <T>(i: number, args: string[], timeoutMs?: number): Promise<T> => {
      const r = await runCli([...args, '--data-dir', dataDir(i), '--json'], timeoutMs)
      assert.equal(r.code, 0, `${args.join(' ')} on node-${i}: ${r.stderr}`)
      return JSON.parse(r.stdout) as T
    }
    reader = await createChainClient({ rpcUrl: chain.rpc, privateKey: Wallet.createRandom().privateKey, hub: chain.hub, rlc: chain.rlc })
    const hub = reader.hub!

    const app = await json<{ orderHash: string }>(2, ['app', 'publish', 'examples/apps/primes/primes.wasm', '--name', 'primes-k9', '--price', '0'])
    await pollUntil('the app order in node-0\'s book', async () => await json<{ orders: OrderbookEntry[] }>(0, ['orderbook', 'app']),
      (b) => b.orders.some((o) => o.orderHash === app.orderHash), 30_000, 300)
    const deal = await json<SubmittedTask>(0, ['task', 'submit', '--app', 'primes-k9', '--args', '200000', '--bidding-window', '3000'], 150_000)
    // the victim: the deal's first worker (maybe its scheduler too), killed as soon as the deal is on chain
    const victimAddress = deal.workers[0]
    assert.ok(victimAddress !== undefined, 'the deal has a worker')
    const victim = f.nodes.find((n) => n.address.toLowerCase() === victimAddress.toLowerCase())!
    process.kill(victim.pid, 'SIGKILL')
    await pollUntil('the victim to die', async () => await isAlive(victim.pid), (alive) => !alive, 10_000, 100)
    // restarted as swarm up started it, on the same data dir
    const boot = f.nodes.filter((n) => n !== victim).map((n) => n.multiaddrs[0])
    const again = new CliProcess(['start', '--data-dir', victim.dataDir, '--swarm-key', f.swarmKeyFile, '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0',
      '--price', '50000000', ...boot.flatMap((b) => ['--bootstrap', b]), '--json'])
    procs.push(again)
    await again.waitFor('the restarted node to be ready', () => again.stdout.includes('{'), 120_000)

    const done = await pollUntil('the task to end', async () => await json<DealView>(0, ['deal', 'show', deal.dealId]),
      (d) => d.tasks.every((t) => t.status === 'COMPLETED' || t.status === 'FAILED'), 240_000, 500)
    assert.deepEqual(done.tasks.map((t) => t.status), ['COMPLETED'])
    const taskid = done.tasks[0].taskId
    assert.equal((await hub.queryFilter(hub.filters.TaskFinalized(taskid), chain.blockNumber)).length, 1, 'finalized once')
    assert.ok((await hub.queryFilter(hub.filters.TaskContributed(taskid), chain.blockNumber)).length <= 1, 'no contribution doubled')
    let accounted = await hub.kitty()
    for (const n of f.nodes) {
      const [balance, frozen] = await hub.accountOf(n.address)
      const [stake] = await hub.stakeOf(n.address)
      accounted += balance + frozen + stake
    }
    assert.equal(await reader.rlc!.balanceOf(chain.hub), accounted, 'RLC conserved to the nRLC')
  })
})
