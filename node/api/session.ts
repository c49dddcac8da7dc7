import { createHmac, randomBytes, timingSafeEqual, createHash } from 'node:crypto'
import { BoundedCache } from '../common/bounded-cache.js'

/**
 * Browser sessions of the explorer. A browser cannot send the API's bearer
 * header, so `iexec-p2p explorer` asks the node (with the token) for a
 * one-time login code; the browser opens `/explorer/login?code=…`, which
 * sets an HttpOnly, SameSite=Strict cookie derived from the API token and
 * redirects to the explorer. The cookie authenticates GET requests only (no
 * route that changes anything), from a loopback Host only.
 */
export interface BrowserSessionsOptions {
  /** a login link is good this long */
  codeTtlMs: number
  /** most unused codes at once (the oldest goes first) */
  maxCodes: number
  /** the cookie's Max-Age, seconds */
  cookieMaxAgeS: number
}

export const defaultBrowserSessionsOptions: BrowserSessionsOptions = {
  // time to paste a printed link into a browser, not to leave it lying in a history
  codeTtlMs: 120_000,
  maxCodes: 16,
  cookieMaxAgeS: 12 * 3600
}

export const SESSION_COOKIE = 'iexec_p2p_session'
export const LOGIN_PATH = '/explorer/login'

function digest (s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

export class BrowserSessions {
  private readonly opts: BrowserSessionsOptions
  private readonly codes: BoundedCache<string, number>
  /** the cookie's value: a MAC of a fixed label under the token, so the token itself never reaches the browser */
  private readonly cookie: string
  private readonly cookieDigest: Buffer

  constructor (token: string, options: Partial<BrowserSessionsOptions> = {}, private readonly now: () => number = Date.now) {
    this.opts = { ...defaultBrowserSessionsOptions, ...options }
    this.codes = new BoundedCache(this.opts.maxCodes)
    this.cookie = createHmac('sha256', token).update('iexec-p2p explorer session v1').digest('base64url')
    this.cookieDigest = digest(this.cookie)
  }

  /** A new one-time code and when it expires (ms since epoch). */
  issue (): { code: string, expiresAt: number } {
    const t = this.now()
    for (const [c, exp] of this.codes) if (exp <= t) this.codes.delete(c)
    const code = randomBytes(24).toString('base64url')
    const expiresAt = t + this.opts.codeTtlMs
    this.codes.set(code, expiresAt)
    return { code, expiresAt }
  }

  /** Consumes a code: true once, for a code issued and not expired. */
  redeem (code: string | null): boolean {
    if (code === null || !/^[A-Za-z0-9_-]{32}$/.test(code)) return false
    const exp = this.codes.get(code)
    if (exp === undefined) return false
    this.codes.delete(code)
    return exp > this.now()
  }

  /** The Set-Cookie header value of a new session. */
  setCookie (): string {
    return `${SESSION_COOKIE}=${this.cookie}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${this.opts.cookieMaxAgeS}`
  }

  /** Whether a Cookie header carries the session (constant time). */
  fromCookie (header: string | undefined): boolean {
    if (header === undefined) return false
    let presented = ''
    for (const part of header.split(';')) {
      const [k, ...v] = part.trim().split('=')
      if (k === SESSION_COOKIE) presented = v.join('=')
    }
    return timingSafeEqual(digest(presented), this.cookieDigest) && presented.length > 0
  }
}

/** A Host header naming a loopback address (a page reached through another name is refused the cookie: DNS rebinding). */
export function loopbackHost (host: string | undefined): boolean {
  if (host === undefined) return false
  return /^(127\.0\.0\.1|\[::1\]|localhost)(:\d{1,5})?$/.test(host)
}
