import assert from 'node:assert/strict'
import { createServer, type Server, type Socket } from 'node:net'
import { startApiServer, ApiClient, type ApiServer } from '../../../node/api/index.js'
import { freePort } from '../../../node/chain/local-chain.js'
import { isIexecError } from '../../../node/common/errors.js'
import { FakeBackend } from './fake-backend.js'

const TOKEN = 'client-token-0123456789abcdef'

describe('api client', () => {
  let server: ApiServer | undefined
  let backend: FakeBackend
  const cleanups: Array<() => Promise<void>> = []

  beforeEach(async () => {
    backend = new FakeBackend()
    server = await startApiServer({ port: 0, token: TOKEN, backend })
  })

  afterEach(async () => {
    await server?.close()
    server = undefined
    while (cleanups.length > 0) await cleanups.pop()?.()
  })

  it('calls every core route with typed results', async () => {
    const c = new ApiClient(server!.url, TOKEN)
    assert.deepEqual(await c.status(), backend.status())
    assert.deepEqual(await c.peers(), await backend.peers())
    const eu = await c.resources({ category: 0, tags: ['region:eu'] })
    assert.deepEqual(eu.map((r) => r.peerId), ['12D3KooWA'])
    assert.deepEqual(backend.queries.at(-1), { category: 0, tags: ['region:eu'] })
    await c.shutdown()
  })

  it('ignores whitespace around a token read from a file', async () => {
    const c = new ApiClient(server!.url, `${TOKEN}\n`)
    assert.equal((await c.status()).peerId, '12D3KooWSelf')
  })

  it('throws API_UNAUTHORIZED on a wrong token', async () => {
    const c = new ApiClient(server!.url, 'wrong-token-0123456789abcdef')
    await assert.rejects(c.status(), (err: unknown) => isIexecError(err, 'API_UNAUTHORIZED'))
  })

  it('throws API_UNREACHABLE with the URL when nothing listens', async () => {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const c = new ApiClient(url, TOKEN, { timeoutMs: 2000 })
    await assert.rejects(c.status(), (err: unknown) => isIexecError(err, 'API_UNREACHABLE') && err.message.includes(url) && err.details?.url === url)
  })

  it('throws API_ERROR carrying the server code', async () => {
    const c = new ApiClient(server!.url, TOKEN)
    await assert.rejects(c.resources({ category: -1 }), (err: unknown) =>
      isIexecError(err, 'API_ERROR') && err.details?.serverCode === 'API_BAD_REQUEST' && err.details?.status === 400)
    await assert.rejects(c.call('GET', '/v1/none'), (err: unknown) => isIexecError(err, 'API_ERROR') && err.details?.serverCode === 'API_NOT_FOUND')
  })

  it('throws API_TIMEOUT when a peer accepts but never answers', async () => {
    // a TCP listener that never speaks HTTP: the bounded timeout must fire
    const sockets = new Set<Socket>()
    const silent: Server = createServer((s) => { sockets.add(s) })
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    cleanups.push(async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => silent.close(() => { resolve() }))
    })
    const addr = silent.address()
    const port = typeof addr === 'object' && addr !== null ? addr.port : 0
    const c = new ApiClient(`http://127.0.0.1:${port}`, TOKEN, { timeoutMs: 300 })
    const t0 = Date.now()
    await assert.rejects(c.status(), (err: unknown) => isIexecError(err, 'API_TIMEOUT'))
    assert.ok(Date.now() - t0 < 3000, 'the timeout is bounded')
  })

  it('refuses a malformed or non-http URL', () => {
    assert.throws(() => new ApiClient('not a url', TOKEN), (err: unknown) => isIexecError(err, 'API_BAD_OPTIONS'))
    assert.throws(() => new ApiClient('ftp://127.0.0.1:1', TOKEN), (err: unknown) => isIexecError(err, 'API_BAD_OPTIONS'))
  })
})
