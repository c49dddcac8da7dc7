/**
 * An operator's routes and metrics on real nodes over a real anvil. Metrics:
 * after a real task, /metrics (on the API behind the token, and on the
 * token-less `metricsListen` listener) shows the counters moved: bids, runs,
 * RPC calls, transactions and gas, level operations, the follower's lag,
 * bitswap bytes both ways when the requester fetches the result, the
 * scheduler's tasks by state.
 * Routes: categories with
 * their limits (list, create by the hub owner only, bad input coded), deal
 * and task lists by role and status, claims by hand (too early, then done,
 * then already done) with the RLC in the hub conserved, and the kitty
 * (its treasury is the hub owner). The CLI's argument checks are tested
 * without a node at the end.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { Hub__factory } from '../../contracts-abi/index.js'
import { Wallet } from 'ethers'
import { runCli } from '../../node/cli/index.js'
import { RLC, api, ok, startSwarm } from './market-helpers.js'
import type { Swarm } from './market-helpers.js'
import type { IexecNode } from '../../node/node.js'
import type { CategoryView, DealListEntry, ListView, TaskListEntry } from '../../node/api/routes/operator.js'

const APP = { name: 'ops', cid: 'bafy-ops-never-fetched', checksum: '0x' + '66'.repeat(32), price: RLC.toString() }

describe('operator routes: categories, lists, claims, kitty', function () {
  this.timeout(180_000)
  const cleanup: Array<() => Promise<void>> = []
  let s: Swarm
  let p0: IexecNode
  let r0: IexecNode
  let dealId: string
  let taskId: string

  before(async () => {
    // every node also serves /metrics without the token on a loopback port of its own
    s = await startSwarm({ providers: 1, market: { biddingWindowMs: 2_000 }, config: { metricsListen: '127.0.0.1:0' } }, cleanup)
    p0 = s.providers[0]
    r0 = s.requesters[0]
  })
  after(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  async function errorOf (node: IexecNode, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number, code: string }> {
    const r = await api(node, method, path, body)
    return { status: r.status, code: (r.body.error as { code: string } | undefined)?.code ?? '' }
  }

  /** What the hub holds against what it accounts for: every funded account here, plus the kitty. */
  async function hubTotals (): Promise<{ held: bigint, accounted: bigint }> {
    const hub = r0.market!.hub
    const rlc = r0.market!.chain.rlc!
    let accounted = await hub.kitty()
    for (const a of [p0.address, r0.address, new Wallet(s.anvil.privateKeys[0]).address]) {
      const [balance, frozen] = await hub.accountOf(a)
      const [stake] = await hub.stakeOf(a)
      accounted += balance + frozen + stake
    }
    return { held: await rlc.balanceOf(await hub.getAddress()), accounted }
  }

  it('lists the categories with their limits; only the hub owner creates one, and bad input is refused', async () => {
    const list = await ok(r0, 'GET', '/v1/categories') as unknown as CategoryView[]
    assert.deepEqual(list[0], { id: 0, name: 'XS', timeRef: 60, memoryMiB: 256, diskMiB: 64 })
    assert.equal(list.length, 4)
    const spec = { name: 'XL', timeRef: 7200, memoryMiB: 16384, diskMiB: 65536 }
    assert.deepEqual(await errorOf(r0, 'POST', '/v1/categories', spec), { status: 403, code: 'NOT_HUB_OWNER' })
    assert.deepEqual(await errorOf(r0, 'POST', '/v1/categories', { ...spec, memoryMiB: 0 }), { status: 400, code: 'CATEGORY_INVALID' })
    assert.deepEqual(await errorOf(r0, 'POST', '/v1/categories', { ...spec, timeRef: 2 ** 24 }), { status: 400, code: 'CATEGORY_INVALID' })
    assert.deepEqual(await errorOf(r0, 'POST', '/v1/categories', { ...spec, diskMiB: '5' }), { status: 400, code: 'API_BAD_REQUEST' })
    // the deployer hands the hub (and the treasury) to the requester's node
    const hub = Hub__factory.connect(s.chain.hub, new Wallet(s.anvil.privateKeys[0], r0.market!.chain.provider))
    await (await hub.transferOwnership(r0.address)).wait()
    const created = await ok(r0, 'POST', '/v1/categories', spec)
    assert.equal(created.id, 4)
    assert.match(String(created.txHash), /^0x[0-9a-f]{64}$/)
    const after = await ok(r0, 'GET', '/v1/categories') as unknown as CategoryView[]
    assert.deepEqual(after[4], { id: 4, ...spec })
  })

  it('lists deals and tasks by role and status', async () => {
    await ok(p0, 'POST', '/v1/apps', APP)
    const { waitFor } = await import('../helpers/wait.js')
    await waitFor(async () => ((await ok(r0, 'GET', '/v1/orderbook?type=app')).orders as unknown[]).length === 1, 15_000, 'app order at the requester')
    const deal = await ok(r0, 'POST', '/v1/tasks', { app: APP.name, maxPrice: (3n * RLC).toString() }) as { dealId: string, tasks: Array<{ taskId: string }> }
    dealId = deal.dealId.toLowerCase()
    taskId = deal.tasks[0].taskId.toLowerCase()

    const mine = await ok(r0, 'GET', '/v1/deals?role=requester') as unknown as ListView<DealListEntry>
    assert.deepEqual(mine.items.map((d) => [d.dealId, d.roles]), [[dealId, ['requester']]])
    const asWorker = await ok(p0, 'GET', '/v1/deals?role=worker') as unknown as ListView<DealListEntry>
    assert.deepEqual(asWorker.items.map((d) => d.dealId), [dealId])
    assert.ok(asWorker.items[0].roles.includes('worker'))
    assert.deepEqual((await ok(p0, 'GET', '/v1/deals?role=requester') as unknown as ListView<DealListEntry>).items, [])
    assert.deepEqual(await errorOf(r0, 'GET', '/v1/deals?role=boss'), { status: 400, code: 'API_BAD_REQUEST' })

    const tasks = await ok(r0, 'GET', `/v1/tasks?deal=${dealId}`) as unknown as ListView<TaskListEntry>
    assert.equal(tasks.items.length, 1)
    assert.equal(tasks.items[0].taskId, taskId)
    assert.equal(tasks.items[0].claimable, false)
    assert.deepEqual((await ok(r0, 'GET', '/v1/tasks?status=COMPLETED') as unknown as ListView<TaskListEntry>).items, [])
    assert.deepEqual(await errorOf(r0, 'GET', '/v1/tasks?status=SLEEPING'), { status: 400, code: 'API_BAD_REQUEST' })
    for (const path of ['/v1/tasks?limit=0', '/v1/tasks?limit=1e3', '/v1/tasks?deal=0x12', '/v1/deals?limit=-1']) {
      assert.deepEqual(await errorOf(r0, 'GET', path), { status: 400, code: 'API_BAD_REQUEST' }, path)
    }
    assert.deepEqual(await errorOf(r0, 'POST', '/v1/tasks/not-a-task/claim', {}), { status: 400, code: 'API_BAD_REQUEST' })
    assert.deepEqual(await errorOf(r0, 'POST', `/v1/tasks/${taskId}/claim`, { dealId: 7 }), { status: 400, code: 'API_BAD_REQUEST' })
    assert.deepEqual(await errorOf(r0, 'POST', `/v1/tasks/${taskId}/claim`, []), { status: 400, code: 'API_BAD_REQUEST' })
    assert.deepEqual(await errorOf(r0, 'POST', `/v1/deals/0x${'00'.repeat(32)}/claim`, {}), { status: 404, code: 'DEAL_NOT_FOUND' })
  })

  it('claims by hand: too early, then refunded with the RLC conserved, then already done', async () => {
    assert.deepEqual(await errorOf(r0, 'POST', `/v1/tasks/${taskId}/claim`, {}), { status: 409, code: 'CLAIM_TOO_EARLY' })
    assert.deepEqual(await errorOf(r0, 'POST', `/v1/deals/${dealId}/claim`, {}), { status: 409, code: 'CLAIM_TOO_EARLY' })
    // every node's scheduler service claims unfinished tasks after the final deadline: held while the hand claims are tested
    for (const n of s.all) await n.execution!.scheduler.stop()
    // past the final deadline (10 time references of XS: 600 s) on the chain's clock
    const provider = r0.market!.chain.provider
    await provider.send('evm_increaseTime', [601])
    await provider.send('evm_mine', [])
    const claimable = await ok(r0, 'GET', '/v1/tasks?status=CLAIMABLE') as unknown as ListView<TaskListEntry>
    assert.deepEqual(claimable.items.map((t) => t.taskId), [taskId])

    const before = await hubTotals()
    assert.equal(before.held, before.accounted)
    const [, frozenBefore] = await r0.market!.hub.accountOf(r0.address)
    assert.ok(frozenBefore > 0n, 'the deal froze the requester\'s payment')
    const claimed = await ok(r0, 'POST', `/v1/deals/${dealId}/claim`, {})
    assert.deepEqual(claimed.claimed, [taskId])
    const [, frozenAfter] = await r0.market!.hub.accountOf(r0.address)
    assert.equal(frozenAfter, 0n, 'the requester is refunded')
    const afterClaim = await hubTotals()
    assert.equal(afterClaim.held, before.held, 'no RLC left the hub')
    assert.equal(afterClaim.accounted, afterClaim.held, 'balances + frozen + stakes + kitty = the hub\'s RLC')

    assert.deepEqual(await errorOf(r0, 'POST', `/v1/tasks/${taskId}/claim`, { dealId }), { status: 409, code: 'CLAIM_ALREADY_DONE' })
    assert.deepEqual(await errorOf(r0, 'POST', `/v1/deals/${dealId}/claim`, {}), { status: 409, code: 'CLAIM_ALREADY_DONE' })
    assert.deepEqual(await errorOf(r0, 'POST', `/v1/tasks/0x${'ab'.repeat(32)}/claim`, { dealId }), { status: 404, code: 'TASK_NOT_FOUND' })
    const failed = await ok(r0, 'GET', `/v1/tasks?deal=${dealId}&status=FAILED`) as unknown as ListView<TaskListEntry>
    assert.deepEqual(failed.items.map((t) => t.taskId), [taskId])
    for (const n of s.all) await n.execution!.scheduler.start()
  })

  it('the kitty goes to the treasury (the hub owner) only, conserved', async () => {
    const k = await ok(p0, 'GET', '/v1/kitty')
    assert.equal(String(k.owner).toLowerCase(), r0.address.toLowerCase())
    assert.deepEqual(await errorOf(p0, 'POST', '/v1/kitty/pay'), { status: 403, code: 'NOT_HUB_OWNER' })
    // a stake may or may not have been seized by the claim (a scheduler drawn by then locks one): both ends are checked
    const kitty = BigInt(String(k.kitty))
    const [balanceBefore] = await r0.market!.hub.accountOf(r0.address)
    if (kitty === 0n) {
      assert.deepEqual(await errorOf(r0, 'POST', '/v1/kitty/pay'), { status: 409, code: 'KITTY_EMPTY' })
    } else {
      const paid = await ok(r0, 'POST', '/v1/kitty/pay')
      assert.equal(paid.amount, kitty.toString())
      assert.equal(BigInt(String(paid.balance)) - balanceBefore, kitty)
    }
    assert.equal(await r0.market!.hub.kitty(), 0n)
    const t = await hubTotals()
    assert.equal(t.held, t.accounted)
  })

  it('after a real task, /metrics shows bids, runs, RPC calls, transactions with gas, level operations and the follower\'s lag', async () => {
    const wasm = await readFile(new URL('../../examples/apps/primes/primes.wasm', import.meta.url))
    const added = await ok(p0, 'POST', '/v1/content', { data: wasm.toString('base64') })
    await ok(p0, 'POST', '/v1/apps', { name: 'primes', cid: added.cid, checksum: added.checksum, price: '0' })
    const { waitFor } = await import('../helpers/wait.js')
    await waitFor(async () => ((await ok(r0, 'GET', '/v1/orderbook?type=app')).orders as Array<{ order: { app: string } }>).length === 2, 30_000, 'the app order at the requester')
    const deal = await ok(r0, 'POST', '/v1/tasks', { app: 'primes', args: '100', trust: 1, maxPrice: (10n * RLC).toString() })
    await waitFor(async () => ((await ok(r0, 'GET', `/v1/deals/${String(deal.dealId)}`)).tasks as Array<{ status: string }>)[0].status === 'COMPLETED', 120_000, 'the task COMPLETED')

    // behind the token on the API; the same registry without it on the metrics listener
    const anonymous = await fetch(`${p0.apiUrl()}/metrics`)
    assert.equal(anonymous.status, 401)
    assert.ok(p0.metricsUrl !== undefined)
    const open = await fetch(p0.metricsUrl)
    assert.equal(open.status, 200)
    assert.match(open.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
    assert.equal((await fetch(p0.metricsUrl.replace('/metrics', '/v1/status'))).status, 404, 'the listener serves /metrics only')
    const value = (text: string, series: string): number => {
      const line = text.split('\n').find((l) => l.startsWith(series + ' '))
      assert.ok(line !== undefined, `${series} in /metrics`)
      return Number(line.slice(series.length + 1))
    }
    const provider = await open.text()
    assert.ok(value(provider, 'iexec_p2p_bids_total{side="provider",outcome="sent",code="OK"}') >= 2, 'the provider bid on both requests')
    assert.ok(value(provider, 'iexec_p2p_executor_run_seconds_count{status="COMPLETED"}') >= 1, 'the run is counted')
    assert.ok(value(provider, 'iexec_p2p_executor_run_seconds_sum{status="COMPLETED"}') > 0)
    assert.ok(value(provider, 'iexec_p2p_chain_transactions_total{event="mined"}') >= 1, 'the worker\'s contribution is counted')
    assert.ok(value(provider, 'iexec_p2p_chain_gas_used_total{event="mined"}') > 21_000)
    assert.ok(value(provider, 'iexec_p2p_chain_rpc_calls_total{method="eth_sendRawTransaction"}') >= 1)
    assert.ok(value(provider, 'iexec_p2p_chain_rpc_calls_total{method="eth_getLogs"}') >= 1, 'the follower reads logs')
    assert.ok(value(provider, 'iexec_p2p_chain_rpc_seconds_count') >= 3)
    assert.ok(value(provider, 'iexec_p2p_db_operations_total{op="put"}') >= 1)
    assert.ok(value(provider, 'iexec_p2p_chain_follower_lag_blocks') >= 0)
    assert.match(provider, /^iexec_p2p_deals_open\{role="worker"\} \d+$/m)
    const requester = await (await fetch(r0.metricsUrl ?? '')).text()
    assert.ok(value(requester, 'iexec_p2p_bids_total{side="requester",outcome="received",code="OK"}') >= 2)
    assert.ok(value(requester, 'iexec_p2p_chain_transactions_total{event="mined"}') >= 2, 'deposit, matches, category, claim')

    // the requester fetches the result from the worker over bitswap: both sides count its bytes
    const bitswap = (text: string, direction: string): number => {
      const line = text.split('\n').find((l) => l.startsWith(`iexec_p2p_libp2p_protocol_bytes_total{protocol="/ipfs/bitswap/1.2.0",direction="${direction}"} `))
      return line === undefined ? 0 : Number(line.split(' ')[1])
    }
    const before = bitswap(requester, 'in')
    const primesTask = ((await ok(r0, 'GET', `/v1/deals/${String(deal.dealId)}`)).tasks as Array<{ taskId: string }>)[0].taskId
    await ok(r0, 'GET', `/v1/results/${primesTask}`)
    const fetched = await (await fetch(r0.metricsUrl ?? '')).text()
    assert.ok(bitswap(fetched, 'in') > before, 'the requester received bitswap bytes')
    assert.ok(bitswap(fetched, 'out') > 0, 'the requester sent its wants')
    assert.ok(bitswap(await (await fetch(p0.metricsUrl)).text(), 'out') > 0, 'the worker sent the blocks')
    assert.ok(value(fetched, 'iexec_p2p_libp2p_wire_bytes_total{direction="in"}') > bitswap(fetched, 'in'), 'the wire carries more than bitswap')
    // every node lists the tasks it schedules by state; the deal's scheduler closes the task once it reads the deal done
    const closedTasks = async (): Promise<number> => {
      let closed = 0
      for (const n of s.all) {
        const text = await (await fetch(n.metricsUrl ?? '')).text()
        assert.match(text, /^iexec_p2p_tasks\{role="scheduler",state="waiting"\} \d+$/m)
        closed += value(text, 'iexec_p2p_tasks{role="scheduler",state="closed"}')
      }
      return closed
    }
    await waitFor(async () => await closedTasks() >= 1, 30_000, 'the scheduler counts the closed task')
  })

  it('the CLI asks the node: category list, deal list, task list, kitty show (--json)', async () => {
    const cli = async (argv: string[]): Promise<unknown> => {
      let out = ''
      let err = ''
      const code = await runCli([...argv, '--json', '--data-dir', r0.dataDir], { out: (x) => { out += x }, err: (x) => { err += x } })
      assert.equal(code, 0, `${argv.join(' ')}: ${err}`)
      return JSON.parse(out)
    }
    const cats = await cli(['category', 'list']) as CategoryView[]
    assert.deepEqual(cats.map((c) => c.name), ['XS', 'S', 'M', 'L', 'XL'])
    const deals = await cli(['deal', 'list', '--role', 'requester']) as ListView<DealListEntry>
    assert.equal(deals.items.length, 2, 'the claimed deal and the primes deal')
    const failed = await cli(['task', 'list', '--status', 'failed']) as ListView<TaskListEntry>
    assert.deepEqual(failed.items.map((t) => t.taskId), [taskId])
    const k = await cli(['kitty', 'show']) as { owner: string }
    assert.equal(k.owner.toLowerCase(), r0.address.toLowerCase())
    let err = ''
    const code = await runCli(['deal', 'claim', dealId, '--json', '--data-dir', r0.dataDir], { out: () => {}, err: (x) => { err += x } })
    assert.notEqual(code, 0)
    assert.equal((JSON.parse(err.trim()) as { error: { code: string } }).error.code, 'CLAIM_ALREADY_DONE')
  })

  it('the CLI checks its arguments before it asks a node', async () => {
    const run = async (argv: string[]): Promise<{ code: number, err: string }> => {
      let err = ''
      const code = await runCli([...argv, '--json', '--api', 'http://127.0.0.1:9', '--token-file', '/nonexistent'], { out: () => {}, err: (x) => { err += x } })
      return { code, err }
    }
    const codeOf = (r: { err: string }): string => (JSON.parse(r.err.trim().split('\n')[0]) as { error: { code: string } }).error.code
    assert.equal(codeOf(await run(['task', 'list', '--role', 'boss'])), 'CLI_BAD_OPTION')
    assert.equal(codeOf(await run(['task', 'list', '--status', 'sleeping'])), 'CLI_BAD_OPTION')
    assert.equal(codeOf(await run(['deal', 'list', '--limit', '0'])), 'CLI_BAD_OPTION')
    assert.equal(codeOf(await run(['task', 'claim', '0x12'])), 'CLI_BAD_OPTION')
    assert.equal(codeOf(await run(['deal', 'claim', 'nope'])), 'CLI_BAD_OPTION')
    assert.equal(codeOf(await run(['category', 'create', 'XL', '--memory', '1', '--disk', '1'])), 'CLI_MISSING_ARGUMENT')
    assert.equal(codeOf(await run(['category', 'create', 'XL', '--time', '0', '--memory', '1', '--disk', '1'])), 'CLI_BAD_OPTION')
    assert.equal(codeOf(await run(['category', 'create', 'XL', '--time', '60', '--memory', '1', '--disk', String(2 ** 32)])), 'CLI_BAD_OPTION')
  })
})
