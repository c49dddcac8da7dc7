import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { assertBuilt, CliProcess, jsonError, runCli, type RunResult } from './cli-helpers.js'

/** Human mode: exactly one line `iexec-p2p: <message> (<CODE>)` on stderr. */
function humanError (r: RunResult, code: string): void {
  assert.match(r.stderr, new RegExp(`^iexec-p2p: [^\\n]+ \\(${code}\\)\\n$`), `stderr: ${r.stderr}`)
}

async function holdPort (): Promise<{ port: number, close: () => Promise<void> }> {
  const srv: Server = createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const addr = srv.address()
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0
  return { port, close: async () => { await new Promise<void>((resolve) => srv.close(() => { resolve() })) } }
}

describe('e2e: the CLI on bad input', function () {
  this.timeout(120_000)
  let dir: string
  let dataDir: string
  let otherPeerId: string
  const cleanups: Array<() => Promise<unknown>> = []

  before(async () => {
    assertBuilt()
    dir = await mkdtemp(join(tmpdir(), 'iexec-e2e-bad-'))
    dataDir = join(dir, 'node')
    const init = await runCli(['init', '--data-dir', dataDir, '--dev-unprotected-key', '--json'])
    assert.equal(init.code, 0, init.stderr)
    const other = await runCli(['init', '--data-dir', join(dir, 'other'), '--dev-unprotected-key', '--json'])
    assert.equal(other.code, 0, other.stderr)
    otherPeerId = (JSON.parse(other.stdout) as { peerId: string }).peerId
  })

  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()?.()
  })

  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('malformed multiaddr: usage error BAD_MULTIADDR, before the node starts', async () => {
    const j = await runCli(['start', '--data-dir', dataDir, '--listen', '/ip4/999.0.0.1/tcp/1', '--json'])
    assert.equal(j.code, 2)
    assert.equal(jsonError(j).code, 'BAD_MULTIADDR')
    assert.equal(j.stdout, '')
    const h = await runCli(['start', '--data-dir', dataDir, '--bootstrap', 'not-a-multiaddr'])
    assert.equal(h.code, 2)
    humanError(h, 'BAD_MULTIADDR')
  })

  it('unreachable bootstrap peer: the node starts anyway and says so', async () => {
    const closed = await holdPort()
    // a port that was just free and is closed again: nothing answers there
    await closed.close()
    const node = new CliProcess(['start', '--data-dir', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0',
      '--bootstrap', `/ip4/127.0.0.1/tcp/${closed.port}/p2p/${otherPeerId}`, '--json'])
    cleanups.push(async () => await node.stop())
    await node.waitFor('the ready line', () => node.stdout.includes('\n'), 60_000)
    const ready = JSON.parse(node.stdout.split('\n')[0]) as { peerId: string, api: string, multiaddrs: string[] }
    assert.match(ready.api, /^http:\/\/127\.0\.0\.1:\d+$/)
    await node.waitFor('the unreachable-bootstrap warning', () => node.stderr.includes('BOOTSTRAP_UNREACHABLE'), 30_000)
    const warning = node.stderr.split('\n').find((l) => l.includes('BOOTSTRAP_UNREACHABLE')) ?? ''
    assert.ok(warning.includes(`${closed.port}`), warning)
    // and it keeps serving
    const status = await runCli(['status', '--data-dir', dataDir, '--json'])
    assert.equal(status.code, 0, status.stderr)
    assert.equal((JSON.parse(status.stdout) as { peerId: string }).peerId, ready.peerId)
    const exit = await node.stop()
    assert.equal(exit.code, 0, `a SIGTERMed node exits cleanly; stderr: ${node.stderr}`)
  })

  it('wrong API token: API_UNAUTHORIZED, exit 1', async () => {
    // human mode this time: the ready text names the peer id, the API URL and the addresses
    const node = new CliProcess(['start', '--data-dir', dataDir, '--api-port', '0'])
    cleanups.push(async () => await node.stop())
    await node.waitFor('the ready text', () => /stop with Ctrl-C/.test(node.stdout), 60_000)
    assert.match(node.stdout, /^peer id +12D3KooW\w+$/m)
    assert.match(node.stdout, /^api +http:\/\/127\.0\.0\.1:\d+$/m)
    assert.match(node.stdout, /^listening +\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW\w+$/m)
    const bad = join(dir, 'bad-token')
    await writeFile(bad, 'f'.repeat(64) + '\n')
    const j = await runCli(['peers', '--data-dir', dataDir, '--token-file', bad, '--json'])
    assert.equal(j.code, 1)
    assert.equal(jsonError(j).code, 'API_UNAUTHORIZED')
    const h = await runCli(['resources', '--data-dir', dataDir, '--token-file', bad])
    assert.equal(h.code, 1)
    humanError(h, 'API_UNAUTHORIZED')
    // the right token still works, and `shutdown` stops the node through the API
    const ok = await runCli(['shutdown', '--data-dir', dataDir, '--json'])
    assert.equal(ok.code, 0, ok.stderr)
    const exit = await Promise.race([node.exited, new Promise<null>((resolve) => setTimeout(() => { resolve(null) }, 20_000))])
    assert.ok(exit !== null, 'the node exits after an API shutdown')
    assert.equal(exit.code, 0)
  })

  it('missing swarm key file: SWARM_KEY_MISSING, exit 1', async () => {
    const missing = join(dir, 'no-such-swarm.key')
    const j = await runCli(['start', '--data-dir', dataDir, '--swarm-key', missing, '--json'])
    assert.equal(j.code, 1)
    const e = jsonError(j)
    assert.equal(e.code, 'SWARM_KEY_MISSING')
    assert.ok(e.message.includes(missing))
    const h = await runCli(['start', '--data-dir', dataDir, '--swarm-key', missing])
    humanError(h, 'SWARM_KEY_MISSING')
  })

  it('a port in use: API_PORT_IN_USE for the API, LISTEN_PORT_IN_USE for libp2p', async () => {
    const held = await holdPort()
    cleanups.push(held.close)
    const api = await runCli(['start', '--data-dir', dataDir, '--api-port', String(held.port), '--json'])
    assert.equal(api.code, 1)
    assert.equal(jsonError(api).code, 'API_PORT_IN_USE')
    const p2p = await runCli(['start', '--data-dir', dataDir, '--api-port', '0', '--listen', `/ip4/127.0.0.1/tcp/${held.port}`])
    assert.equal(p2p.code, 1)
    humanError(p2p, 'LISTEN_PORT_IN_USE')
  })

  it('unknown command and unknown option: usage errors, exit 2', async () => {
    const cmd = await runCli(['launch-rockets'])
    assert.equal(cmd.code, 2)
    humanError(cmd, 'CLI_UNKNOWN_COMMAND')
    const opt = await runCli(['peers', '--colour', '--json'])
    assert.equal(opt.code, 2)
    assert.equal(jsonError(opt).code, 'CLI_UNKNOWN_OPTION')
    const val = await runCli(['swarm', 'up', '--nodes', 'lots', '--dir', join(dir, 'never'), '--json'])
    assert.equal(val.code, 2)
    assert.equal(jsonError(val).code, 'CLI_BAD_OPTION')
  })

  it('a client command with no running node: NODE_NOT_RUNNING', async () => {
    const r = await runCli(['peers', '--data-dir', join(dir, 'other')])
    assert.equal(r.code, 1)
    humanError(r, 'NODE_NOT_RUNNING')
  })
})
