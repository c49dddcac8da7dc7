import { createHash } from 'node:crypto'
import { HttpError } from '../api/errors.js'
import type { ApiRoute } from '../api/router.js'
import { addBytes, provideContent } from './content.js'
import type { ContentHelia } from './content.js'

/** Largest upload through the JSON API: base64 of it must fit the API's 1 MiB body limit. */
export const MAX_CONTENT_UPLOAD_BYTES = 700 * 1024

/**
 * `POST /v1/content` `{ "data": base64 }` -> `{ "cid", "bytes", "checksum" }`:
 * adds small content (an app module) to this node's Helia and provides it in
 * the DHT, so workers fetch it over bitswap. Large datasets stream through
 * the dataset commands instead.
 */
export function contentRoutes (helia: () => ContentHelia): ApiRoute[] {
  return [{
    method: 'POST',
    path: '/v1/content',
    handler: async (req) => {
      const body = req.body as { data?: unknown } | undefined
      if (body === undefined || typeof body.data !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(body.data)) {
        throw new HttpError(400, 'API_BAD_REQUEST', 'body must be { "data": "<base64>" }')
      }
      const bytes = Buffer.from(body.data, 'base64')
      if (bytes.byteLength === 0) throw new HttpError(400, 'API_BAD_REQUEST', 'content is empty')
      if (bytes.byteLength > MAX_CONTENT_UPLOAD_BYTES) {
        throw new HttpError(413, 'API_BODY_TOO_LARGE', `content of ${bytes.byteLength} bytes exceeds ${MAX_CONTENT_UPLOAD_BYTES}`)
      }
      const h = helia()
      const { cid } = await addBytes(h, bytes)
      // a node alone (or before its DHT has peers) cannot provide yet; its
      // adverts and bitswap still serve peers that ask it directly
      await provideContent(h, cid).catch(() => false)
      return { cid: cid.toString(), bytes: bytes.byteLength, checksum: `0x${createHash('sha256').update(bytes).digest('hex')}` }
    }
  }]
}
