/**
 * An operator's routes on real nodes over a real anvil: categories with
 * their limits (list, create by the hub owner only, bad input coded), deal
 * and task lists by role and status, claims by hand (too early, then done,
 * then already done) with the RLC in the hub conserved, and the kitty
 * (its treasury is the hub owner). The CLI's argument checks are tested
 * without a node at the end.
 */
import assert from 'node:assert/strict'
import { Hub__factory } from '../../contracts-abi/index.js'
import { Wallet } from 'ethers'
import { runCli } from '../../node/cli/index.js'
import { RLC, api, ok, startSwarm } from './market-helpers.js'
import type { Swarm } from './market-helpers.js'
import type { IexecNode } from '../../node/node.js'
import type { CategoryView, DealListEntry, ListView, TaskListEntry } from '../../node/market/operator-routes.js'

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
    s = await startSwarm({ providers: 1, market: { biddingWindowMs: 2_000 } }, cleanup)
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
  })

  it('claims by hand: too early, then refunded with the RLC conserved, then already done', async () => {
    assert.deepEqual(await errorOf(r0, 'POST', `/v1/tasks/${taskId}/claim`, {}), { status: 409, code: 'CLAIM_TOO_EARLY' })
    assert.deepEqual(await errorOf(r0, 'POST', `/v1/deals/${dealId}/claim`, {}), { status: 409, code: 'CLAIM_TOO_EARLY' })
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
