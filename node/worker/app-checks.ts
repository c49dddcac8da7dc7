import { createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import { BoundedCache } from '../common/bounded-cache.js'
import { catContent } from '../storage/content.js'
import type { ContentHelia } from '../storage/content.js'
import { APP_HEAD_BYTES } from './app-kind.js'
import { executorOfHead, KNOWN_EXECUTORS } from './executors.js'
import { checkWasiModule } from './module-check.js'
import { MAX_APP_MODULE_BYTES } from './options.js'

/** How long a provider waits for an app's first bytes to learn its kind. */
export const APP_HEAD_TIMEOUT_MS = 10_000
/** Bound of the fetch of an app's module for its bid-time check (it goes on past the decision's wait, for the next requests). */
export const APP_CHECK_FETCH_MS = 60_000
/** apps whose verdict is kept (the oldest goes first) */
const MAX_VERDICTS = 1000

export interface AppChecksInit {
  /** the app's registration on the hub; undefined without a chain */
  appOf: () => ((app: string) => Promise<{ cid: string, checksum: string }>) | undefined
  helia: () => ContentHelia
  /** the executors this node runs */
  executors: readonly string[]
}

/**
 * A provider's bid-time view of an app: whether its executor can run the
 * app's module and which executor it needs. Each answer is kept per app (a
 * registration never changes); a look-up that fails is asked again by the
 * next request.
 */
export class AppChecks {
  private readonly verdicts = new BoundedCache<string, Promise<string | undefined>>(MAX_VERDICTS)
  private readonly kinds = new Map<string, Promise<string | undefined>>()

  constructor (private readonly init: AppChecksInit) {}

  /**
   * Why this node's executor cannot run an app's module: the module fetched
   * (kept in the blockstore for the worker), its checksum and
   * checkWasiModule. undefined when it can run, or when there is no verdict
   * (the module cannot be fetched now: forgotten, asked again by the next
   * request).
   */
  async problem (app: string): Promise<string | undefined> {
    const key = app.toLowerCase()
    let verdict = this.verdicts.get(key)
    if (verdict === undefined) {
      verdict = (async () => {
        const appOf = this.init.appOf()
        if (appOf === undefined) throw new Error('no hub')
        const asset = await appOf(app)
        // a registration whose CID does not parse gets no verdict here (the worker refuses it after the deal)
        const cid = CID.parse(asset.cid)
        const chunks: Uint8Array[] = []
        let total = 0
        for await (const c of catContent(this.init.helia(), cid, { maxBytes: MAX_APP_MODULE_BYTES, timeoutMs: APP_CHECK_FETCH_MS })) {
          chunks.push(c)
          total += c.byteLength
        }
        const bytes = Buffer.concat(chunks, total)
        if (`0x${createHash('sha256').update(bytes).digest('hex')}` !== asset.checksum.toLowerCase()) return 'its module does not hash to its registered checksum'
        // a native binary or image is checked by the executor that runs it; a WASI module here, once
        const kind = executorOfHead(bytes.subarray(0, APP_HEAD_BYTES))
        if (kind === undefined) return 'APP_UNKNOWN_KIND: its module is neither a WASI module, a static ELF binary nor an OCI image'
        if (kind !== 'wasi') return undefined
        const check = await checkWasiModule(bytes)
        return check.ok ? undefined : `${check.code}: ${check.message}`
      })()
      this.verdicts.set(key, verdict)
      verdict.catch(() => { this.verdicts.delete(key) })
    }
    return await verdict.catch(() => undefined)
  }

  /**
   * The executor an app needs, from the first bytes of its content. A node
   * that runs every kind does not fetch them; an app whose head cannot be
   * had in time is taken for a WASI module (and refused at run if it is not
   * one).
   */
  async executorOf (app: string): Promise<string | undefined> {
    const executors = this.init.executors
    if (KNOWN_EXECUTORS.every((e) => executors.includes(e))) return executors[0]
    const appOf = this.init.appOf()
    if (appOf === undefined) return undefined
    const key = app.toLowerCase()
    let entry = this.kinds.get(key)
    if (entry === undefined) {
      entry = (async () => {
        const { cid } = await appOf(app)
        const parts: Uint8Array[] = []
        let got = 0
        for await (const c of catContent(this.init.helia(), cid, { timeoutMs: APP_HEAD_TIMEOUT_MS })) {
          parts.push(c)
          got += c.byteLength
          if (got >= APP_HEAD_BYTES) break
        }
        return executorOfHead(Buffer.concat(parts))
      })()
      this.kinds.set(key, entry)
      // a failed look-up is tried again at the next request
      entry.catch(() => { this.kinds.delete(key) })
    }
    return await entry
  }
}
