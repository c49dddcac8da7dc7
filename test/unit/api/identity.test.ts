import assert from 'node:assert/strict'
import { request } from 'node:http'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { startApiServer, verifyApiIdentity, type ApiServer } from '../../../node/api/index.js'
import { isIexecError } from '../../../node/common/errors.js'
import { FakeBackend } from './fake-backend.js'

const TOKEN = 'test-token-0123456789abcdef'

async function get (url: string): Promise<{ status: number, body: Record<string, unknown> }> {
  return await new Promise((resolve, reject) => {
    request(url, { agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> }) })
    }).on('error', reject).end()
  })
}

describe('api: the identity check (no token)', () => {
  let server: ApiServer | undefined
  afterEach(async () => { await server?.close(); server = undefined })

  it('answers a nonce with the peer id and a signature that verifies, at its own URL only', async () => {
    const key = await generateKeyPair('Ed25519')
    const peerId = peerIdFromPrivateKey(key).toString()
    server = await startApiServer({ port: 0, token: TOKEN, backend: new FakeBackend(), identity: async (p) => ({ peerId, signature: await key.sign(p) }) })
    await verifyApiIdentity(server.url, peerId)
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    await assert.rejects(verifyApiIdentity(server.url, other), (err: unknown) => isIexecError(err, 'API_NOT_THE_NODE'))
    // the answer names the URL the server listens at, which the signature covers (a relay elsewhere fails: test/adversarial)
    const a = await get(`${server.url}/v1/identity?nonce=${'ab'.repeat(32)}`)
    assert.equal(a.status, 200)
    assert.equal(a.body.url, server.url)
    assert.equal(a.body.peerId, peerId)
  })

  it('refuses a malformed nonce with 400 API_BAD_REQUEST; without an identity the route is behind the token', async () => {
    const key = await generateKeyPair('Ed25519')
    server = await startApiServer({ port: 0, token: TOKEN, backend: new FakeBackend(), identity: async (p) => ({ peerId: peerIdFromPrivateKey(key).toString(), signature: await key.sign(p) }) })
    for (const nonce of ['', '12', 'AB'.repeat(32), 'zz'.repeat(32), 'ab'.repeat(33)]) {
      const a = await get(`${server.url}/v1/identity?nonce=${nonce}`)
      assert.equal(a.status, 400, nonce)
      assert.equal((a.body.error as { code: string }).code, 'API_BAD_REQUEST')
    }
    await server.close()
    server = await startApiServer({ port: 0, token: TOKEN, backend: new FakeBackend() })
    const b = await get(`${server.url}/v1/identity?nonce=${'ab'.repeat(32)}`)
    assert.equal(b.status, 401)
    await assert.rejects(verifyApiIdentity(server.url, peerIdFromPrivateKey(key).toString()), (err: unknown) => isIexecError(err, 'API_NOT_THE_NODE'))
  })
})
