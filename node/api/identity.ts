import { request } from 'node:http'
import { randomBytes } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { ApiError } from './errors.js'

/**
 * The node behind an API URL proves it is the node of a data dir before the
 * CLI sends it the bearer token: a stale api.json (the node was killed
 * with SIGKILL) may point at a port another process listens on now.
 *
 * `GET /v1/identity?nonce=<32 bytes hex>` is the one route that needs no
 * token: the node answers its peer id and its libp2p key's signature of
 * {@link apiIdentityPayload}(nonce, its own API URL). The client's fresh
 * nonce makes an answer useless for any other call; the URL, which the
 * client compares with the one it called, makes it useless to a process
 * that relays the check to the real node listening elsewhere; the
 * payload's prefix keeps the signature from meaning anything outside this
 * exchange.
 */
export const API_IDENTITY_PATH = '/v1/identity'

const PREFIX = 'iexec-p2p api identity v1\n'
const NONCE = /^[0-9a-f]{64}$/

/** Signs the payload with the node's libp2p key: its peer id and the signature. */
export type ApiIdentity = (payload: Uint8Array) => Promise<{ peerId: string, signature: Uint8Array }>

/** What the node signs for a nonce (64 lowercase hex characters) at its API URL. */
export function apiIdentityPayload (nonce: string, url: string): Uint8Array {
  return new TextEncoder().encode(`${PREFIX}${nonce}\n${url}`)
}

/** The nonce of an identity request, or undefined when the query has none of the right shape. */
export function identityNonce (query: URLSearchParams): string | undefined {
  const nonce = query.get('nonce') ?? ''
  return NONCE.test(nonce) ? nonce : undefined
}

/** GET without the token; the parsed JSON of a 200. */
async function getJson (url: string, path: string, timeoutMs: number): Promise<unknown> {
  return await new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method: 'GET', agent: false, headers: { accept: 'application/json' } }, (res) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (c: Buffer) => {
        size += c.length
        // an identity answer is a few hundred bytes: whatever sends more is not our node
        if (size > 16_384) req.destroy(new ApiError('API_NOT_THE_NODE', `the process at ${url} answers the identity check with too much`, { url }))
        else chunks.push(c)
      })
      res.on('error', (err) => { reject(new ApiError('API_UNREACHABLE', `connection to ${url} broke: ${err.message}`, { url })) })
      res.on('end', () => {
        clearTimeout(timer)
        if (res.statusCode !== 200) {
          reject(new ApiError('API_NOT_THE_NODE', `the process at ${url} does not answer the identity check (HTTP ${res.statusCode ?? '?'})`, { url, status: res.statusCode }))
          return
        }
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')))
        } catch {
          reject(new ApiError('API_NOT_THE_NODE', `the process at ${url} answers the identity check with non-JSON`, { url }))
        }
      })
    })
    const timer = setTimeout(() => { req.destroy(new ApiError('API_TIMEOUT', `no answer from ${url} within ${timeoutMs} ms`, { url })) }, timeoutMs)
    req.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      if (err instanceof ApiError) reject(err)
      else reject(new ApiError('API_UNREACHABLE', `no node answers at ${url} (${err.code ?? err.message}): is it running?`, { url }, { cause: err }))
    })
    req.end()
  })
}

/**
 * Checks that the process at `url` (an origin, as api.json holds it) holds
 * the libp2p key of `expectedPeerId` and listens at `url` itself (a fresh
 * nonce and that URL, signed, verified against the peer id's public key).
 * Sends no token.
 * @throws ApiError API_NOT_THE_NODE (another peer id, a bad signature, no or a malformed answer), API_UNREACHABLE, API_TIMEOUT
 */
export async function verifyApiIdentity (url: string, expectedPeerId: string, timeoutMs = 5_000): Promise<void> {
  const nonce = randomBytes(32).toString('hex')
  const answer = await getJson(url, `${API_IDENTITY_PATH}?nonce=${nonce}`, timeoutMs) as { peerId?: unknown, signature?: unknown } | null
  const refuse = (why: string): ApiError => new ApiError('API_NOT_THE_NODE', `the process at ${url} is not this data dir's node: ${why}; its api.json is stale (the token was not sent)`, { url, expectedPeerId })
  if (typeof answer !== 'object' || answer === null || typeof answer.peerId !== 'string' || typeof answer.signature !== 'string') throw refuse('malformed identity answer')
  if (answer.peerId !== expectedPeerId) throw refuse(`it is peer ${answer.peerId.slice(0, 80)}`)
  const signature = Buffer.from(answer.signature, 'base64')
  const key = peerIdFromString(expectedPeerId).publicKey
  if (key === undefined) throw refuse('the expected peer id embeds no public key')
  let ok = false
  try {
    ok = await key.verify(apiIdentityPayload(nonce, url), signature)
  } catch {
    ok = false
  }
  if (!ok) throw refuse('its signature does not verify')
}
