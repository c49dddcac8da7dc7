import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { isAlive } from '../../node/cli/processes.js'
import type { SwarmFile, SwarmUpJson } from '../../node/cli/index.js'
import type { DemoMarketResult } from '../../node/cli/quickstart-market.js'
import type { DealView, OrderbookEntry, SubmittedTask, TaskStatusView, WalletView } from '../../node/api/client.js'
import { freePort } from '../../node/chain/local-chain.js'
import { buildCApps } from '../../examples/build-c-apps.js'
import { buildModule } from '../unit/worker/wasm-builder.js'
import { buildBinaryImage, tarLayout } from '../unit/worker/oci-builder.js'
import { initDataDir } from '../../node/config/index.js'
import { assertBuilt, jsonError, pollUntil, processesMentioning, runCli, runCommand, type RunResult } from './cli-helpers.js'

const RLC = 10n ** 9n

/** A native app: its args on stdout, its uid and task id in /iexec_out (static, so it runs in an empty sandbox). */
const NATIVE_GREET_C = `#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
  printf("greet:");
  for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
  printf("\\n");
  FILE *f = fopen("/iexec_out/greeting.txt", "w");
  if (f == NULL) return 3;
  const char *task = getenv("IEXEC_TASK_ID");
  fprintf(f, "uid=%d task=%s\\n", (int)getuid(), task != NULL ? task : "none");
  return fclose(f) == 0 ? 0 : 4;
}
`

/**
 * The market CLI against a real swarm: `swarm up` with its anvil, hub,
 * funded wallets and provider stakes, then the client commands on the nodes'
 * real API routes, then `swarm down` leaving no process.
 */
