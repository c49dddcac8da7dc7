/**
 * A stale api.json (its node killed by SIGKILL) whose port another process
 * listens on now: the CLI makes that process prove it holds the data dir's
 * peer key (a nonce and the URL it was called at, signed) before it sends
 * the API token, and refuses with API_NOT_THE_NODE when it cannot. Real
 * nodes (libp2p, level, the HTTP API), no mocks.
 */
import assert from 'node:assert/strict'
import { createServer, request } from 'node:http'
import type { IncomingHttpHeaders, Server } from 'node:http'
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IexecNode } from '../../node/node.js'
import { dataDirPaths, initDataDir } from '../../node/config/index.js'
import { clientFor } from '../../node/cli/client-commands.js'
import { isIexecError } from '../../node/common/errors.js'

async function listening (server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const addr = server.address()
  if (typeof addr !== 'object' || addr === null) throw new Error('no address')
  return `http://127.0.0.1:${addr.port}`
}

async function gone (file: string): Promise<boolean> {
  try {
    await access(file)
    return false
  } catch {
    return true
  }
}

describe('adversarial: a stale api.json never gets the API token (real nodes)', function () {
  this.timeout(120_000)
  let root: string
  const cleanup: Array<() => Promise<void>> = []
  before(async () => { root = await mkdtemp(join(tmpdir(), 'iexec-stale-api-')) })
  afterEach(async () => { for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {}) })
  after(async () => { await rm(root, { recursive: true, force: true }) })

  async function node (name: string): Promise<IexecNode> {
    const dataDir = join(root, name)
    await initDataDir({ dataDir, devUnprotectedKey: true, config: { swarmId: 'stale', advertIntervalMs: 3_600_000 } })
    const n = await IexecNode.create({ dataDir })
    cleanup.push(async () => { await n.stop() })
    await n.start()
    return n
  }

  it('the CLI reaches its own node after the identity check; api.json goes on a clean stop', async () => {
    const a = await node('a')
    const api = await clientFor({ dataDir: a.dataDir })
    assert.equal((await api.status()).peerId, a.peerId)
    await a.stop()
    assert.ok(await gone(dataDirPaths(a.dataDir).apiInfo), 'api.json removed on a clean stop')
  })

  it('a stale api.json pointing at another listener: refused with API_NOT_THE_NODE, no token sent', async () => {
    const a = await node('b')
    const paths = dataDirPaths(a.dataDir)
    await a.stop()

    // any other process on the port: it records what it is sent and answers whatever it likes
    const seen: Array<{ url: string, headers: IncomingHttpHeaders }> = []
    let answer = (): unknown => ({ peerId: a.peerId, signature: Buffer.alloc(64).toString('base64') })
    const rogue = createServer((req, res) => {
      seen.push({ url: req.url ?? '', headers: req.headers })
      const body = JSON.stringify(answer())
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
    cleanup.push(async () => { await new Promise<void>((resolve) => { rogue.close(() => { resolve() }) }) })
    const rogueUrl = await listening(rogue)
    // what a node killed by SIGKILL leaves behind, its port now the rogue's
    await writeFile(paths.apiInfo, JSON.stringify({ url: rogueUrl, pid: 999_999, peerId: a.peerId }) + '\n')
    const refused = async (): Promise<void> => {
      await assert.rejects(clientFor({ dataDir: a.dataDir }), (err: unknown) => isIexecError(err, 'API_NOT_THE_NODE'))
    }
    // claims the node's peer id with a signature it cannot make
    await refused()
    // names another peer
    answer = () => ({ peerId: '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf', signature: '' })
    await refused()
    // not an identity answer at all
    answer = () => ({ ok: true })
    await refused()

    // another real node listening there: it proves its own identity, not this data dir's
    const other = await node('c')
    await writeFile(paths.apiInfo, JSON.stringify({ url: other.apiUrl(), pid: 999_999, peerId: a.peerId }) + '\n')
    await refused()

    // a relay to the real node (restarted elsewhere): the node signs the URL it listens at, not the rogue's
    const b = await IexecNode.create({ dataDir: a.dataDir })
    cleanup.push(async () => { await b.stop() })
    await b.start()
    answer = () => undefined
    const relay = createServer((req, res) => {
      seen.push({ url: req.url ?? '', headers: req.headers })
      const fwd = request(`${b.apiUrl()}${req.url ?? '/'}`, { method: req.method, agent: false }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers)
        up.pipe(res)
      })
      req.pipe(fwd)
    })
    cleanup.push(async () => { await new Promise<void>((resolve) => { relay.close(() => { resolve() }) }) })
    const relayUrl = await listening(relay)
    await writeFile(paths.apiInfo, JSON.stringify({ url: relayUrl, pid: 999_999, peerId: a.peerId }) + '\n')
    await refused()

    assert.ok(seen.length >= 4, 'the rogue listeners were asked to prove themselves')
    for (const r of seen) {
      assert.equal(r.headers.authorization, undefined, 'no request to a rogue listener carried the token')
      assert.match(r.url, /^\/v1\/identity\?nonce=[0-9a-f]{64}$/)
    }
  })
})
