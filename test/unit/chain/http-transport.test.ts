import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { HttpTransport } from '../../../node/chain/http-transport.js'
import { isTransientRpcError } from '../../../node/chain/rpc.js'

describe('chain: the JSON-RPC HTTP transport', () => {
  let server: Server | undefined
  let transport: HttpTransport | undefined
  afterEach(async () => {
    transport?.close()
    server?.closeAllConnections()
    await new Promise<void>((resolve) => { if (server === undefined) resolve(); else server.close(() => { resolve() }) })
    server = undefined
  })

  /** A server answering each request with `answer(body, headers)`; its URL. */
  async function serve (answer: (body: string, headers: Record<string, string | string[] | undefined>) => { status: number, text: string } | 'hang'): Promise<string> {
    server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const a = answer(Buffer.concat(chunks).toString(), req.headers)
        if (a === 'hang') return
        res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.text)
      })
    })
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve))
    const address = server.address()
    return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
  }

  it('posts the body as JSON with the URL\'s credentials and path, over one kept socket', async () => {
    const seen: Array<{ body: string, auth: string | undefined }> = []
    const sockets = new Set<unknown>()
    const url = await serve((body, headers) => {
      seen.push({ body, auth: headers.authorization as string | undefined })
      return { status: 200, text: '{"jsonrpc":"2.0","id":1,"result":"0x1"}' }
    })
    server?.on('connection', (socket) => { sockets.add(socket) })
    transport = new HttpTransport(url.replace('http://', 'http://alice:s%40cret@') + '/rpc?x=1', 5_000)
    for (let i = 0; i < 3; i++) assert.equal(await transport.post(`{"n":${i}}`), '{"jsonrpc":"2.0","id":1,"result":"0x1"}')
    assert.deepEqual(seen.map((s) => s.body), ['{"n":0}', '{"n":1}', '{"n":2}'])
    assert.equal(seen[0].auth, 'Basic ' + Buffer.from('alice:s@cret').toString('base64'))
    assert.equal(sockets.size, 1, 'one socket for three sequential requests')
  })

  it('a non-200 answer is a SERVER_ERROR with its status (429 and 5xx transient, 4xx not); no answer is ETIMEDOUT', async () => {
    let status = 503
    const url = await serve(() => status === 0 ? 'hang' : { status, text: 'busy' })
    transport = new HttpTransport(url, 300)
    const failure = async (): Promise<unknown> => await transport?.post('{}').then(() => undefined, (err: unknown) => err)
    for (const [s, transient] of [[503, true], [429, true], [404, false]] as const) {
      status = s
      const err = await failure() as { code?: string, response?: { statusCode?: number } }
      assert.equal(err.code, 'SERVER_ERROR')
      assert.equal(err.response?.statusCode, s)
      assert.equal(isTransientRpcError(err), transient, `HTTP ${s}`)
    }
    status = 0
    const timeout = await failure() as { code?: string }
    assert.equal(timeout.code, 'ETIMEDOUT')
    assert.equal(isTransientRpcError(timeout), true)
  })

  it('a refused connection fails with ECONNREFUSED, a transient error', async () => {
    const url = await serve(() => ({ status: 200, text: '{}' }))
    await new Promise<void>((resolve) => server?.close(() => { resolve() }))
    server = undefined
    transport = new HttpTransport(url, 1_000)
    const err = await transport.post('{}').then(() => undefined, (e: unknown) => e) as { code?: string }
    assert.equal(err.code, 'ECONNREFUSED')
    assert.equal(isTransientRpcError(err), true)
  })
})
