/**
 * The explorer in a real browser (Debian's chromium, headless, driven by
 * playwright-core) over a real swarm: 2 providers and a requester
 * (IexecNodes in this process, libp2p on 127.0.0.1), a real anvil with the
 * hub, a WASI app. The browser logs in with the one-time link, a task
 * submitted meanwhile appears and reaches COMPLETED without a reload (the
 * page follows /v1/events), and search finds it by its transaction hash.
 * The CLI's `deal show --watch` and `task show --watch` follow the same
 * task over the event stream.
 *
 * EXPLORER_SCREENSHOTS=docs writes the README's screenshots to docs/.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { taskId } from '../../protocols/eip712.js'
import { runCli } from '../../node/cli/program.js'
import type { IexecNode } from '../../node/node.js'
import { DbController } from '../../node/db/index.js'
import { dataDirPaths } from '../../node/config/index.js'
import { RLC, api, ok, startSwarm, waitFor } from './market-helpers.js'
import type { Swarm } from './market-helpers.js'

const PRIMES = new URL('../../examples/apps/primes/primes.wasm', import.meta.url)
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

describe('explorer in a real browser (chromium) over a running swarm', function () {
  this.timeout(300_000)
  const cleanup: Array<() => Promise<void>> = []
  let s: Swarm
  let requester: IexecNode
  let browser: Browser
  let page: Page
  let shots: string

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `chromium at ${CHROMIUM} (Debian package chromium; .ci/run installs it)`)
    shots = process.env.EXPLORER_SCREENSHOTS === 'docs' ? new URL('../../docs/', import.meta.url).pathname : await mkdtemp(join(tmpdir(), 'iexec-explorer-shots-'))
    await mkdir(shots, { recursive: true })
    if (process.env.EXPLORER_SCREENSHOTS !== 'docs') cleanup.push(async () => { await rm(shots, { recursive: true, force: true }) })
    s = await startSwarm({ providers: 2, requesters: 1, provider: () => ({ priceFloor: RLC / 10n }), // a long window: a request's first bid ends it (trust 1), and a loaded machine may take seconds to bid
    market: { biddingWindowMs: 20_000 } }, cleanup)
    requester = s.requesters[0]
    const wasm = await readFile(PRIMES)
    const added = await ok(s.providers[0], 'POST', '/v1/content', { data: wasm.toString('base64') })
    // a hostile app name: the explorer must show it as text
    await ok(s.providers[0], 'POST', '/v1/apps', { name: 'primes', cid: added.cid, checksum: added.checksum, price: '1000000' })
    await ok(s.providers[1], 'POST', '/v1/apps', { name: '<img src=x onerror=window.__xss=1>', cid: added.cid, checksum: added.checksum, price: '0' })
    await waitFor(async () => ((await ok(requester, 'GET', '/v1/orderbook?type=app')).orders as unknown[]).length === 2, 30_000, 'both app orders at the requester')
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] })
    cleanup.push(async () => { await browser.close() })
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
    // a machine shared with other loads can take long to answer a page: generous bounds
    page.setDefaultTimeout(90_000)
    page.setDefaultNavigationTimeout(90_000)
  })
  after(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  it('logs in once, shows a task live until COMPLETED without a reload, and finds it by its tx hash', async () => {
    // `iexec-p2p explorer` prints the one-time link (stdout) and how to use it (stderr)
    const printed: string[] = []
    const told: string[] = []
    assert.equal(await runCli(['explorer', '--no-open', '--data-dir', requester.dataDir], { out: (t) => { printed.push(t) }, err: (t) => { told.push(t) } }), 0)
    const url = printed.join('').trim()
    assert.match(url, new RegExp(`^${requester.apiUrl()}/explorer/login\\?code=[A-Za-z0-9_-]{32}$`))
    assert.match(told.join(''), /works once/)
    const landed = await page.goto(url)
    assert.equal(landed?.status(), 200)
    assert.equal(new URL(page.url()).pathname, '/explorer', 'the login redirects to the explorer')
    // the one-time link does not work twice
    const again = await (await browser.newPage()).goto(url, { timeout: 90_000 })
    assert.equal(again?.status(), 403)

    await page.goto(`${requester.apiUrl()}/explorer/tasks`)
    await page.waitForSelector('#live.on', { timeout: 60_000 })
    await page.evaluate(() => { (globalThis as unknown as { __sameDocument: number }).__sameDocument = 26 })

    // the CLI's watches follow the same task over the event stream, in this process
    const out: string[] = []
    const err: string[] = []
    const io = { out: (t: string) => { out.push(t) }, err: (t: string) => { err.push(t) } }
    const deal = await ok(requester, 'POST', '/v1/tasks', { app: 'primes', args: '100', trust: 1, maxPrice: (10n * RLC).toString() })
    const dealId = String(deal.dealId)
    const id = taskId(dealId, 0).toLowerCase()
    const watches = Promise.all([
      runCli(['deal', 'show', dealId, '--watch', '--timeout', '180', '--data-dir', requester.dataDir], io),
      runCli(['task', 'show', id, '--watch', '--timeout', '180', '--data-dir', requester.dataDir], io)
    ])

    // the row appears, then turns COMPLETED, in the same document
    await page.waitForSelector(`tr:has(span[title="${id}"])`, { timeout: 60_000 }).catch(async (e: unknown) => {
      throw new Error(`${String(e)}\nstats ${JSON.stringify(requester.explorer?.stats)} events ${requester.events.lastId}\n${(await page.textContent('main')) ?? ''}`)
    })
    await page.waitForSelector(`tr:has(span[title="${id}"]) .status.COMPLETED`, { timeout: 180_000 })
    assert.equal(await page.evaluate(() => (globalThis as unknown as { __sameDocument?: number }).__sameDocument), 26, 'no reload: the page updated itself')
    await page.screenshot({ path: join(shots, 'explorer-tasks.png') })

    assert.deepEqual(await watches, [0, 0], `the watches ended well: ${err.join('')}`)
    assert.ok(out.some((t) => t.includes(`deal       ${dealId}`)), 'deal show printed the deal')
    assert.ok(out.some((t) => t.includes(`task       ${id}`) && t.includes('COMPLETED')), 'task show printed the completed task')
    assert.ok(err.some((t) => /deal 0x[0-9a-f]{6}…[0-9a-f]{4}: 1 task\(s\): 1 COMPLETED/.test(t)), 'deal show --watch told the end on stderr')

    // search by the transaction that finalized the task
    const status = await ok(requester, 'GET', `/v1/tasks/${id}`)
    const finalized = (status.events as Array<{ name: string, txHash?: string }>).find((e) => e.name === 'finalized')
    assert.ok(finalized?.txHash !== undefined, 'the task has a finalize transaction')
    await page.fill('input[name=q]', finalized.txHash)
    await Promise.all([page.waitForURL(`**/explorer/tasks/${id}`), page.click('form.search button')])
    assert.equal(await page.textContent('#task-id'), id)
    assert.equal((await page.textContent('#task-status'))?.trim(), 'COMPLETED')
    assert.ok((await page.textContent('main'))?.includes(finalized.txHash.slice(0, 8)), 'the audit trail lists the transaction')
    await page.screenshot({ path: join(shots, 'explorer-task.png'), fullPage: true })

    // a request below every provider's floor makes no deal: the market view says why, with the providers' reasons
    // orderbook --watch --json on the same node prints the request as it comes into the book
    const book: string[] = []
    const listening = requester.events.subscribers
    const bookWatch = runCli(['orderbook', 'request', '--watch', '--timeout', '14', '--json', '--data-dir', requester.dataDir], { out: (t) => { book.push(t) }, err: () => {} })
    await waitFor(() => requester.events.subscribers > listening, 10_000, 'orderbook --watch listening')
    const refused = await api(requester, 'POST', '/v1/tasks', { app: 'primes', args: '7', trust: 1, maxPrice: '1', biddingWindowMs: 10_000 })
    assert.equal((refused.body.error as { code: string }).code, 'NO_BIDS')
    assert.equal(await bookWatch, 0)
    const changes = book.join('').trim().split('\n').map((l) => JSON.parse(l) as { change: string, order: { type: string, signer: string } })
    assert.ok(changes.some((c) => c.change === 'added' && c.order.type === 'request' && c.order.signer === requester.address), `the request printed as added: ${book.join('')}`)
    await page.goto(`${requester.apiUrl()}/explorer/market`)
    const market = (await page.textContent('main')) ?? ''
    assert.ok(market.includes('NO_BIDS') && market.includes('PRICE_TOO_LOW'), 'the request without a deal and why')
    assert.ok(market.includes(dealId.slice(0, 8)), 'the matched request links its deal')

    // the other views render; the hostile app name is text, never markup
    for (const [path, file] of [['/explorer', 'explorer-overview.png'], ['/explorer/market', 'explorer-market.png'], ['/explorer/swarm', 'explorer-swarm.png'], ['/explorer/assets', 'explorer-assets.png'], ['/explorer/node', 'explorer-node.png']] as const) {
      const r = await page.goto(`${requester.apiUrl()}${path}`)
      assert.equal(r?.status(), 200, path)
      await page.screenshot({ path: join(shots, file), fullPage: path !== '/explorer/swarm' })
    }
    await page.goto(`${requester.apiUrl()}/explorer/assets`)
    assert.ok((await page.textContent('main'))?.includes('<img src=x onerror=window.__xss=1>'), 'the name shows as text')
    assert.equal(await page.evaluate(() => (globalThis as unknown as { __xss?: number }).__xss), undefined, 'the name ran nothing')
    assert.equal(await page.locator('main img').count(), 0)

    // a node started after the deal shows it (its follower reads the hub from the deploy block) ...
    const late = await s.addNode('late', 'requester', { bootstrap: [s.providers[0].multiaddrs()[0]] })
    await waitFor(async () => (await late.explorer?.tasks.get(id))?.status === 'COMPLETED', 60_000, 'the late node indexed the completed task')
    // ... and so does one whose index is gone while its follower's cursor is past the deal: the
    // blocks it followed are read back in bounded ranges at start (backfill)
    await late.stop()
    const db = new DbController({ path: dataDirPaths(late.dataDir).db })
    await db.open()
    const keys: string[] = []
    for await (const k of db.store().keys({ gte: 'xp-', lt: 'xp.' })) keys.push(k)
    assert.ok(keys.length > 0, 'the index was in level')
    await db.store().batch(keys.map((key) => ({ type: 'del' as const, key })))
    await db.close()
    const restarted = await s.restart(late.dataDir, { bootstrap: [s.providers[0].multiaddrs()[0]] })
    await waitFor(async () => (await restarted.explorer?.tasks.get(id))?.status === 'COMPLETED', 60_000, 'the backfill indexed the completed task again')
    assert.equal((await restarted.explorer?.tasks.get(id))?.resultCid, status.resultCid)
  })
})
