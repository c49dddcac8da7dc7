/**
 * The explorer's pages, served on the API port under /explorer: swarm,
 * market, deals and tasks (a per-task audit trail), apps and datasets,
 * this node's wallet and earnings, and search. Server-rendered from the
 * explorer's index of hub events (store.ts) and the node's own records;
 * every value is escaped (html.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ApiStream, type ApiRoute } from '../router.js'
import { HttpError } from '../errors.js'
import type { NodeStatus, PeerView, ResourceView } from '../backend.js'
import type { BrowserSessions } from '../session.js'
import { LOGIN_PATH } from '../session.js'
import type { MarketService } from '../../market/service.js'
import type { ExplorerStore, ExplorerDeal, ExplorerTask, ExplorerAsset, ExplorerRef } from '../explorer/store.js'
import { Html, html, link, short, enc, rlc, table, page } from '../explorer/html.js'
import { EXPLORER_CSS, EXPLORER_JS } from '../explorer/static.js'

export interface ExplorerDeps {
  /** undefined on a node without a chain */
  store: () => ExplorerStore | undefined
  market: () => MarketService | undefined
  sessions: BrowserSessions
  status: () => NodeStatus
  peers: () => Promise<PeerView[]>
  /** providers' adverts (a DHT query) */
  resources: () => Promise<ResourceView[]>
  /** the API's own URL, for the login link */
  url: () => string
}

/** Rows a list page shows. */
const LIST = 50
/** A DHT or chain read a page waits for, at most (the page says what it could not read). */
const SLOW_READ_MS = 3_000

