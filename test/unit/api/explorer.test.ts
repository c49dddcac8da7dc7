/**
 * The explorer without a swarm: its index of hub events (a real level
 * store) rendered through the real routes on a real API server. Proves the
 * audit trail, payments, search (deal id, task id, tx hash, address, CID),
 * the bounded-range backfill, hostile strings rendered inert, and the
 * browser login (one-time code, cookie for GET only, loopback Host only).
 */
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DbController } from '../../../node/db/index.js'
import { startApiServer, type ApiServer } from '../../../node/api/index.js'
import { BrowserSessions, SESSION_COOKIE } from '../../../node/api/session.js'
import { ExplorerStore, type HubEventLike } from '../../../node/api/explorer/store.js'
import { explorerRoutes } from '../../../node/api/routes/explorer.js'
import { esc, html } from '../../../node/api/explorer/html.js'
import { taskId } from '../../../protocols/eip712.js'
import { hubInterface } from '../../../node/chain/index.js'
import { hubEventLike } from '../../../node/api/explorer/feed.js'
import { FakeBackend } from './fake-backend.js'

const TOKEN = 'test-token-0123456789abcdef'
const APP = '0x' + 'a1'.repeat(20)
const OWNER = '0x' + 'b2'.repeat(20)
const REQUESTER = '0x' + 'c3'.repeat(20)
const WORKER = '0x' + 'd4'.repeat(20)
const SCHED = '0x' + 'e5'.repeat(20)
const ZERO = '0x' + '00'.repeat(20)
const XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
const hex = (n: number): string => '0x' + n.toString(16).padStart(64, '0')

function dealCreated (dealId: string, block: number, volume = 1, params = '{"iexec_args":"1"}'): HubEventLike {
  return {
    name: 'DealCreated', block, logIndex: 0, txHash: hex(1000 + block),
    args: { dealid: dealId, scheduler: ZERO, requester: REQUESTER, info: { requestHash: hex(7), app: APP, dataset: ZERO, workers: [WORKER], beneficiary: REQUESTER, callback: ZERO, params, tag: hex(0), volume: String(volume), trust: '1', category: '0', appPrice: '2000000000', datasetPrice: '0', workerPrice: '10000000000', startTime: '1', contributionDeadline: '2', finalDeadline: '3' } }
  }
}

interface Answer { status: number, text: string, headers: Record<string, string | string[] | undefined> }
async function get (url: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method, headers, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, text, headers: res.headers }) })
    })
    req.on('error', reject)
    req.end()
  })
}
const bearer = { authorization: `Bearer ${TOKEN}` }