describe('e2e: the market CLI on a 4-node swarm with a local chain', function () {
  this.timeout(300_000)
  let dir = ''
  let swarmDir = ''
  let swarm: SwarmUpJson
  let file: SwarmFile
  let down = false
  // other swarms a test starts; after() stops them whatever happened
  const extraDirs: string[] = []

  const dataDir = (i: number): string => join(swarmDir, `node-${i}`)
  const on = (i: number, args: string[], timeoutMs?: number): Promise<RunResult> => runCli([...args, '--data-dir', dataDir(i)], timeoutMs)
  async function json<T> (i: number, args: string[], timeoutMs?: number): Promise<T> {
    const r = await on(i, [...args, '--json'], timeoutMs)
    assert.equal(r.code, 0, `${args.join(' ')} on node-${i}: ${r.stderr}`)
    return JSON.parse(r.stdout) as T
  }

  before(async () => {
    assertBuilt()
    dir = await mkdtemp(join(tmpdir(), 'iexec-e2e-market-'))
    swarmDir = join(dir, 'swarm')
    const t0 = Date.now()
    // the providers also run native binaries and OCI images (swarm up keeps a data dir's config.json)
    for (const i of [1, 2, 3]) await initDataDir({ dataDir: join(swarmDir, `node-${i}`), devUnprotectedKey: true, config: { executors: ['wasi', 'native'] } })
    const up = await runCli(['swarm', 'up', '--nodes', '4', '--dir', swarmDir, '--json'], 240_000)
    if (existsSync(join(swarmDir, 'swarm.json'))) file = JSON.parse(await readFile(join(swarmDir, 'swarm.json'), 'utf8')) as SwarmFile
    assert.equal(up.code, 0, up.stderr)
    swarm = JSON.parse(up.stdout) as SwarmUpJson
    console.info(`      swarm up with chain, 4 nodes: ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  })

  after(async () => {
    if (swarmDir !== '' && !down) await runCli(['swarm', 'down', '--dir', swarmDir], 60_000).catch(() => {})
    for (const d of extraDirs) await runCli(['swarm', 'down', '--dir', d], 60_000).catch(() => {})
    // whatever failed, nothing of this test may outlive it
    for (const pid of [...(file?.nodes.map((n) => n.pid) ?? []), file?.chain?.pid ?? 0]) {
      if (pid > 0 && await isAlive(pid)) {
        try { process.kill(pid, 'SIGKILL') } catch {}
      }
    }
    if (dir !== '') await rm(dir, { recursive: true, force: true })
  })

  it('swarm up --json: chain deployed, every node funded, every provider staked', async () => {
    assert.ok(swarm.chain !== null, 'the chain is part of swarm up')
    assert.match(swarm.chain.rpc, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.match(swarm.chain.hub, /^0x[0-9a-fA-F]{40}$/)
    assert.match(swarm.chain.rlc, /^0x[0-9a-fA-F]{40}$/)
    assert.equal(swarm.chain.chainId, 31337)
    assert.deepEqual(JSON.parse(await readFile(join(swarmDir, 'chain.json'), 'utf8')), swarm.chain)
    assert.ok(file.chain != null && await isAlive(file.chain.pid), 'anvil runs detached after swarm up returned')
    assert.deepEqual(swarm.nodes.map((n) => n.role), ['requester', 'provider', 'provider', 'provider'])
    for (const [i, n] of swarm.nodes.entries()) {
      const cfg = JSON.parse(await readFile(join(dataDir(i), 'config.json'), 'utf8')) as { chain: { rpc: string, hub: string, chainId: number } }
      assert.equal(cfg.chain.rpc, swarm.chain.rpc)
      assert.equal(cfg.chain.hub, swarm.chain.hub)
      const w = await json<WalletView>(i, ['wallet', 'show'])
      assert.equal(w.address, n.address)
      assert.ok(BigInt(w.eth) > 10n ** 18n, `node-${i} has ETH for gas`)
      assert.equal(BigInt(w.rlc), 500n * RLC, `node-${i} keeps 500 of its 1000 RLC in the wallet`)
      if (n.role === 'provider') {
        assert.equal(BigInt(w.stake), 100n * RLC, `provider node-${i} staked 100 RLC`)
        assert.equal(BigInt(w.balance), 400n * RLC)
      } else {
        assert.equal(BigInt(w.stake), 0n, 'the requester does not stake')
        assert.equal(BigInt(w.balance), 500n * RLC)
      }
    }
  })

  it('account deposit, withdraw and stake move the amounts they print', async () => {
    const before0 = await json<WalletView>(0, ['wallet', 'show'])
    const dep = await json<{ txHash: string, balance: string }>(0, ['account', 'deposit', '1.5RLC'])
    assert.match(dep.txHash, /^0x[0-9a-f]{64}$/)
    assert.equal(BigInt(dep.balance), BigInt(before0.balance) + 1_500_000_000n)
    const wd = await json<{ balance: string }>(0, ['account', 'withdraw', '500000000nRLC'])
    assert.equal(BigInt(wd.balance), BigInt(before0.balance) + 1_000_000_000n)
    const human = await on(1, ['stake', '2RLC'])
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.stdout, /staked 2 RLC \(2000000000 nRLC\)/)
    assert.match(human.stdout, /stake now 102 RLC \(102000000000 nRLC\)/)
  })

  it('app register, orderbook on another node, task submit gives a deal of providers, deal show matches', async () => {
    const wasm = await readFile('examples/apps/primes/primes.wasm')
    const checksum = createHash('sha256').update(wasm).digest('hex')
    const cid = CID.create(1, raw.code, await sha256.digest(wasm)).toString()
    const app = await json<{ address: string, cid: string, checksum: string, orderHash: string }>(1, ['app', 'register', '--name', 'wordcount', '--cid', cid, '--checksum', checksum, '--price', '0'])
    assert.match(app.address, /^0x[0-9a-fA-F]{40}$/)
    assert.equal(app.checksum, `0x${checksum}`)

    // the app order, published on node-1, reaches the requester's orderbook over gossip
    const book = await pollUntil('the app order in node-0\'s orderbook', async () => await json<{ orders: OrderbookEntry[] }>(0, ['orderbook', 'app']),
      (b) => b.orders.some((o) => o.orderHash === app.orderHash), 30_000, 300)
    const entry = book.orders.find((o) => o.orderHash === app.orderHash)
    assert.equal(entry?.type, 'app')
    assert.equal(entry?.signer, swarm.nodes[1].address)

    const t0 = Date.now()
    const deal = await json<SubmittedTask>(0, ['task', 'submit', '--app', app.address, '--args', 'a b a', '--bidding-window', '3000'], 150_000)
    const dealMs = Date.now() - t0
    assert.match(deal.dealId, /^0x[0-9a-f]{64}$/)
    const providers = swarm.nodes.filter((n) => n.role === 'provider').map((n) => n.address.toLowerCase())
    assert.ok(deal.workers.length >= 1, 'at least one worker')
    for (const w of deal.workers) assert.ok(providers.includes(w.toLowerCase()), `worker ${w} is a provider`)
    assert.ok(providers.includes(deal.scheduler.toLowerCase()), `scheduler ${deal.scheduler} is a staked provider`)
    assert.ok(deal.tasks.length >= 1)

    // any node reads the same deal from the chain
    const shown = await json<DealView>(2, ['deal', 'show', deal.dealId])
    assert.equal(shown.dealId, deal.dealId)
    assert.equal(shown.scheduler.toLowerCase(), deal.scheduler.toLowerCase())
    assert.deepEqual(shown.workers.map((w) => w.toLowerCase()), deal.workers.map((w) => w.toLowerCase()))
    assert.equal(shown.app.toLowerCase(), app.address.toLowerCase())
    assert.equal(shown.requester.toLowerCase(), swarm.nodes[0].address.toLowerCase())
    assert.deepEqual(shown.tasks.map((t) => t.taskId), deal.tasks.map((t) => t.taskId))

    const human = await on(2, ['deal', 'show', deal.dealId])
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.stdout, new RegExp(`scheduler\\s+${deal.scheduler}`))
    console.info(`      task submit -> deal mined: ${(dealMs / 1000).toFixed(1)} s (bidding window 3 s)`)

    // no provider serves category 3: NO_BIDS within the window, each reason on its own line
    const t1 = Date.now()
    const none = await on(0, ['task', 'submit', '--app', app.address, '--category', '3', '--bidding-window', '1500'], 60_000)
    assert.equal(none.code, 1, none.stdout)
    assert.ok(Date.now() - t1 < 30_000, 'the requester gives up within its window, it does not hang')
    const all = none.stderr.trim().split('\n')
    // first, before the node signs: the cap a request without --max-price offers (config defaultMaxPrice, 1 RLC)
    assert.equal(all[0], 'task: no --max-price: offering the workers at most 1 RLC (1000000000 nRLC) a task (the node\'s defaultMaxPrice)')
    const lines = all.slice(1)
    assert.match(lines[lines.length - 1], /^iexec-p2p: .* \(NO_BIDS\)$/)
    assert.ok(lines.length >= 3, `a header, at least one reason line, the error line: ${none.stderr}`)
    for (const l of lines.slice(1, -1)) assert.match(l, /^ {2}\S+: .+ \([A-Z_]+\)$/, 'one reason per line: peer, reason, code')
    const noneJson = await on(0, ['task', 'submit', '--app', app.address, '--category', '3', '--bidding-window', '1500', '--json'], 60_000)
    const env = JSON.parse(noneJson.stderr) as { error: { code: string, details?: { reasons?: unknown[] } } }
    assert.equal(env.error.code, 'NO_BIDS')
    assert.ok(Array.isArray(env.error.details?.reasons) && env.error.details.reasons.length > 0)

    // the app's owner cancels its app order on chain; the requester's orderbook drops it
    const cancelled = await json<{ orderHash: string, txHash: string }>(1, ['order', 'cancel', app.orderHash])
    assert.equal(cancelled.orderHash, app.orderHash)
    assert.match(cancelled.txHash, /^0x[0-9a-f]{64}$/)
    await pollUntil('the cancelled app order to leave node-0\'s orderbook', async () => await json<{ orders: OrderbookEntry[] }>(0, ['orderbook', 'app']),
      (b) => !b.orders.some((o) => o.orderHash === app.orderHash), 30_000, 300)
    // a request for that app now finds no app order to match
    const after = await on(0, ['task', 'submit', '--app', app.address, '--bidding-window', '1000', '--json'], 60_000)
    assert.equal(after.code, 1)
    assert.equal(jsonError(after).code, 'NO_APP_ORDER')
  })

  it('app publish adds the wasm to the swarm and registers it; a task of it runs to COMPLETED; result get prints its stdout', async () => {
    const file = 'examples/apps/primes/primes.wasm'
    const wasm = await readFile(file)
    const app = await json<{ address: string, cid: string, checksum: string, orderHash: string }>(2, ['app', 'publish', file, '--name', 'primes-e2e', '--price', '0'])
    assert.equal(app.checksum, `0x${createHash('sha256').update(wasm).digest('hex')}`)
    assert.equal(app.cid, CID.create(1, raw.code, await sha256.digest(wasm)).toString())
    await pollUntil('the published app order in node-0\'s orderbook', async () => await json<{ orders: OrderbookEntry[] }>(0, ['orderbook', 'app']),
      (b) => b.orders.some((o) => o.orderHash === app.orderHash), 30_000, 300)
    // by name: the requester resolves it from the hub's AppRegistered events
    const deal = await json<SubmittedTask>(0, ['task', 'submit', '--app', 'primes-e2e', '--args', '1000', '--bidding-window', '3000'], 150_000)
    const done = await pollUntil('the task to complete', async () => await json<DealView>(0, ['deal', 'show', deal.dealId]),
      (d) => d.tasks.every((t) => t.status === 'COMPLETED' || t.status === 'FAILED'), 90_000, 300)
    assert.deepEqual(done.tasks.map((t) => t.status), ['COMPLETED'], 'a worker fetched the module from node-2 over bitswap, ran it and contributed')

    // the requester fetches the result from the swarm, checked against the chain: 168 primes up to 1000
    const taskId = done.tasks[0].taskId
    const got = await json<{ taskId: string, cid: string, path: string, stdout: string }>(0, ['result', 'get', taskId], 90_000)
    assert.equal(got.taskId, taskId)
    assert.match(got.cid, /^baf/)
    assert.match(got.stdout, /count=168 last=997/)
    assert.ok(existsSync(join(got.path, 'stdout.txt')))
    const human = await on(0, ['result', 'get', taskId, '--out', join(dir, 'result-out')], 90_000)
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.stdout, /count=168 last=997/)
    assert.ok(existsSync(join(dir, 'result-out', 'stdout.txt')), '--out holds a copy of the result')
    // a task no deal has: TASK_NOT_FOUND, as task show says, exit 1
    const missing = await on(0, ['result', 'get', `0x${'00'.repeat(32)}`, '--json'])
    assert.equal(missing.code, 1)
    assert.equal(jsonError(missing).code, 'TASK_NOT_FOUND')

    // not a wasm module: a usage error, nothing uploaded
    const bad = await on(2, ['app', 'publish', 'package.json', '--json'])
    assert.equal(bad.code, 2)
    assert.equal(jsonError(bad).code, 'CLI_BAD_OPTION')
  })

  it('any WASI module: a clang-built one runs to its right result; modules that cannot run are refused at publish, nothing on chain; a sleeping app and a memory hog are killed at their bounds', async () => {
    const built = await buildCApps(join(dir, 'c-apps'))
    // no memory maximum declared (clang's default): it runs unchanged, at trust 1
    const app = await json<{ address: string, orderHash: string }>(1, ['app', 'publish', built.linecount, '--name', 'linecount-c'])
    await pollUntil('the C app order in node-0\'s orderbook', async () => await json<{ orders: OrderbookEntry[] }>(0, ['orderbook', 'app']),
      (b) => b.orders.some((o) => o.orderHash === app.orderHash), 30_000, 300)
    const deal = await json<SubmittedTask>(0, ['task', 'submit', '--app', 'linecount-c', '--args', 'alpha beta', '--bidding-window', '3000'], 150_000)
    const done = await pollUntil('the C task to complete', async () => await json<DealView>(0, ['deal', 'show', deal.dealId]),
      (d) => d.tasks.every((t) => t.status === 'COMPLETED' || t.status === 'FAILED'), 90_000, 300)
    assert.deepEqual(done.tasks.map((t) => t.status), ['COMPLETED'])
    const got = await json<{ path: string, stdout: string }>(0, ['result', 'get', done.tasks[0].taskId], 90_000)
    assert.equal(got.stdout, 'counted 0 input file(s)\n')
    assert.equal(await readFile(join(got.path, 'result.txt'), 'utf8'), 'args alpha beta\n')

    // refused before anything goes on chain: a valid but empty module (8 bytes, no _start), one importing outside WASI
    const empty = join(dir, 'empty.wasm')
    await writeFile(empty, Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]))
    const foreign = join(dir, 'foreign.wasm')
    await writeFile(foreign, buildModule({ memory: { min: 1 }, importFunctions: [{ module: 'env', name: 'connect' }] }))
    for (const [path, code] of [[empty, 'MODULE_NOT_COMMAND'], [foreign, 'MODULE_FOREIGN_IMPORTS']]) {
      const refused = await on(1, ['app', 'publish', path, '--name', `refused-${code.toLowerCase()}`, '--json'])
      assert.equal(refused.code, 1, refused.stderr)
      assert.equal(jsonError(refused).code, code)
      const submit = await on(0, ['task', 'submit', '--app', `refused-${code.toLowerCase()}`, '--bidding-window', '1000', '--json'], 60_000)
      assert.equal(jsonError(submit).code, 'APP_NOT_FOUND', 'nothing was registered')
    }

    // killed at their bounds (the worker's 30 s time bound; its 256 MiB memory bound); the nodes go on (the tests after this one) and swarm down ends them
    const logs = async (): Promise<string> => (await Promise.all([1, 2, 3].map(async (i) => await readFile(join(dataDir(i), 'node.log'), 'utf8').catch(() => '')))).join('\n')
    const bounded = [['sleep', '3600', 'TIMEOUT'], ['hog', '', 'MEMORY_EXCEEDED']] as const
    const orders: Array<{ orderHash: string }> = []
    for (const [name] of bounded) orders.push(await json<{ orderHash: string }>(1, ['app', 'publish', built[name], '--name', `${name}-c`]))
    await pollUntil('the sleep and hog app orders in node-0\'s orderbook', async () => await json<{ orders: OrderbookEntry[] }>(0, ['orderbook', 'app']),
      (b) => orders.every((a) => b.orders.some((o) => o.orderHash === a.orderHash)), 30_000, 300)
    // both deals at once: the sleep waits out the whole time bound, and the hog's run fits inside that wait
    await Promise.all(bounded.map(async ([name, args, status]) => {
      const d = await json<SubmittedTask>(0, ['task', 'submit', '--app', `${name}-c`, ...(args !== '' ? ['--args', args] : []), '--bidding-window', '3000'], 150_000)
      const taskId = d.tasks[0].taskId
      await pollUntil(`the ${name} run to end ${status}`, logs,
        (text) => text.split('\n').some((l) => l.includes(taskId) && l.includes('task failed') && l.includes(status)), 120_000, 500)
    }))
  })

  it('app publish of a static binary, an OCI layout folder and its tar: each accepted and a task of each runs to its result', async () => {
    // a static binary built here, and an OCI image of it built with umoci (no registry, no daemon)
    const src = join(dir, 'greet.c')
    await writeFile(src, NATIVE_GREET_C)
    const bin = join(dir, 'greet')
    const cc = await runCommand('cc', ['-static', '-O1', '-o', bin, src])
    assert.equal(cc.code, 0, cc.stderr)
    const layout = join(dir, 'greet-image')
    buildBinaryImage(layout, bin, { name: 'greet', cmd: ['from-cmd'] })
    const tar = join(dir, 'greet-image.tar')
    await writeFile(tar, tarLayout(layout))

    const apps = [['greet-native', bin], ['greet-oci-dir', layout], ['greet-oci-tar', tar]] as const
    const published: Array<{ orderHash: string }> = []
    for (const [name, path] of apps) published.push(await json<{ orderHash: string }>(1, ['app', 'publish', path, '--name', name]))
    await pollUntil('the three app orders in node-0\'s orderbook', async () => await json<{ orders: OrderbookEntry[] }>(0, ['orderbook', 'app']),
      (b) => published.every((p) => b.orders.some((o) => o.orderHash === p.orderHash)), 30_000, 300)
    // the three tasks at once: the providers bid on what they can run (native here)
    const deals = await Promise.all(apps.map(async ([name]) =>
      await json<SubmittedTask>(0, ['task', 'submit', '--app', name, '--args', `hi ${name}`, '--bidding-window', '3000'], 150_000)))
    for (const [i, deal] of deals.entries()) {
      const done = await pollUntil(`the ${apps[i][0]} task to complete`, async () => await json<DealView>(0, ['deal', 'show', deal.dealId]),
        (d) => d.tasks.every((t) => t.status === 'COMPLETED' || t.status === 'FAILED'), 120_000, 500)
      assert.deepEqual(done.tasks.map((t) => t.status), ['COMPLETED'], `${apps[i][0]} ran`)
      const got = await json<{ path: string, stdout: string }>(0, ['result', 'get', done.tasks[0].taskId], 90_000)
      // the request's args replace the image's cmd, as docker run does
      assert.equal(got.stdout, `greet: hi ${apps[i][0]}\n`)
      assert.equal((await readFile(join(got.path, 'greeting.txt'), 'utf8')).toLowerCase(), `uid=1000 task=${done.tasks[0].taskId}\n`.toLowerCase())
    }
  })

  it('task submit --watch at trust 3 with --encrypt-result: progress, then the decrypted stdout; task show has the timeline; only the requester can read it', async () => {
    // primes-e2e was published by the test above
    const t0 = Date.now()
    const r = await on(0, ['task', 'submit', '--app', 'primes-e2e', '--args', '500', '--trust', '3', '--encrypt-result', '--bidding-window', '3000', '--watch'], 240_000)
    assert.equal(r.code, 0, r.stderr)
    console.info(`      trust-3 task submitted and watched to its result: ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    // stdout: the deal, then the app's own output (95 primes up to 500), decrypted by the requester's node
    assert.match(r.stdout, /deal\s+0x[0-9a-f]{64}/)
    assert.match(r.stdout, /count=95 last=499/)
    // progress on stderr, through consensus and reveal to the result
    assert.match(r.stderr, /finalized: result on the swarm/)
    assert.match(r.stderr, /fetching the result baf\w+ and checking it against the chain/)
    const dealId = /deal\s+(0x[0-9a-f]{64})/.exec(r.stdout)?.[1] ?? ''
    const deal = await json<DealView>(0, ['deal', 'show', dealId])
    assert.ok(deal.workers.length >= 2, `trust 3 needs at least 2 agreeing workers, the deal has ${deal.workers.length}`)
    assert.match(deal.params, /"iexec_result_encryption":true/)

    const taskId = deal.tasks[0].taskId
    const show = await json<TaskStatusView>(0, ['task', 'show', taskId])
    assert.equal(show.phase, 'finalized')
    assert.equal(show.status, 'COMPLETED')
    assert.equal(show.trust, 3)
    assert.ok(show.contributions >= 2 && show.reveals >= 2, `contributions ${show.contributions}, reveals ${show.reveals}`)
    const names = show.events.map((e) => e.name)
    for (const n of ['requested', 'deal', 'initialized', 'contributed', 'consensus', 'revealed', 'finalized'] as const) assert.ok(names.includes(n), `timeline has ${n}: ${names.join(',')}`)
    assert.ok(names.indexOf('deal') < names.indexOf('consensus') && names.indexOf('consensus') < names.indexOf('finalized'))
    // DESIGN.md's fields: resultCid (the finalized CID) and times, each the first event of its step
    assert.match(show.resultCid ?? '', /^baf\w+$/, 'resultCid names the finalized result')
    assert.ok(!('resultsCid' in show), 'one name for the result CID')
    assert.equal(typeof show.contributions, 'number')
    const at = (n: string): number | undefined => show.events.find((e) => e.name === n)?.at
    assert.deepEqual(show.times, {
      requested: at('requested'), firstBid: at('first-bid') ?? null, deal: at('deal'), initialized: at('initialized'),
      firstContribution: at('contributed'), consensus: at('consensus'), finalized: at('finalized'), claimed: null
    }, 'times follow the timeline')
    const steps = [show.times.deal, show.times.initialized, show.times.firstContribution, show.times.consensus, show.times.finalized]
    for (const [i, t] of steps.entries()) assert.ok(typeof t === 'number' && (i === 0 || t >= (steps[i - 1] ?? Infinity)), `phase times in order: ${JSON.stringify(show.times)}`)
    // the human view and --watch on a final task return at once
    const human = await on(0, ['task', 'show', taskId, '--watch'])
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.stdout, /status\s+COMPLETED \(finalized\)/)
    assert.match(human.stdout, /contributed/)
    assert.match(human.stdout, /took\s+\d+\.\d s from the deal to the result/)

    // any other node fetches the same CID but cannot open it
    const other = await on(1, ['result', 'get', taskId, '--json'], 90_000)
    assert.equal(other.code, 1)
    assert.equal(jsonError(other).code, 'STORAGE_NOT_RECIPIENT')
    assert.doesNotMatch(other.stdout, /count=95/)

    // unknown task, malformed id: clear codes
    const unknown = await on(0, ['task', 'show', `0x${'ab'.repeat(32)}`, '--json'])
    assert.equal(unknown.code, 1)
    assert.equal(jsonError(unknown).code, 'TASK_NOT_FOUND')
    const malformed = await on(0, ['task', 'show', '0x1234', '--json'])
    assert.equal(malformed.code, 2)
    assert.equal(jsonError(malformed).code, 'CLI_BAD_OPTION')
  })

  it('bad input: one clear line and the right exit code', async () => {
    const noApp = await on(0, ['task', 'submit', '--json'])
    assert.equal(noApp.code, 2)
    assert.equal(jsonError(noApp).code, 'CLI_MISSING_ARGUMENT')
    const amount = await on(0, ['account', 'deposit', '12abc'])
    assert.equal(amount.code, 2)
    assert.match(amount.stderr, /^iexec-p2p: .*"12abc".* \(CLI_BAD_OPTION\)\n$/)
    const id = await on(0, ['deal', 'show', '0x1234', '--json'])
    assert.equal(id.code, 2)
    assert.equal(jsonError(id).code, 'CLI_BAD_OPTION')
    const unknown = await on(0, ['deal', 'show', '0x' + '00'.repeat(31) + '01', '--json'])
    assert.equal(unknown.code, 1)
    assert.equal(jsonError(unknown).code, 'DEAL_NOT_FOUND')
    // --trust has the market's bound, [1, 255], checked before the network: one code, exit 2, both sides of it
    for (const trust of ['0', '256', '1000']) {
      const t = await on(0, ['task', 'submit', '--app', 'primes', '--trust', trust, '--json'])
      assert.equal(t.code, 2, `--trust ${trust}: ${t.stderr}`)
      assert.equal(jsonError(t).code, 'CLI_BAD_OPTION')
    }
    // arguments that do not split as a shell would: their own code, exit 2, nothing signed
    const quote = await on(0, ['task', 'submit', '--app', 'primes', '--args', 'a "b c', '--json'])
    assert.equal(quote.code, 2)
    assert.equal(jsonError(quote).code, 'ARGS_UNTERMINATED_QUOTE')
    const slash = await on(0, ['task', 'submit', '--app', 'primes', '--args', 'a\\', '--json'])
    assert.equal(slash.code, 2)
    assert.equal(jsonError(slash).code, 'ARGS_TRAILING_BACKSLASH')
    // the node refuses the same values from any other client of its API, with the same codes
    const api = await fetch(`${swarm.nodes[0].api}/v1/tasks`, { method: 'POST', headers: { authorization: `Bearer ${(await readFile(swarm.nodes[0].tokenFile, 'utf8')).trim()}`, 'content-type': 'application/json' }, body: JSON.stringify({ app: 'primes', trust: 256 }) })
    assert.equal(api.status, 400)
    assert.equal(((await api.json()) as { error: { code: string } }).error.code, 'MARKET_BAD_ARGUMENT')
    const apiArgs = await fetch(`${swarm.nodes[0].api}/v1/tasks`, { method: 'POST', headers: { authorization: `Bearer ${(await readFile(swarm.nodes[0].tokenFile, 'utf8')).trim()}`, 'content-type': 'application/json' }, body: JSON.stringify({ app: 'primes-e2e', args: '\'open' }) })
    assert.equal(apiArgs.status, 400)
    assert.equal(((await apiArgs.json()) as { error: { code: string } }).error.code, 'ARGS_UNTERMINATED_QUOTE')
    const dead = await runCli(['wallet', 'show', '--api', `http://127.0.0.1:${await freePort()}`, '--token-file', swarm.nodes[0].tokenFile, '--json'])
    assert.equal(dead.code, 1)
    assert.equal(jsonError(dead).code, 'API_UNREACHABLE')
  })

  it('a node without chain answers CHAIN_NOT_CONFIGURED', async () => {
    const other = join(dir, 'nochain')
    extraDirs.push(other)
    try {
      const up = await runCli(['swarm', 'up', '--nodes', '1', '--no-chain', '--dir', other, '--json'], 120_000)
      assert.equal(up.code, 0, up.stderr)
      assert.equal((JSON.parse(up.stdout) as SwarmUpJson).chain, null)
      for (const args of [['wallet', 'show'], ['orderbook'], ['stake', '1RLC']]) {
        const r = await runCli([...args, '--data-dir', join(other, 'node-0'), '--json'])
        assert.equal(r.code, 1, args.join(' '))
        assert.equal(jsonError(r).code, 'CHAIN_NOT_CONFIGURED', args.join(' '))
      }
      const human = await runCli(['wallet', 'show', '--data-dir', join(other, 'node-0')])
      assert.match(human.stderr, /^iexec-p2p: [^\n]+ \(CHAIN_NOT_CONFIGURED\)\n$/)
    } finally {
      const d = await runCli(['swarm', 'down', '--dir', other], 60_000)
      assert.equal(d.code, 0, d.stderr)
    }
    assert.deepEqual(processesMentioning(other), [])
  })

  it('npm start -- --once: apps and an encrypted dataset published, wordcount over it at trust 3 and primes run to their results, earnings; then nothing is left', async () => {
    const qs = join(dir, 'quickstart')
    extraDirs.push(qs)
    const t0 = Date.now()
    // exactly the README's command, plus a dir of its own and JSON for the asserts
    const r = await runCommand('npm', ['start', '--', '--once', '--dir', qs, '--json'], 300_000)
    assert.equal(r.code, 0, r.stderr)
    // npm prints its banner first: the document is the last line
    const doc = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop() ?? ''
    const out = JSON.parse(doc) as SwarmUpJson & DemoMarketResult
    assert.ok(out.chain !== null)
    assert.equal(out.nodes.length, 4)
    const wasm = await readFile('examples/apps/primes/primes.wasm')
    const primes = out.apps.find((a) => a.name === 'primes')
    assert.ok(primes !== undefined)
    assert.equal(primes.checksum, `0x${createHash('sha256').update(wasm).digest('hex')}`)
    assert.equal(primes.cid, CID.create(1, raw.code, await sha256.digest(wasm)).toString())
    assert.equal(out.dataset.encrypted, true)
    const providers = out.nodes.filter((n) => n.role === 'provider').map((n) => n.address.toLowerCase())
    const [wc, pr] = out.runs
    for (const run of out.runs) {
      for (const w of run.deal.workers) assert.ok(providers.includes(w.toLowerCase()), `worker ${w} is a provider`)
      assert.ok(providers.includes(run.deal.scheduler.toLowerCase()))
      assert.deepEqual(run.tasks.map((t) => t.phase), ['finalized'])
    }
    // the word count of the sample text, computed by workers that got the key from its owner's node
    const sample = await readFile('examples/datasets/sample.txt', 'utf8')
    const words = sample.split(/\s+/).filter((w) => w.length > 0).length
    assert.ok(wc.deal.workers.length >= 2, 'trust 3 needs at least 2 agreeing workers')
    assert.match(wc.tasks[0].result?.stdout ?? '', new RegExp(`lines=${sample.split('\n').length - 1} words=${words} bytes=${Buffer.byteLength(sample)}`))
    assert.match(pr.tasks[0].result?.stdout ?? '', /count=148933 last=1999993/)
    // money moved: the requester paid, and every other party earned what its part says
    const earned = new Map(out.earnings.map((e) => [e.node, BigInt(e.earned)]))
    assert.ok((earned.get(0) ?? 0n) < 0n, 'the requester paid')
    for (const e of out.earnings.filter((x) => x.node !== 0)) assert.ok(BigInt(e.earned) > 0n, `node-${e.node} (${e.parts.join(', ')}) earned`)
    assert.equal(out.earnings.reduce((s, e) => s + BigInt(e.earned), 0n), 0n, 'what the requester paid is what the others earned')
    assert.equal(existsSync(join(qs, 'swarm.json')), false)
    assert.deepEqual(processesMentioning(qs), [], 'quickstart --once leaves no node and no anvil')
    console.info(`      npm start -- --once: ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  })

  it('swarm down stops the nodes and anvil: no process left', async () => {
    const t0 = Date.now()
    const r = await runCli(['swarm', 'down', '--dir', swarmDir, '--json'], 60_000)
    down = true
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout) as { stopped: number[], killed: number[], chainPid: number | null }
    assert.equal(out.chainPid, file.chain?.pid)
    for (const n of file.nodes) assert.equal(await isAlive(n.pid), false, `node pid ${n.pid} is gone`)
    assert.equal(await isAlive(file.chain?.pid ?? 0), false, 'anvil is gone')
    assert.deepEqual(processesMentioning(swarmDir), [], 'no process of the swarm (node or anvil) is left')
    assert.equal(existsSync(join(swarmDir, 'swarm.json')), false)
    assert.equal(existsSync(join(swarmDir, 'chain.json')), false)
    console.info(`      swarm down (4 nodes + anvil): ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  })

  it('swarm up again in the same dir: a fresh chain, the kept data dirs make deals again', async () => {
    down = false
    const up = await runCli(['swarm', 'up', '--nodes', '2', '--dir', swarmDir, '--json'], 240_000)
    if (existsSync(join(swarmDir, 'swarm.json'))) file = JSON.parse(await readFile(join(swarmDir, 'swarm.json'), 'utf8')) as SwarmFile
    assert.equal(up.code, 0, up.stderr)
    const again = JSON.parse(up.stdout) as SwarmUpJson
    assert.deepEqual(again.nodes.map((n) => n.address), swarm.nodes.slice(0, 2).map((n) => n.address), 'same wallets: the data dirs were kept')
    const w = await json<WalletView>(1, ['wallet', 'show'])
    assert.equal(BigInt(w.stake), 100n * RLC, 'a fresh chain: the stake is the fresh one, not the old 102 RLC')
    const wasm = await readFile('examples/apps/primes/primes.wasm')
    const app = await json<{ address: string, orderHash: string }>(1, ['app', 'register', '--name', 'wordcount', '--cid', CID.create(1, raw.code, await sha256.digest(wasm)).toString(),
      '--checksum', createHash('sha256').update(wasm).digest('hex'), '--price', '0'])
    await pollUntil('the app order in node-0\'s orderbook', async () => await json<{ orders: OrderbookEntry[] }>(0, ['orderbook', 'app']),
      (b) => b.orders.some((o) => o.orderHash === app.orderHash), 30_000, 300)
    const deal = await json<SubmittedTask>(0, ['task', 'submit', '--app', app.address, '--bidding-window', '3000'], 150_000)
    assert.deepEqual(deal.workers.map((x) => x.toLowerCase()), [again.nodes[1].address.toLowerCase()])
    const d = await runCli(['swarm', 'down', '--dir', swarmDir], 60_000)
    down = true
    assert.equal(d.code, 0, d.stderr)
    assert.deepEqual(processesMentioning(swarmDir), [])
  })
})
