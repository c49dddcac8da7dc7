import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { join } from 'node:path'
import { runCli, type CliIo } from '../../../node/cli/index.js'
import { startApiServer, type ApiServer } from '../../../node/api/index.js'
import { freePort } from '../../../node/chain/local-chain.js'
import { FakeBackend } from '../api/fake-backend.js'
import { describeError } from '../../../node/cli/output.js'
import { IexecError } from '../../../node/common/errors.js'

const TOKEN = 'cli-token-0123456789abcdef0123'

/** Captures what the CLI prints. */
function captureIo (): CliIo & { stdout: () => string, stderr: () => string } {
  let out = ''
  let err = ''
  return { out: (s) => { out += s }, err: (s) => { err += s }, stdout: () => out, stderr: () => err }
}

async function cli (argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  const io = captureIo()
  const code = await runCli(argv, io)
  return { code, stdout: io.stdout(), stderr: io.stderr() }
}

function jsonError (stderr: string): { code: string, message: string } {
  const lines = stderr.trim().split('\n')
  assert.equal(lines.length, 1, `one line on stderr, got: ${stderr}`)
  const parsed = JSON.parse(lines[0]) as { ok: boolean, error: { code: string, message: string } }
  assert.equal(parsed.ok, false)
  return parsed.error
}

