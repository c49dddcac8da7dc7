import assert from 'node:assert/strict'
import { request } from 'node:http'
import { createServer, type Server } from 'node:net'
import { startApiServer, ApiReply, type ApiServer } from '../../../node/api/index.js'
import { isIexecError } from '../../../node/common/errors.js'
import { FakeBackend } from './fake-backend.js'

const TOKEN = 'test-token-0123456789abcdef'

interface RawAnswer { status: number, body: unknown, headers: Record<string, string | string[] | undefined> }

/** A raw HTTP call, so the tests see exactly what the server answers. */
async function raw (url: string, method: string, path: string, opts: { token?: string | null, body?: string | Buffer, headers?: Record<string, string> } = {}): Promise<RawAnswer> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) }
  if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? TOKEN}`
  return await new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        resolve({ status: res.statusCode ?? 0, body: text.length > 0 ? JSON.parse(text) : null, headers: res.headers })
      })
    })
    req.setTimeout(5000, () => { req.destroy(new Error('test request timed out')) })
    req.on('error', reject)
    req.end(opts.body)
  })
}

function errorCode (a: RawAnswer): string {
  return (a.body as { error: { code: string } }).error.code
}

describe('api server', () => {
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

  it('listens on 127.0.0.1 with a free port and a matching URL', () => {
    assert.ok(server !== undefined)
    assert.ok(server.port > 0)
    assert.equal(server.url, `http://127.0.0.1:${server.port}`)
  })

  it('serves status, peers and resources with the right token', async () => {
    const s = await raw(server!.url, 'GET', '/v1/status')
    assert.equal(s.status, 200)
    assert.deepEqual(s.body, backend.status())
    const p = await raw(server!.url, 'GET', '/v1/peers')
    assert.equal(p.status, 200)
    assert.deepEqual(p.body, await backend.peers())
    const r = await raw(server!.url, 'GET', '/v1/resources')
    assert.equal(r.status, 200)
    assert.equal((r.body as unknown[]).length, 2)
  })

  it('passes category and repeated tags through to the backend', async () => {
    const r = await raw(server!.url, 'GET', '/v1/resources?category=0&tag=region%3Aeu&tag=energy%3Agreen')
    assert.equal(r.status, 200)
    assert.deepEqual(backend.queries.at(-1), { category: 0, tags: ['region:eu', 'energy:green'] })
    assert.deepEqual((r.body as Array<{ peerId: string }>).map((x) => x.peerId), ['12D3KooWA'])
  })

  it('answers 400 API_BAD_REQUEST on a bad category', async () => {
    for (const bad of ['x', '-1', '1.5', '99999999']) {
      const r = await raw(server!.url, 'GET', `/v1/resources?category=${bad}`)
      assert.equal(r.status, 400, `category=${bad}`)
      assert.equal(errorCode(r), 'API_BAD_REQUEST')
    }
  })

  it('requires the token on every route, and rejects a wrong one', async () => {
    const routes: Array<[string, string]> = [['GET', '/v1/status'], ['GET', '/v1/peers'], ['GET', '/v1/resources'], ['POST', '/v1/shutdown'], ['GET', '/v1/nothing-here']]
    for (const [method, path] of routes) {
      for (const token of [null, 'wrong-token-0123456789abcdef', '', TOKEN.slice(0, -1)]) {
        const a = await raw(server!.url, method, path, { token })
        assert.equal(a.status, 401, `${method} ${path} with token ${String(token)}`)
        assert.deepEqual(Object.keys(a.body as object).sort(), ['error', 'ok'])
        assert.equal((a.body as { ok: boolean }).ok, false)
        assert.equal(errorCode(a), 'API_UNAUTHORIZED')
      }
    }
    // a Basic scheme with the right secret is still refused: only Bearer counts
    const basic = await raw(server!.url, 'GET', '/v1/status', { token: null, headers: { authorization: `Basic ${TOKEN}` } })
    assert.equal(basic.status, 401)
    assert.equal(backend.shutdowns, 0, 'an unauthenticated shutdown must not reach the backend')
  })

  it('answers 404 API_NOT_FOUND and 405 API_METHOD_NOT_ALLOWED with codes', async () => {
    const nf = await raw(server!.url, 'GET', '/v2/status')
    assert.equal(nf.status, 404)
    assert.equal(errorCode(nf), 'API_NOT_FOUND')
    const na = await raw(server!.url, 'DELETE', '/v1/status')
    assert.equal(na.status, 405)
    assert.equal(errorCode(na), 'API_METHOD_NOT_ALLOWED')
    assert.equal(na.headers.allow, 'GET')
    const getShutdown = await raw(server!.url, 'GET', '/v1/shutdown')
    assert.equal(getShutdown.status, 405)
    assert.equal(backend.shutdowns, 0)
  })

  it('refuses a body over the limit with 413 API_BODY_TOO_LARGE, declared or chunked', async () => {
    const small = await startApiServer({ port: 0, token: TOKEN, backend, maxBodyBytes: 100 })
    cleanups.push(small.close)
    const declared = await raw(small.url, 'POST', '/v1/shutdown', { body: Buffer.alloc(101, 0x20), headers: { 'content-type': 'application/json' } })
    assert.equal(declared.status, 413)
    assert.equal(errorCode(declared), 'API_BODY_TOO_LARGE')
    const chunked = await raw(small.url, 'POST', '/v1/shutdown', { body: Buffer.alloc(5000, 0x20), headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } })
    assert.equal(chunked.status, 413)
    assert.equal(errorCode(chunked), 'API_BODY_TOO_LARGE')
    assert.equal(backend.shutdowns, 0, 'a refused request must not reach the handler')
  })

  it('answers 400 on a body that is not JSON', async () => {
    const r = await raw(server!.url, 'POST', '/v1/shutdown', { body: '{nope', headers: { 'content-type': 'application/json' } })
    assert.equal(r.status, 400)
    assert.equal(errorCode(r), 'API_BAD_REQUEST')
  })

  it('answers shutdown first, then calls backend.shutdown()', async () => {
    const r = await raw(server!.url, 'POST', '/v1/shutdown')
    assert.equal(r.status, 202)
    assert.deepEqual(r.body, { ok: true })
    const deadline = Date.now() + 2000
    while (backend.shutdowns === 0 && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve))
    assert.equal(backend.shutdowns, 1)
  })

  it('throws API_PORT_IN_USE when the port is taken', async () => {
    const blocker: Server = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    cleanups.push(async () => { await new Promise<void>((resolve) => blocker.close(() => { resolve() })) })
    const addr = blocker.address()
    const port = typeof addr === 'object' && addr !== null ? addr.port : 0
    await assert.rejects(startApiServer({ port, token: TOKEN, backend }), (err: unknown) => isIexecError(err, 'API_PORT_IN_USE'))
  })

  it('refuses non-loopback hosts, bad ports and short tokens', async () => {
    await assert.rejects(startApiServer({ host: '0.0.0.0', port: 0, token: TOKEN, backend }), (err: unknown) => isIexecError(err, 'API_BAD_OPTIONS'))
    await assert.rejects(startApiServer({ port: 70000, token: TOKEN, backend }), (err: unknown) => isIexecError(err, 'API_BAD_OPTIONS'))
    await assert.rejects(startApiServer({ port: 0, token: 'short', backend }), (err: unknown) => isIexecError(err, 'API_BAD_OPTIONS'))
  })

  it('serves added routes with path params, and keeps a handler error\'s code', async () => {
    const extra = await startApiServer({
      port: 0,
      token: TOKEN,
      backend,
      routes: [
        { method: 'GET', path: '/v1/tasks/:taskId', handler: (req) => ({ taskId: req.params.taskId }) },
        { method: 'POST', path: '/v1/echo', handler: (req) => new ApiReply(req.body, 201) },
        { method: 'GET', path: '/v1/boom', handler: () => { throw new Error('kaput') } }
      ]
    })
    cleanups.push(extra.close)
    const t = await raw(extra.url, 'GET', '/v1/tasks/0xabc')
    assert.deepEqual(t.body, { taskId: '0xabc' })
    const e = await raw(extra.url, 'POST', '/v1/echo', { body: JSON.stringify({ a: 1 }), headers: { 'content-type': 'application/json' } })
    assert.equal(e.status, 201)
    assert.deepEqual(e.body, { a: 1 })
    const b = await raw(extra.url, 'GET', '/v1/boom')
    assert.equal(b.status, 500)
    assert.equal(errorCode(b), 'API_INTERNAL')
  })

  it('refuses a route registered twice', async () => {
    await assert.rejects(startApiServer({ port: 0, token: TOKEN, backend, routes: [{ method: 'GET', path: '/v1/status', handler: () => null }] }),
      (err: unknown) => isIexecError(err, 'API_BAD_OPTIONS'))
  })

  it('close() is idempotent and frees the port', async () => {
    const port = server!.port
    await server!.close()
    await server!.close()
    const again = await startApiServer({ port, token: TOKEN, backend })
    cleanups.push(again.close)
    assert.equal(again.port, port)
  })
})
