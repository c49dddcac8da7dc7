/**
 * HTML built by a tagged template that escapes every value it is given:
 * app names, params, CIDs, addresses and reasons come from peers and the
 * chain and are hostile. Only `Html` values (built by `html` itself) pass
 * through unescaped; nothing else can.
 */
export class Html {
  constructor (readonly text: string) {}
  toString (): string { return this.text }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' }

/** Escapes text for an HTML element body or a quoted attribute value. */
export function esc (value: unknown): string {
  return String(value).replace(/[&<>"'`]/g, (c) => ESCAPES[c])
}

type Part = Html | string | number | bigint | boolean | null | undefined | Part[]

function render (v: Part): string {
  if (v === null || v === undefined || v === false) return ''
  if (v instanceof Html) return v.text
  if (Array.isArray(v)) return v.map(render).join('')
  return esc(v)
}

/** `html\`<td>${name}</td>\`` escapes `name`; arrays of Html are joined. */
export function html (strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0]
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]
  return new Html(out)
}

/** A link inside the explorer; the path is built from escaped, URL-encoded parts. */
export function link (path: string, label: Part, cls?: string): Html {
  return html`<a href="${path}"${cls !== undefined ? html` class="${cls}"` : ''}>${label}</a>`
}

/** `0x1234…abcd` with the full value in a title. */
export function short (hex: string): Html {
  const s = hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-4)}` : hex
  return html`<span class="mono" title="${hex}">${s}</span>`
}

export const enc = (s: string): string => encodeURIComponent(s)

/** nRLC as RLC with 9 decimals, trailing zeros dropped. */
export function rlc (nrlc: string | bigint): string {
  let n: bigint
  try { n = BigInt(nrlc) } catch { return String(nrlc) }
  const neg = n < 0n
  if (neg) n = -n
  const whole = n / 1_000_000_000n
  const frac = (n % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '')
  return `${neg ? '-' : ''}${whole}${frac.length > 0 ? `.${frac}` : ''} RLC`
}

export function table (headers: string[], rows: Html[][], empty = 'nothing yet'): Html {
  if (rows.length === 0) return html`<p class="empty">${empty}</p>`
  return html`<table><thead><tr>${headers.map((h) => html`<th>${h}</th>`)}</tr></thead><tbody>${rows.map((r) => html`<tr>${r.map((c) => html`<td>${c}</td>`)}</tr>`)}</tbody></table>`
}

export const NAV: Array<[string, string]> = [
  ['/explorer', 'Overview'],
  ['/explorer/swarm', 'Swarm'],
  ['/explorer/market', 'Market'],
  ['/explorer/deals', 'Deals'],
  ['/explorer/tasks', 'Tasks'],
  ['/explorer/assets', 'Apps & datasets'],
  ['/explorer/node', 'This node']
]

/** The page around a view: nav, search box, live-update script (same origin: the CSP allows nothing else). */
export function page (title: string, path: string, body: Html, live: string[]): string {
  return '<!doctype html>' + html`<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · iexec-p2p explorer</title><link rel="stylesheet" href="/explorer/static/explorer.css"></head>
<body data-live="${live.join(',')}"><header><a class="brand" href="/explorer">iexec-p2p explorer</a><nav>${NAV.map(([href, label]) => html`<a href="${href}"${href === path ? html` class="here"` : ''}>${label}</a>`)}</nav>
<form action="/explorer/search" method="get" class="search"><input name="q" placeholder="deal id, task id, tx hash, address or CID" aria-label="search" size="44"><button>Search</button></form>
<span id="live" class="live" title="live updates from /v1/events">○ offline</span></header>
<main id="main"><h1>${title}</h1>${body}</main><script src="/explorer/static/explorer.js"></script></body></html>`.text
}