/** What a browser may load: this origin's script and style only; no frames, no forms elsewhere. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

function send (status: number, body: string, type: string, extra: Record<string, string> = {}): ApiStream {
  return new ApiStream((_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(status, {
      'content-type': type,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'content-security-policy': CSP,
      ...extra
    })
    res.end(body)
  })
}

const htmlPage = (title: string, path: string, body: Html, live: string[] = []): ApiStream => send(200, page(title, path, body, live), 'text/html; charset=utf-8')

async function bounded<T> (p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<undefined>((resolve) => { timer = setTimeout(() => { resolve(undefined) }, ms) })])
  } catch {
    return undefined
  } finally {
    if (timer !== undefined) clearTimeout(timer)
  }
}

const ZERO = /^0x0{40}$/
const status = (s: string): Html => html`<span class="status ${s}">${s}</span>`
const taskLink = (id: string): Html => link(`/explorer/tasks/${enc(id)}`, short(id))
const dealLink = (id: string): Html => link(`/explorer/deals/${enc(id)}`, short(id))
const addrLink = (a: string | null): Html => a === null ? html`<span class="note">not drawn yet</span>` : ZERO.test(a) ? html`<span class="note">none</span>` : link(`/explorer/address/${enc(a)}`, short(a))
const txLink = (tx: string): Html => link(`/explorer/search?q=${enc(tx)}`, short(tx))
const cidText = (c: string | null): Html => c === null || c === '' ? html`<span class="note">-</span>` : html`<span class="mono">${c}</span>`

function noChain (): Html {
  return html`<p class="empty">This node has no chain configured (config.json "chain"): there is no hub history to show.</p>`
}

function taskRows (tasks: ExplorerTask[]): Html[][] {
  return tasks.map((t) => [taskLink(t.taskId), dealLink(t.dealId), html`${t.idx}`, status(t.status), html`${t.contributions.length} / ${t.reveals.length}`, cidText(t.resultCid), html`${t.trail.at(-1)?.block ?? ''}`])
}
const TASK_HEAD = ['task', 'deal', '#', 'status', 'contrib. / reveals', 'result CID', 'last block']

function dealRows (deals: ExplorerDeal[], apps: Map<string, ExplorerAsset | undefined>): Html[][] {
  return deals.map((d) => [dealLink(d.dealId), appName(d.app, apps), addrLink(d.requester), addrLink(d.scheduler), html`${d.volume}`, html`${d.trust}`, html`${d.completed} done${d.failed > 0 ? `, ${d.failed} failed` : ''}`, html`${d.block}`])
}
const DEAL_HEAD = ['deal', 'app', 'requester', 'scheduler', 'volume', 'trust', 'tasks', 'block']

function appName (address: string, apps: Map<string, ExplorerAsset | undefined>): Html {
  const a = apps.get(address)
  return link(`/explorer/assets/${enc(address)}`, a !== undefined ? html`${a.name} ${short(address)}` : short(address))
}

async function appsOf (store: ExplorerStore, deals: ExplorerDeal[]): Promise<Map<string, ExplorerAsset | undefined>> {
  const m = new Map<string, ExplorerAsset | undefined>()
  for (const d of deals) if (!m.has(d.app)) m.set(d.app, await store.assets.get(d.app))
  return m
}

function trail (steps: ExplorerTask['trail']): Html {
  return table(['event', 'block', 'transaction', 'who', 'value'], steps.map((s) => [html`${s.name}`, html`${s.block}`, txLink(s.txHash), s.worker !== undefined ? addrLink(s.worker) : html``, s.value !== undefined ? html`<span class="mono">${s.value}</span>` : html``]))
}

function kv (rows: Array<[string, Html | string | number]>): Html {
  return html`<dl class="kv">${rows.map(([k, v]) => html`<dt>${k}</dt><dd>${v instanceof Html ? v : html`${v}`}</dd>`)}</dl>`
}

function orderPrice (type: string, order: Record<string, unknown>): string {
  const key = type === 'apporder' ? 'appprice' : type === 'datasetorder' ? 'datasetprice' : type === 'requestorder' ? 'workerpoolmaxprice' : 'price'
  return rlc(String(order[key] ?? '0'))
}

function parseId (raw: string, what: string): string {
  if (!/^0x[0-9a-fA-F]{64}$/.test(raw)) throw new HttpError(400, 'API_BAD_REQUEST', `${what} must be 0x and 64 hex digits`)
  return raw.toLowerCase()
}

export function explorerRoutes (deps: ExplorerDeps): ApiRoute[] {
  const overview = async (): Promise<ApiStream> => {
    const store = deps.store()
    const s = deps.status()
    if (store === undefined) return htmlPage('Overview', '/explorer', noChain())
    const c = store.stats
    const [tasks, deals] = await Promise.all([store.latestTasks(10), store.latestDeals(10)])
    const apps = await appsOf(store, deals)
    const card = (n: number | string, l: string): Html => html`<div class="card"><div class="n">${n}</div><div class="l">${l}</div></div>`
    return htmlPage('Overview', '/explorer', html`
<div class="cards">${card(s.connections, 'peers connected')}${card(c.deals, 'deals')}${card(c.tasks, 'tasks')}${card(c.completed, 'completed')}${card(c.failed, 'failed')}${card(c.apps, 'apps')}${card(c.datasets, 'datasets')}${card(store.indexedThrough, 'indexed through block')}</div>
<p class="note">Node ${short(s.peerId)} · ${s.role} · wallet ${addrLink(s.address.toLowerCase())} · version ${s.version}</p>
<h2>Latest tasks</h2>${table(TASK_HEAD, taskRows(tasks))}
<h2>Latest deals</h2>${table(DEAL_HEAD, dealRows(deals, apps))}`, ['task', 'deal', 'peer'])
  }

  const swarm = async (): Promise<ApiStream> => {
    const [peers, providers] = await Promise.all([bounded(deps.peers(), SLOW_READ_MS), bounded(deps.resources(), SLOW_READ_MS)])
    const market = deps.market()
    const scores = new Map<string, string>()
    if (market !== undefined && providers !== undefined) {
      await Promise.all(providers.slice(0, 64).map(async (p) => {
        const sc = await bounded(market.hub.scoreOf(p.address), SLOW_READ_MS)
        if (sc !== undefined) scores.set(p.address.toLowerCase(), sc.toString())
      }))
    }
    return htmlPage('Swarm', '/explorer/swarm', html`
<h2>Peers (${peers?.length ?? '?'})</h2>
${peers === undefined ? html`<p class="empty">the peer list did not answer in time</p>` : table(['peer', 'addresses', 'latency'], peers.map((p) => [html`<span class="mono">${p.peerId}</span>`, html`<span class="mono">${p.multiaddrs.join(' ')}</span>`, html`${p.latencyMs === null ? '-' : `${p.latencyMs} ms`}`]), 'no peer connected')}
<h2>Providers and their adverts (${providers?.length ?? '?'})</h2>
${providers === undefined ? html`<p class="empty">the DHT did not answer in time</p>` : table(['peer', 'address', 'cpus', 'memory', 'gpus', 'executors', 'category', 'price floor', 'tags', 'score', 'version', 'signed'], providers.map((p) => [
      short(p.peerId), addrLink(p.address.toLowerCase()), html`${p.cpus}`, html`${p.memoryMb} MiB`, html`${p.gpus}`, html`${p.executors.join(', ')}`, html`${p.category}`, html`${rlc(p.priceFloor)}`, html`${p.tags.join(', ')}`, html`${scores.get(p.address.toLowerCase()) ?? '-'}`, html`${p.version}`, html`${new Date(p.timestamp).toISOString().slice(0, 19)}Z`
    ]), 'no provider advert found')}
<p class="note">Scores are the hub's (consensuses won). Adverts are signed resource records found in the DHT.</p>`, ['peer'])
  }

  const marketPage = async (): Promise<ApiStream> => {
    const market = deps.market()
    const store = deps.store()
    if (market === undefined || store === undefined) return htmlPage('Market', '/explorer/market', noChain())
    const orders = await market.book.query({ limit: 200 })
    const requests = orders.filter((o) => o.type === 'requestorder')
    const decisions = market.provider?.decisions ?? []
    const declineOf = new Map(decisions.map((d) => [d.requestHash.toLowerCase(), d]))
    const deals = await store.latestDeals(200)
    const dealOf = new Map(deals.map((d) => [d.requestHash, d]))
    const bidsFor = new Map<string, number>()
    for (const o of orders) if (o.type === 'bid') { const r = String((o.message.order as { requestHash: string }).requestHash).toLowerCase(); bidsFor.set(r, (bidsFor.get(r) ?? 0) + 1) }
    const requestRows: Html[][] = []
    const shown = new Set<string>()
    // this node's own requests first: it knows why one made no deal (the providers' reasons)
    for (const r of [...store.ownRequests].reverse().slice(0, 30)) {
      if (r.requestHash !== undefined) shown.add(r.requestHash.toLowerCase())
      const why = r.dealId !== undefined
        ? html`deal ${dealLink(r.dealId)}`
        : html`<code>${r.error?.code}</code> ${r.error?.message}${r.error !== undefined && r.error.reasons.length > 0 ? html`<ul>${r.error.reasons.map((x) => html`<li><code>${x.code}</code> ${x.reason}</li>`)}</ul>` : ''}`
      requestRows.push([r.requestHash !== undefined ? short(r.requestHash) : html`<span class="note">not signed</span>`, html`this node`, html`${r.app}`, html`${r.volume}`, html`${r.trust}`, html`${new Date(r.at).toISOString().slice(11, 19)}`, why])
    }
    for (const o of requests) {
      const r = o.message.order as unknown as Record<string, unknown>
      const hash = o.hash.toLowerCase()
      if (shown.has(hash)) continue
      shown.add(hash)
      const deal = dealOf.get(hash)
      const d = declineOf.get(hash)
      const why = deal !== undefined
        ? html`deal ${dealLink(deal.dealId)}`
        : d !== undefined && !d.decision.bid
          ? html`no deal yet; this node declined: <code>${d.decision.code}</code> ${d.decision.reason}`
          : html`no deal yet (${bidsFor.get(hash) ?? 0} bid(s) seen here)`
      requestRows.push([short(hash), addrLink(String(r.requester).toLowerCase()), addrLink(String(r.app).toLowerCase()), html`${String(r.volume)}`, html`${String(r.trust)}`, html`${new Date(o.receivedAt).toISOString().slice(11, 19)}`, why])
    }
    // requests the hub matched lately (their orders left the book with the deal)
    for (const d of deals.slice(0, 20)) {
      if (shown.has(d.requestHash)) continue
      shown.add(d.requestHash)
      requestRows.push([short(d.requestHash), addrLink(d.requester), addrLink(d.app), html`${d.volume}`, html`${d.trust}`, html`block ${d.block}`, html`deal ${dealLink(d.dealId)}`])
    }
    const decisionRows = decisions.slice(-30).reverse().map((d) => {
      const deal = dealOf.get(d.requestHash.toLowerCase())
      return [short(d.requestHash), addrLink(d.requester.toLowerCase()), html`${d.decision.bid ? `bid ${d.decision.price} nRLC` : 'declined'}`, html`<code>${d.decision.code}</code> ${d.decision.reason}`, html`${d.sent}${d.ack !== undefined ? (d.ack.ok ? ' · acknowledged' : ` · ${d.ack.code ?? 'refused'}`) : ''}`, deal !== undefined ? dealLink(deal.dealId) : html`<span class="note">no deal seen</span>`]
    })
    return htmlPage('Market', '/explorer/market', html`
<h2>Orderbook (${orders.length})</h2>
${table(['type', 'order hash', 'signer', 'price', 'remaining', 'received'], orders.map((o) => [html`${o.type}`, short(o.hash), addrLink(o.signer.toLowerCase()), html`${orderPrice(o.type, o.message.order as unknown as Record<string, unknown>)}`, html`${o.remaining.toString()}`, html`${new Date(o.receivedAt).toISOString().slice(11, 19)}`]), 'the book holds no live order')}
<h2>Recent requests</h2>
${table(['request', 'requester', 'app', 'volume', 'trust', 'when', 'deal, or why none'], requestRows, 'no recent request')}
<h2>This node's answers to requests</h2>
${table(['request', 'requester', 'answer', 'why', 'sent', 'deal'], decisionRows, market.provider === undefined ? 'this node is a requester: it does not bid' : 'no request answered yet')}`, ['order', 'bid', 'deal'])
  }

  const dealsPage = async (): Promise<ApiStream> => {
    const store = deps.store()
    if (store === undefined) return htmlPage('Deals', '/explorer/deals', noChain())
    const deals = await store.latestDeals(LIST)
    return htmlPage('Deals', '/explorer/deals', html`<p class="note">${store.stats.deals} deal(s) in the hub's history; the newest ${LIST}.</p>${table(DEAL_HEAD, dealRows(deals, await appsOf(store, deals)), 'no deal yet')}`, ['deal', 'task'])
  }

  const tasksPage = async (): Promise<ApiStream> => {
    const store = deps.store()
    if (store === undefined) return htmlPage('Tasks', '/explorer/tasks', noChain())
    const tasks = await store.latestTasks(LIST)
    return htmlPage('Tasks', '/explorer/tasks', html`<p class="note">${store.stats.tasks} task(s) in the hub's history; the newest ${LIST}.</p>${table(TASK_HEAD, taskRows(tasks), 'no task yet')}`, ['task', 'deal'])
  }

  const dealPage = async (id: string): Promise<ApiStream> => {
    const store = deps.store()
    const path = `/explorer/deals/${id}`
    if (store === undefined) return htmlPage('Deal', path, noChain())
    const d = await store.deals.get(id)
    if (d === undefined) return send(404, page('Deal not found', path, html`<p class="empty">No deal ${id} in this node's index of the hub.</p>`, ['deal']), 'text/html; charset=utf-8')
    const apps = await appsOf(store, [d])
    const tasks = await store.dealTasks(d, 200)
    return htmlPage(`Deal ${d.dealId.slice(0, 10)}…`, path, html`
${kv([['deal', html`<span class="mono">${d.dealId}</span>`], ['app', appName(d.app, apps)], ['dataset', addrLink(d.dataset)], ['requester', addrLink(d.requester)], ['beneficiary', addrLink(d.beneficiary)], ['scheduler', addrLink(d.scheduler)],
  ['workers', html`${d.workers.map((w) => html`${addrLink(w)} `)}`], ['request', short(d.requestHash)], ['params', html`<span class="mono">${d.params}</span>`], ['category / trust / volume', `${d.category} / ${d.trust} / ${d.volume}`],
  ['prices per task', `app ${rlc(d.appPrice)} · dataset ${rlc(d.datasetPrice)} · workers ${rlc(d.workerPrice)}`], ['made in', html`block ${d.block}, tx ${txLink(d.txHash)}`]])}
<h2>Tasks</h2>${table(TASK_HEAD, taskRows(tasks))}
<h2>Deal events</h2>${trail(d.trail)}`, ['task', 'deal'])
  }

  const taskPage = async (id: string): Promise<ApiStream> => {
    const store = deps.store()
    const path = `/explorer/tasks/${id}`
    if (store === undefined) return htmlPage('Task', path, noChain())
    const t = await store.tasks.get(id)
    if (t === undefined) return send(404, page('Task not found', path, html`<p class="empty">No task ${id} in this node's index of the hub.</p>`, ['task']), 'text/html; charset=utf-8')
    const d = await store.deals.get(t.dealId)
    const apps = d !== undefined ? await appsOf(store, [d]) : new Map<string, ExplorerAsset | undefined>()
    return htmlPage(`Task ${t.taskId.slice(0, 10)}…`, path, html`
${kv([['task', html`<span class="mono" id="task-id">${t.taskId}</span>`], ['status', html`<span id="task-status">${status(t.status)}</span>`], ['deal', html`${dealLink(t.dealId)} #${t.idx}`],
  ['app', d !== undefined ? appName(d.app, apps) : '-'], ['params', html`<span class="mono">${d?.params ?? '-'}</span>`], ['requester', addrLink(d?.requester ?? null)], ['scheduler', addrLink(d?.scheduler ?? null)],
  ['consensus', html`<span class="mono">${t.consensus ?? '-'}</span>`], ['result CID', cidText(t.resultCid)], ['result hash', html`<span class="mono">${t.resultHash ?? '-'}</span>`]])}
<h2>Audit trail</h2>${trail(t.trail)}
<h2>Contributions</h2>${table(['worker', 'result hash', 'block', 'transaction'], t.contributions.map((c) => [addrLink(c.worker), html`<span class="mono">${c.resultHash}</span>`, html`${c.block}`, txLink(c.txHash)]), t.status === 'COMPLETED' ? 'none on chain: a trust-1 task is contributed and finalized in one call' : 'none yet')}
<h2>Reveals</h2>${table(['worker', 'digest', 'block', 'transaction'], t.reveals.map((r) => [addrLink(r.worker), html`<span class="mono">${r.digest}</span>`, html`${r.block}`, txLink(r.txHash)]), 'none')}
<h2>Payments</h2>${table(['to', 'role', 'amount'], t.payments.map((p) => [addrLink(p.to), html`${p.role}`, html`${p.exact ? '' : '≈ '}${rlc(p.amount)}`]), 'none yet: the hub pays when the task completes (or refunds when it fails)')}
${t.payments.some((p) => !p.exact) ? html`<p class="note">≈: several winners; the hub splits the workers' pot by their weights (shown as equal shares).</p>` : ''}`, ['task'])
  }

  const assetsPage = async (): Promise<ApiStream> => {
    const store = deps.store()
    if (store === undefined) return htmlPage('Apps & datasets', '/explorer/assets', noChain())
    const [apps, datasets] = await Promise.all([store.assetsOf('app', 200), store.assetsOf('dataset', 200)])
    const rows = (list: ExplorerAsset[]): Html[][] => list.map((a) => [link(`/explorer/assets/${enc(a.address)}`, a.name), short(a.address), addrLink(a.owner), cidText(a.cid), html`${a.deals}`, html`${a.tasks}`, html`${rlc(a.earned)}`])
    const head = ['name', 'address', 'owner', 'CID', 'deals', 'tasks completed', 'owner earned']
    return htmlPage('Apps & datasets', '/explorer/assets', html`<h2>Apps</h2>${table(head, rows(apps), 'no app registered')}<h2>Datasets</h2>${table(head, rows(datasets), 'no dataset registered')}`, ['deal', 'task'])
  }

  const assetPage = async (address: string): Promise<ApiStream> => {
    const store = deps.store()
    const path = `/explorer/assets/${address}`
    if (store === undefined) return htmlPage('Asset', path, noChain())
    const a = await store.assets.get(address)
    if (a === undefined) return await addressPage(address)
    const deals = await store.dealsOf(address, LIST)
    return htmlPage(`${a.kind === 'app' ? 'App' : 'Dataset'} ${a.name}`, path, html`
${kv([['name', a.name], ['address', html`<span class="mono">${a.address}</span>`], ['owner', addrLink(a.owner)], ['CID', cidText(a.cid)], ['checksum', html`<span class="mono">${a.checksum}</span>`], ['registered', html`block ${a.block}, tx ${txLink(a.txHash)}`],
  ['uses', `${a.deals} deal(s), ${a.tasks} task(s) completed`], ['owner earned', rlc(a.earned)]])}
<h2>Deals using it</h2>${table(DEAL_HEAD, dealRows(deals, await appsOf(store, deals)), 'no deal yet')}`, ['deal', 'task'])
  }

  const addressPage = async (address: string): Promise<ApiStream> => {
    const store = deps.store()
    const path = `/explorer/address/${address}`
    if (store === undefined) return htmlPage('Address', path, noChain())
    const asset = await store.assets.get(address)
    if (asset !== undefined) return await assetPage(address)
    const acct = await store.accounts.get(address)
    const deals = await store.dealsOf(address, LIST)
    return htmlPage(`Address ${address.slice(0, 10)}…`, path, html`
${kv([['address', html`<span class="mono">${address}</span>`], ...accountRows(acct)])}
<h2>Deals (as requester, scheduler or worker)</h2>${table(DEAL_HEAD, dealRows(deals, await appsOf(store, deals)), 'no deal seen')}`, ['deal', 'task'])
  }

  const nodePage = async (): Promise<ApiStream> => {
    const s = deps.status()
    const market = deps.market()
    const store = deps.store()
    const me = s.address.toLowerCase()
    let wallet: Html = html`<p class="empty">no chain configured</p>`
    if (market !== undefined) {
      const read = await bounded(Promise.all([market.chain.ethBalance(), market.chain.rlc !== undefined ? market.chain.rlc.balanceOf(s.address) : Promise.resolve(0n), market.hub.accountOf(s.address), market.hub.stakeOf(s.address), market.hub.scoreOf(s.address)]), SLOW_READ_MS)
      wallet = read === undefined
        ? html`<p class="empty">the chain did not answer in time</p>`
        : kv([['ETH', `${(Number(read[0]) / 1e18).toFixed(6)} ETH`], ['RLC in the wallet', rlc(read[1])], ['hub balance (free)', rlc(read[2][0])], ['hub balance (frozen)', rlc(read[2][1])], ['stake', rlc(read[3][0])], ['stake locked', rlc(read[3][1])], ['score', read[4].toString()]])
    }
    const acct = store !== undefined ? await store.accounts.get(me) : undefined
    const deals = store !== undefined ? await store.dealsOf(me, 20) : []
    return htmlPage('This node', '/explorer/node', html`
${kv([['peer id', html`<span class="mono">${s.peerId}</span>`], ['wallet', html`<span class="mono">${s.address}</span>`], ['role', s.role], ['version', s.version], ['peers connected', s.connections]])}
<h2>Wallet and stake</h2>${wallet}
<h2>Earnings and spending (from the hub's events)</h2>${kv(accountRows(acct))}
<h2>Its deals</h2>${store !== undefined ? table(DEAL_HEAD, dealRows(deals, await appsOf(store, deals)), 'no deal yet') : noChain()}`, ['task', 'deal'])
  }

  const search = async (q: string): Promise<ApiStream> => {
    const store = deps.store()
    const term = q.trim()
    const found: Array<{ ref: ExplorerRef, via: string }> = []
    if (store !== undefined && term.length > 0 && term.length <= 200) {
      const low = term.toLowerCase()
      if (/^0x[0-9a-f]{64}$/.test(low)) {
        if (await store.tasks.get(low) !== undefined) found.push({ ref: { kind: 'task', id: low }, via: 'task id' })
        if (await store.deals.get(low) !== undefined) found.push({ ref: { kind: 'deal', id: low }, via: 'deal id' })
        for (const r of await store.txRefs(low)) found.push({ ref: r, via: 'transaction' })
      } else if (/^0x[0-9a-f]{40}$/.test(low)) {
        const asset = await store.assets.get(low)
        found.push({ ref: asset !== undefined ? { kind: asset.kind, id: low } : { kind: 'account', id: low }, via: 'address' })
      } else {
        const r = await store.cids.get(term)
        if (r !== undefined) found.push({ ref: r, via: 'CID' })
      }
    }
    const href = (r: ExplorerRef): string => r.kind === 'task' ? `/explorer/tasks/${enc(r.id)}` : r.kind === 'deal' ? `/explorer/deals/${enc(r.id)}` : r.kind === 'account' ? `/explorer/address/${enc(r.id)}` : `/explorer/assets/${enc(r.id)}`
    // one transaction may touch a deal and its task (the first duty draws the scheduler): the task is the most specific
    const tasks = found.filter((f) => f.ref.kind === 'task')
    const only = found.length === 1 ? found[0] : tasks.length === 1 && found.every((f) => f.ref.kind === 'task' || f.ref.kind === 'deal') ? tasks[0] : undefined
    if (only !== undefined) return send(303, '', 'text/plain; charset=utf-8', { location: href(only.ref) })
    return htmlPage('Search', '/explorer/search', html`<p>Search for <span class="mono">${term}</span>: ${found.length} result(s).</p>
${table(['what', 'found by', 'link'], found.map((f) => [html`${f.ref.kind}`, html`${f.via}`, link(href(f.ref), html`<span class="mono">${f.ref.id}</span>`)]), 'nothing in this node\'s index matches (a deal id, task id, transaction hash, address or CID)')}`)
  }

  const get = (path: string, handler: (params: Record<string, string>, query: URLSearchParams) => Promise<ApiStream> | ApiStream): ApiRoute => ({
    method: 'GET', path, handler: async (req) => await handler(req.params, req.query)
  })
  return [
    get('/explorer', overview),
    get('/explorer/swarm', swarm),
    get('/explorer/market', marketPage),
    get('/explorer/deals', dealsPage),
    get('/explorer/deals/:id', async (p) => await dealPage(parseId(p.id, 'a deal id'))),
    get('/explorer/tasks', tasksPage),
    get('/explorer/tasks/:id', async (p) => await taskPage(parseId(p.id, 'a task id'))),
    get('/explorer/assets', assetsPage),
    get('/explorer/assets/:address', async (p) => await assetPage(parseAddress(p.address))),
    get('/explorer/address/:address', async (p) => await addressPage(parseAddress(p.address))),
    get('/explorer/node', nodePage),
    get('/explorer/search', async (_p, q) => await search(q.get('q') ?? '')),
    get('/explorer/static/explorer.js', () => send(200, EXPLORER_JS, 'text/javascript; charset=utf-8')),
    get('/explorer/static/explorer.css', () => send(200, EXPLORER_CSS, 'text/css; charset=utf-8')),
    {
      // `iexec-p2p explorer`: a one-time login link (bearer token only: the route is POST)
      method: 'POST',
      path: '/v1/explorer/login',
      handler: () => {
        const { code, expiresAt } = deps.sessions.issue()
        return { url: `${deps.url()}${LOGIN_PATH}?code=${code}`, expiresAt }
      }
    }
  ]
}

function parseAddress (raw: string): string {
  if (!/^0x[0-9a-fA-F]{40}$/.test(raw)) throw new HttpError(400, 'API_BAD_REQUEST', 'an address must be 0x and 40 hex digits')
  return raw.toLowerCase()
}

function accountRows (acct: import('../explorer/store.js').ExplorerAccount | undefined): Array<[string, Html | string | number]> {
  if (acct === undefined) return [['history', html`<span class="note">no hub event names this address</span>`]]
  return [
    ['deals requested', acct.dealsRequested], ['spent on completed tasks', rlc(acct.spent)],
    ['tasks won as worker', acct.tasksWorked], ['earned as worker', `${acct.workerEarnedExact ? '' : '≈ '}${rlc(acct.workerEarned)}`],
    ['tasks scheduled', acct.tasksScheduled], ['earned as scheduler', rlc(acct.schedulerEarned)],
    ['deposited', rlc(acct.deposits)], ['withdrawn', rlc(acct.withdrawals)], ['staked', rlc(acct.staked)], ['stake seized', rlc(acct.seized)]
  ]
}