describe('cli: parsing and errors', () => {
  it('prints help with exit 0, for the program and each command', async () => {
    for (const argv of [[], ['--help'], ['start', '--help'], ['swarm', 'up', '--help'], ['resources', '--help']]) {
      const r = await cli(argv)
      assert.equal(r.code, 0, argv.join(' '))
      assert.match(r.stdout, /Usage: iexec-p2p/)
    }
    const start = await cli(['start', '--help'])
    for (const flag of ['--requester', '--listen', '--bootstrap', '--swarm-key', '--api-port', '--cpus', '--memory', '--price', '--category', '--tag', '--data-dir', '--password-file', '--init', '--json']) {
      assert.ok(start.stdout.includes(flag), `start --help mentions ${flag}`)
    }
  })

  it('an unknown command is a one-line usage error, exit 2', async () => {
    const r = await cli(['frobnicate'])
    assert.equal(r.code, 2)
    assert.equal(r.stdout, '')
    assert.match(r.stderr, /^iexec-p2p: .*frobnicate.* \(CLI_UNKNOWN_COMMAND\)\n$/)
  })

  it('task submit: --trust outside [1, 255] and --args that do not split are usage errors (exit 2), checked before any node is asked', async () => {
    for (const trust of ['0', '256', '1000000', '1.5']) {
      const r = await cli(['task', 'submit', '--app', 'primes', '--trust', trust, '--api', 'http://127.0.0.1:1', '--token-file', '/nonexistent', '--json'])
      assert.equal(r.code, 2, trust)
      assert.equal(jsonError(r.stderr).code, 'CLI_BAD_OPTION')
    }
    const codes = new Map([['a "b', 'ARGS_UNTERMINATED_QUOTE'], ['\'a', 'ARGS_UNTERMINATED_QUOTE'], ['a\\', 'ARGS_TRAILING_BACKSLASH']])
    for (const [args, code] of codes) {
      const r = await cli(['task', 'submit', '--app', 'primes', '--args', args, '--api', 'http://127.0.0.1:1', '--token-file', '/nonexistent', '--json'])
      assert.equal(r.code, 2, args)
      assert.equal(jsonError(r.stderr).code, code)
    }
  })

  it('a request argument the node refuses (MARKET_BAD_ARGUMENT, ARGS_*) exits 2 like a usage error', () => {
    for (const code of ['MARKET_BAD_ARGUMENT', 'ARGS_UNTERMINATED_QUOTE', 'API_BAD_REQUEST']) {
      const err = new IexecError('API_ERROR', 'refused', { serverCode: code })
      assert.equal(describeError(err).exitCode, 2, code)
      assert.equal(describeError(err).code, code)
    }
    assert.equal(describeError(new IexecError('API_ERROR', 'x', { serverCode: 'TASK_NOT_FOUND' })).exitCode, 1)
  })

  it('an unknown option gives its code as JSON with --json', async () => {
    const r = await cli(['peers', '--json', '--nope'])
    assert.equal(r.code, 2)
    assert.equal(jsonError(r.stderr).code, 'CLI_UNKNOWN_OPTION')
  })

  it('an option without its value is a usage error', async () => {
    const r = await cli(['swarm', 'up', '--nodes'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /\(CLI_MISSING_ARGUMENT\)\n$/)
  })

  it('bad option values are usage errors with codes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cli-parse-'))
    try {
      const cases: Array<[string[], string]> = [
        [['swarm', 'up', '--nodes', 'many', '--dir', dir, '--json'], 'CLI_BAD_OPTION'],
        [['swarm', 'up', '--nodes', '0', '--dir', dir, '--json'], 'CLI_BAD_OPTION'],
        [['resources', '--category', 'x', '--json'], 'CLI_BAD_OPTION'],
        [['start', '--data-dir', dir, '--listen', '/ip4/127.0.0.1/tcp/notaport', '--json'], 'BAD_MULTIADDR'],
        [['start', '--data-dir', dir, '--bootstrap', '/ip4/127.0.0.1/tcp/4001', '--json'], 'BAD_MULTIADDR'],
        [['start', '--data-dir', dir, '--api-port', '70000', '--json'], 'CLI_BAD_OPTION'],
        [['start', '--data-dir', dir, '--price', '-3', '--json'], 'CLI_BAD_OPTION'],
        [['start', '--data-dir', dir, '--tag', 'has space', '--json'], 'CLI_BAD_OPTION'],
        [['peers', '--api', 'ftp://x', '--token-file', '/dev/null', '--json'], 'CLI_BAD_OPTION']
      ]
      for (const [argv, code] of cases) {
        const r = await cli(argv)
        assert.equal(r.code, 2, argv.join(' '))
        assert.equal(jsonError(r.stderr).code, code, argv.join(' '))
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('start on a data dir that was never initialised says so (exit 1)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cli-noinit-'))
    try {
      const r = await cli(['start', '--data-dir', dir, '--json'])
      assert.equal(r.code, 1)
      assert.equal(jsonError(r.stderr).code, 'DATA_DIR_NOT_INITIALIZED')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('swarm status / down on an empty dir: SWARM_NOT_FOUND, and a no-op down', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cli-noswarm-'))
    try {
      const s = await cli(['swarm', 'status', '--dir', dir, '--json'])
      assert.equal(s.code, 1)
      assert.equal(jsonError(s.stderr).code, 'SWARM_NOT_FOUND')
      const d = await cli(['swarm', 'down', '--dir', dir])
      assert.equal(d.code, 0)
      assert.match(d.stdout, /nothing to stop/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('cli: client commands against an API server', () => {
  let server: ApiServer | undefined
  let backend: FakeBackend
  let dir: string

  beforeEach(async () => {
    backend = new FakeBackend()
    // the data dir's peer key: the CLI makes the server behind api.json prove it holds it
    const key = await generateKeyPair('Ed25519')
    const peerId = peerIdFromPrivateKey(key).toString()
    server = await startApiServer({ port: 0, token: TOKEN, backend, identity: async (payload) => ({ peerId, signature: await key.sign(payload) }) })
    dir = await mkdtemp(join(tmpdir(), 'cli-client-'))
    await writeFile(join(dir, 'api-token'), TOKEN + '\n')
    await writeFile(join(dir, 'peer.key'), privateKeyToProtobuf(key))
    await writeFile(join(dir, 'api.json'), JSON.stringify({ url: server.url, pid: process.pid, peerId }))
  })

  afterEach(async () => {
    await server?.close()
    server = undefined
    await rm(dir, { recursive: true, force: true })
  })

  it('peers --json prints the DESIGN.md shape, found through <data-dir>/api.json', async () => {
    const r = await cli(['peers', '--data-dir', dir, '--json'])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(JSON.parse(r.stdout), await backend.peers())
  })

  it('resources passes --category and --tag, human and JSON', async () => {
    const j = await cli(['resources', '--data-dir', dir, '--category', '0', '--tag', 'region:eu', '--json'])
    assert.equal(j.code, 0, j.stderr)
    const rows = JSON.parse(j.stdout) as Array<Record<string, unknown>>
    assert.deepEqual(rows.map((x) => x.peerId), ['12D3KooWA'])
    for (const key of ['peerId', 'address', 'cpus', 'memoryMb', 'executors', 'category', 'priceFloor']) assert.ok(key in rows[0], key)
    assert.deepEqual(backend.queries.at(-1), { category: 0, tags: ['region:eu'] })
    const h = await cli(['resources', '--data-dir', dir])
    assert.equal(h.code, 0)
    assert.match(h.stdout, /PEER ID\s+CPUS/)
    assert.ok(h.stdout.includes('12D3KooWB'))
  })

  it('status works with --api and --token-file instead of the data dir', async () => {
    const r = await cli(['status', '--api', server!.url, '--token-file', join(dir, 'api-token'), '--json'])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(JSON.parse(r.stdout), backend.status())
  })

  it('a wrong token is API_UNAUTHORIZED, one line, exit 1', async () => {
    const bad = join(dir, 'bad-token')
    await writeFile(bad, 'not-the-token-0123456789abcdef\n')
    const h = await cli(['peers', '--data-dir', dir, '--token-file', bad])
    assert.equal(h.code, 1)
    assert.match(h.stderr, /^iexec-p2p: .* \(API_UNAUTHORIZED\)\n$/)
    const j = await cli(['peers', '--data-dir', dir, '--token-file', bad, '--json'])
    assert.equal(jsonError(j.stderr).code, 'API_UNAUTHORIZED')
  })

  it('a dead API URL is API_UNREACHABLE naming the URL', async () => {
    const url = `http://127.0.0.1:${await freePort()}`
    const r = await cli(['status', '--api', url, '--token-file', join(dir, 'api-token'), '--json'])
    assert.equal(r.code, 1)
    const e = jsonError(r.stderr)
    assert.equal(e.code, 'API_UNREACHABLE')
    assert.ok(e.message.includes(url))
  })

  it('a missing token file is API_TOKEN_MISSING', async () => {
    const r = await cli(['peers', '--api', server!.url, '--token-file', join(dir, 'nope'), '--json'])
    assert.equal(r.code, 1)
    assert.equal(jsonError(r.stderr).code, 'API_TOKEN_MISSING')
  })

  it('shutdown asks the backend to stop', async () => {
    const r = await cli(['shutdown', '--data-dir', dir])
    assert.equal(r.code, 0, r.stderr)
    const deadline = Date.now() + 2000
    while (backend.shutdowns === 0 && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve))
    assert.equal(backend.shutdowns, 1)
  })
})
