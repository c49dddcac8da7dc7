/**
 * `app publish`'s routes on the local API:
 *
 * - `POST /v1/apps/publish` `{ path, name?, price?, volume?, publishId? }`:
 *   the node reads the module at `path` on its own machine (no size limit of
 *   a JSON body), checks that the WASI executor can run it (checkWasiModule:
 *   valid wasm, a command with `_start`, WASI preview1 imports only, one
 *   32-bit memory) BEFORE anything goes on chain, adds it to Helia, provides
 *   it, registers it and gossips its app order. A module that cannot run is
 *   refused with its MODULE_* code (400); nothing is added or sent.
 * - `GET /v1/apps/publish/:publishId`: the publish's phase and bytes so far.
 */
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { basename, isAbsolute } from 'node:path'
import { HttpError } from '../errors.js'
import { bad, bodyOf } from '../route-helpers.js'
import type { ApiRequest, ApiRoute } from '../router.js'
import { addBytes, provideContent } from '../../storage/content.js'
import type { ContentHelia } from '../../storage/content.js'
import { checkWasiModule } from '../../worker/module-check.js'
import { APP_HEAD_BYTES, appKind, checkElf } from '../../worker/app-kind.js'
import { MAX_APP_MODULE_BYTES } from '../../worker/options.js'
import { appTerms, offerApp } from './market.js'
import type { MarketService } from '../../market/service.js'

/** Phases of an app publish, in order. */
export type AppPublishPhase = 'reading' | 'checking' | 'adding' | 'providing' | 'registering' | 'done' | 'failed'

/** What `GET /v1/apps/publish/:id` answers. */
export interface AppPublishProgress {
  publishId: string
  phase: AppPublishPhase
  /** bytes read (reading) or added (adding) so far */
  bytes: number
  totalBytes: number
  /** failed: the error's code */
  code?: string
}

const MAX_TRACKED = 64

export function appRoutes (deps: { market: () => MarketService | undefined, helia: () => ContentHelia, log?: (msg: string, ctx?: Record<string, unknown>) => void }): ApiRoute[] {
  const progress = new Map<string, AppPublishProgress>()
  const track = (p: AppPublishProgress): void => {
    if (!progress.has(p.publishId) && progress.size >= MAX_TRACKED) progress.delete(progress.keys().next().value as string)
    progress.set(p.publishId, p)
  }

  const publish = async (req: ApiRequest): Promise<unknown> => {
    const m = deps.market()
    if (m === undefined || !m.started) throw new HttpError(503, 'CHAIN_NOT_CONFIGURED', 'this node has no chain settings (config.json chain.rpc and chain.hub): apps cannot be registered')
    const b = bodyOf(req)
    if (typeof b.path !== 'string' || b.path.length === 0 || b.path.length > 4096) throw bad('path', 'must be a non-empty string')
    if (!isAbsolute(b.path)) throw bad('path', 'must be absolute (it is read on the node\'s machine)')
    const path = b.path
    if (b.name !== undefined && (typeof b.name !== 'string' || b.name.length === 0 || b.name.length > 64 || /\s/.test(b.name))) throw bad('name', 'must be 1-64 characters without spaces')
    if (b.publishId !== undefined && (typeof b.publishId !== 'string' || !/^[0-9a-f]{8,64}$/.test(b.publishId))) throw bad('publishId', 'must be 8-64 lowercase hex digits')
    const terms = appTerms({ price: '0', ...b })
    const id = (b.publishId as string | undefined) ?? randomBytes(8).toString('hex')
    const name = (b.name as string | undefined) ?? (basename(path).replace(/\.wasm$/, '').slice(0, 64).replace(/\s/g, '_') || 'app')

    const st = await stat(path).catch((err: unknown) => {
      throw new HttpError(400, 'APP_PATH_INVALID', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { path })
    })
    if (!st.isFile()) throw new HttpError(400, 'APP_PATH_INVALID', `${path} is not a file`, { path })
    if (st.size > MAX_APP_MODULE_BYTES) throw new HttpError(413, 'APP_TOO_LARGE', `${path} is ${st.size} bytes; workers fetch apps up to ${MAX_APP_MODULE_BYTES} bytes`, { bytes: st.size, max: MAX_APP_MODULE_BYTES })
    const totalBytes = st.size
    const phase = (p: AppPublishPhase, bytes = 0, code?: string): void => { track({ publishId: id, phase: p, bytes, totalBytes, ...(code !== undefined ? { code } : {}) }) }
    try {
      phase('reading')
      // the whole module is needed at once to be compiled (the check) and it is at most MAX_APP_MODULE_BYTES
      const chunks: Buffer[] = []
      const hash = createHash('sha256')
      let read = 0
      for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
        const c = chunk as Buffer
        chunks.push(c)
        hash.update(c)
        read += c.byteLength
        if (read > MAX_APP_MODULE_BYTES) throw new HttpError(413, 'APP_TOO_LARGE', `${path} grew past ${MAX_APP_MODULE_BYTES} bytes while read`)
        phase('reading', read)
      }
      const bytes = Buffer.concat(chunks)
      chunks.length = 0
      const checksum = `0x${hash.digest('hex')}`
      phase('checking', read)
      // a WASI module is compiled and checked here; a native binary must run on this architecture; an
      // image layout was checked by the CLI and is verified blob by blob by every worker before it runs
      const kind = appKind(bytes.subarray(0, APP_HEAD_BYTES))
      if (kind === undefined) throw new HttpError(400, 'APP_UNKNOWN_KIND', `${path}: not a WASI module, an ELF binary or an OCI image layout tar`, { path })
      if (kind === 'wasi') {
        const check = await checkWasiModule(bytes)
        if (!check.ok) throw new HttpError(400, check.code, `${path}: ${check.message}`, { path })
      } else if (kind === 'native') {
        const elf = checkElf(bytes)
        if (!elf.ok) throw new HttpError(400, 'APP_NATIVE_UNRUNNABLE', `${path}: the binary cannot run on a worker: ${elf.reason ?? ''}`, { path })
      }
      phase('adding')
      const h = deps.helia()
      const { cid } = await addBytes(h, bytes, { onProgress: (n) => { phase('adding', n) } })
      phase('providing', read)
      // a node alone (or before its DHT has peers) cannot provide yet; its adverts and bitswap still serve peers that ask it
      await provideContent(h, cid).catch(() => false)
      phase('registering', read)
      const r = await offerApp(m, { name, cid: cid.toString(), checksum, ...terms })
      phase('done', read)
      deps.log?.('app published', { address: r.address, cid: r.cid, bytes: read, orderHash: r.orderHash })
      return { ...r, name, bytes: read, price: terms.price.toString(), publishId: id }
    } catch (err) {
      phase('failed', 0, err instanceof HttpError ? err.code : undefined)
      throw err
    }
  }

  return [
    { method: 'POST', path: '/v1/apps/publish', handler: publish },
    {
      method: 'GET',
      path: '/v1/apps/publish/:publishId',
      handler: async (req) => {
        const p = progress.get(req.params.publishId ?? '')
        if (p === undefined) throw new HttpError(404, 'PUBLISH_NOT_FOUND', `no app publish ${String(req.params.publishId).slice(0, 80)} in progress or recently done`)
        return p
      }
    }
  ]
}