describe('explorer: index of hub events, pages, search, login', () => {
  let dir: string
  let db: DbController
  let store: ExplorerStore
  let server: ApiServer
  let sessions: BrowserSessions
  let now = Date.now()
  const dealId = hex(0xdea1)
  const task0 = taskId(dealId, 0n).toLowerCase()

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-explorer-'))
    db = new DbController({ path: join(dir, 'db') })
    await db.open()
    store = new ExplorerStore(db, { flushMs: 50 })
    await store.start()
    sessions = new BrowserSessions(TOKEN, { codeTtlMs: 1_000 }, () => now)
    const backend = new FakeBackend()
    server = await startApiServer({
      port: 0,
      token: TOKEN,
      backend,
      sessions,
      routes: explorerRoutes({ store: () => store, market: () => undefined, sessions, status: () => backend.status(), peers: async () => await backend.peers(), resources: async () => await backend.resources({}), url: () => server.url })
    })
    // a hostile app name, CID and params: peers and the chain choose them
    await store.apply({ name: 'AppRegistered', block: 5, logIndex: 0, txHash: hex(5), args: { app: APP, owner: OWNER, name: XSS, cid: 'bafy"><script>alert(3)</script>', checksum: hex(9) } })
    await store.apply(dealCreated(dealId, 10, 1, `{"iexec_args":"${XSS}"}`))
    await store.apply({ name: 'SchedulerDrawn', block: 11, logIndex: 0, txHash: hex(11), args: { dealid: dealId, scheduler: SCHED } })
    await store.apply({ name: 'TaskFinalized', block: 12, logIndex: 3, txHash: hex(12), args: { taskid: task0, dealid: dealId, resultHash: hex(99), resultsCid: 'bafyresult' } })
    // delivered twice (a crash between two cursor saves): counted once
    await store.apply({ name: 'TaskFinalized', block: 12, logIndex: 3, txHash: hex(12), args: { taskid: task0, dealid: dealId, resultHash: hex(99), resultsCid: 'bafyresult' } })
  })
  after(async () => {
    await server?.close()
    await store?.stop()
    await db?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('keeps a per-task audit trail with blocks, tx hashes, result and payments', async () => {
    const t = await store.tasks.get(task0)
    assert.ok(t !== undefined)
    assert.equal(t.status, 'COMPLETED')
    assert.equal(t.resultCid, 'bafyresult')
    assert.deepEqual(t.trail.map((s) => [s.name, s.block, s.txHash]), [['DealCreated', 10, hex(1010)], ['TaskFinalized', 12, hex(12)]])
    // app owner its price; the only worker 90 % of the task price, the scheduler the rest
    assert.deepEqual(t.payments.map((p) => [p.role, p.to, p.amount]), [['app owner', OWNER, '2000000000'], ['worker', WORKER, '9000000000'], ['scheduler', SCHED, '1000000000']])
    assert.equal(store.stats.completed, 1, 'a duplicate delivery is not counted twice')
    const app = await store.assets.get(APP)
    assert.equal(app?.earned, '2000000000')
    assert.equal(app?.deals, 1)
    const worker = await store.accounts.get(WORKER)
    assert.equal(worker?.workerEarned, '9000000000')
  })

  it('reads a DealCreated decoded by the hub\'s ABI: its struct by name, its workers as a list', () => {
    const iface = hubInterface()
    const info = [hex(7), APP, ZERO, [WORKER, SCHED], REQUESTER, ZERO, 'p', hex(0), 2n, 1n, 0n, 2n, 0n, 10n, 1n, 2n, 3n]
    const log = iface.encodeEventLog(iface.getEvent('DealCreated')!, [dealId, ZERO, REQUESTER, info])
    const parsed = iface.parseLog(log)!
    const e = hubEventLike({ name: parsed.name, args: parsed.args, address: ZERO, blockNumber: 1, blockHash: hex(1), logIndex: 0, transactionHash: hex(2), topics: log.topics, data: log.data })
    const got = e?.args.info as Record<string, unknown>
    assert.deepEqual((got.workers as string[]).map((w) => w.toLowerCase()), [WORKER, SCHED])
    assert.equal(got.volume, '2')
    assert.equal(got.params, 'p')
  })

  it('renders hostile names, CIDs and params inert (escaped), under a strict CSP', async () => {
    for (const path of ['/explorer', `/explorer/tasks/${task0}`, `/explorer/deals/${dealId}`, '/explorer/assets', `/explorer/assets/${APP}`]) {
      const r = await get(server.url, path, bearer)
      assert.equal(r.status, 200, path)
      assert.ok(!r.text.includes('<img src=x'), `${path}: no live <img>`)
      assert.ok(!r.text.includes('<script>alert'), `${path}: no live <script>`)
      assert.ok(!r.text.includes('"><script'), `${path}: no attribute break-out`)
      // the only script is the explorer's own
      assert.deepEqual([...r.text.matchAll(/<script[^>]*>/g)].map((m) => m[0]), ['<script src="/explorer/static/explorer.js">'], path)
      assert.match(String(r.headers['content-security-policy']), /script-src 'self'/)
    }
    const assets = await get(server.url, '/explorer/assets', bearer)
    assert.ok(assets.text.includes(esc(XSS)), 'the name is shown, escaped')
    assert.equal(html`<b>${XSS}</b>`.text, `<b>${esc(XSS)}</b>`)
    assert.equal(esc(`'"<>&\``), '&#39;&quot;&lt;&gt;&amp;&#96;')
  })

  it('searches by task id, deal id, transaction hash, address and CID', async () => {
    const cases: Array<[string, string]> = [
      [task0, `/explorer/tasks/${task0}`],
      [dealId.toUpperCase().replace('0X', '0x'), `/explorer/deals/${dealId}`],
      [hex(12), `/explorer/tasks/${task0}`],
      [hex(1010), `/explorer/deals/${dealId}`],
      ['bafyresult', `/explorer/tasks/${task0}`],
      [APP, `/explorer/assets/${APP}`],
      [WORKER, `/explorer/address/${WORKER}`]
    ]
    for (const [q, where] of cases) {
      const r = await get(server.url, `/explorer/search?q=${encodeURIComponent(q)}`, bearer)
      assert.equal(r.status, 303, q)
      assert.equal(r.headers.location, where, q)
    }
    const none = await get(server.url, `/explorer/search?q=${encodeURIComponent(XSS)}`, bearer)
    assert.equal(none.status, 200)
    assert.match(none.text, /0 result\(s\)/)
    assert.ok(!none.text.includes('<img src=x'))
    const bad = await get(server.url, '/explorer/tasks/0x12', bearer)
    assert.equal(bad.status, 400)
  })

  it('persists through a flush and reads a late history back in bounded ranges (backfill)', async () => {
    await store.flush()
    const again = new ExplorerStore(db)
    await again.start()
    assert.equal((await again.tasks.get(task0))?.status, 'COMPLETED', 'read back from level')
    const ranges: Array<[number, number]> = []
    const late = hex(0xbeef)
    const lateTask = taskId(late, 1n).toLowerCase()
    // a deal of 2 tasks made before the index: the backfill reads blocks 13..40 in ranges of 10
    await again.backfill(13, 40, 10, async (from, to) => {
      ranges.push([from, to])
      const out: HubEventLike[] = []
      if (from <= 20 && 20 <= to) out.push(dealCreated(late, 20, 2))
      if (from <= 33 && 33 <= to) out.push({ name: 'TaskClaimed', block: 33, logIndex: 1, txHash: hex(33), args: { taskid: lateTask, dealid: late } })
      return out
    })
    assert.deepEqual(ranges, [[13, 22], [23, 32], [33, 40]])
    assert.equal(again.indexedThrough, 40)
    const t = await again.tasks.get(lateTask)
    assert.equal(t?.status, 'FAILED')
    assert.equal(t?.payments[0].role, 'requester (refund)')
    assert.deepEqual((await again.latestDeals(10)).map((d) => d.dealId), [late, dealId], 'newest first')
    await again.stop()
  })

  it('counts each task once while a flush is on its way to level (reads see the writes in flight)', async () => {
    const busy = new ExplorerStore(db, { flushMs: 60_000 })
    await busy.start()
    // the counts go on from what this level store already holds
    const base = { ...busy.stats }
    const id = hex(0xf00d)
    await busy.apply(dealCreated(id, 100, 3))
    // hold the tasks' batch write until the next update has read the task
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => { release = resolve })
    const batch = busy.tasks.repo.batch.bind(busy.tasks.repo)
    busy.tasks.repo.batch = async (ops) => { await gate; await batch(ops) }
    const flushing = busy.flush()
    await new Promise((resolve) => setImmediate(resolve))
    await busy.apply({ name: 'TaskFinalized', block: 101, logIndex: 0, txHash: hex(0xe000), args: { taskid: taskId(id, 0n), dealid: id, resultHash: hex(1), resultsCid: 'bafyinflight' } })
    release()
    await flushing
    await busy.stop()
    assert.equal(busy.stats.tasks - base.tasks, 3, 'the finalized task is the deal\'s, not a second record')
    assert.equal(busy.stats.completed - base.completed, 1)
    assert.equal((await busy.tasks.get(taskId(id, 0n).toLowerCase()))?.trail.length, 2, 'its trail has the deal and the finalize')
  })

  it('follows a trust-3 task: contributions, consensus, reveals; the revealers share the workers\' pot', async () => {
    const w2 = '0x' + 'f6'.repeat(20)
    const w3 = '0x' + 'f7'.repeat(20)
    const id = hex(0x7e3)
    const t = taskId(id, 0n).toLowerCase()
    const good = hex(0x900d)
    const ev = (name: string, block: number, args: Record<string, unknown>, logIndex = 0): HubEventLike => ({ name, block, logIndex, txHash: hex(0x7000 + block), args: { taskid: t, ...args } })
    await store.apply(dealCreated(id, 400, 1))
    await store.apply({ name: 'SchedulerDrawn', block: 401, logIndex: 0, txHash: hex(0x7401), args: { dealid: id, scheduler: SCHED } })
    await store.apply(ev('TaskInitialized', 402, { dealid: id, idx: '0' }))
    await store.apply(ev('TaskContributed', 403, { worker: WORKER, resultHash: good }))
    await store.apply(ev('TaskContributed', 404, { worker: w3, resultHash: hex(0xbad) }))
    await store.apply(ev('TaskContributed', 405, { worker: w2, resultHash: good }))
    // in the same transaction as the contribution that reached it
    await store.apply(ev('TaskConsensus', 405, { consensus: good, revealDeadline: '99' }, 1))
    assert.equal((await store.tasks.get(t))?.status, 'REVEALING')
    await store.apply(ev('TaskRevealed', 406, { worker: WORKER, digest: hex(1) }))
    await store.apply(ev('TaskRevealed', 407, { worker: w2, digest: hex(1) }))
    await store.apply(ev('TaskFinalized', 408, { dealid: id, resultHash: good, resultsCid: 'bafytrust3' }))
    const task = await store.tasks.get(t)
    assert.equal(task?.status, 'COMPLETED')
    assert.equal(task?.consensus, good)
    assert.deepEqual(task?.contributions.map((c) => c.worker), [WORKER, w3, w2])
    assert.deepEqual(task?.reveals.map((r) => r.worker), [WORKER, w2])
    assert.deepEqual(task?.trail.map((s) => s.name), ['DealCreated', 'TaskInitialized', 'TaskContributed', 'TaskContributed', 'TaskContributed', 'TaskConsensus', 'TaskRevealed', 'TaskRevealed', 'TaskFinalized'])
    // 90 % of 10 RLC shared by the two revealers (the hub weighs them: shown as not exact); the wrong one gets nothing
    assert.deepEqual(task?.payments.filter((p) => p.role === 'worker').map((p) => [p.to, p.amount, p.exact]), [[WORKER, '4500000000', false], [w2, '4500000000', false]])
    const page = await get(server.url, `/explorer/tasks/${t}`, bearer)
    assert.match(page.text, /≈ 4\.5 RLC/)
  })

  it('places a task past its deal\'s placeholders by its index when its first event comes', async () => {
    const small = new ExplorerStore(db, { placeholderTasks: 2 })
    await small.start()
    const id = hex(0xba9)
    await small.apply(dealCreated(id, 300, 5))
    assert.equal(await small.tasks.get(taskId(id, 4n).toLowerCase()), undefined, 'no placeholder past 2')
    await small.apply({ name: 'TaskFinalized', block: 301, logIndex: 0, txHash: hex(0xe301), args: { taskid: taskId(id, 4n), dealid: id, resultHash: hex(1), resultsCid: 'bafylate' } })
    const t = await small.tasks.get(taskId(id, 4n).toLowerCase())
    assert.equal(t?.idx, 4)
    assert.equal(t?.status, 'COMPLETED')
    assert.ok((await small.latestTasks(5)).some((x) => x.taskId === t?.taskId), 'listed with the newest tasks')
    await small.stop()
  })

  it('logs a browser in once with a short-lived code; the cookie reads (GET) but changes nothing', async () => {
    const r = await get(server.url, '/v1/explorer/login', bearer, 'POST')
    assert.equal(r.status, 200)
    const { url } = JSON.parse(r.text) as { url: string }
    const path = url.slice(server.url.length)
    assert.match(path, /^\/explorer\/login\?code=[A-Za-z0-9_-]{32}$/)
    const host = { host: new URL(server.url).host }

    // no session yet
    assert.equal((await get(server.url, '/explorer', host)).status, 401)
    const login = await get(server.url, path, host)
    assert.equal(login.status, 303)
    assert.equal(login.headers.location, '/explorer')
    const setCookie = String(login.headers['set-cookie'])
    assert.match(setCookie, new RegExp(`^${SESSION_COOKIE}=[A-Za-z0-9_-]+; HttpOnly; SameSite=Strict; Path=/`))
    assert.ok(!setCookie.includes(TOKEN), 'the token itself never reaches the browser')
    const cookie = setCookie.split(';')[0]

    // single use
    assert.equal((await get(server.url, path, host)).status, 403)
    // the cookie reads pages and the API, from a loopback Host only, and never a POST
    assert.equal((await get(server.url, '/explorer/tasks', { ...host, cookie })).status, 200)
    assert.equal((await get(server.url, '/v1/status', { ...host, cookie })).status, 200)
    assert.equal((await get(server.url, '/explorer/tasks', { host: 'evil.example:80', cookie })).status, 401)
    assert.equal((await get(server.url, '/v1/explorer/login', { ...host, cookie }, 'POST')).status, 401)
    assert.equal((await get(server.url, '/explorer', { ...host, cookie: `${SESSION_COOKIE}=forged` })).status, 401)

    // a code past its time is refused
    const late = JSON.parse((await get(server.url, '/v1/explorer/login', bearer, 'POST')).text) as { url: string }
    now += 2_000
    assert.equal((await get(server.url, late.url.slice(server.url.length), host)).status, 403)
  })
})
