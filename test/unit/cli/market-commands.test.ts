import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli, type CliIo } from '../../../node/cli/index.js'
import { formatAmount, formatRlc, parseAmount, parseBytes32, parseChecksum } from '../../../node/cli/parse.js'
import { parseTaskSubmit } from '../../../node/cli/market-commands.js'
import { isIexecError } from '../../../node/common/errors.js'

function codeOf (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    if (isIexecError(err)) return err.code
    throw err
  }
  return 'NO_ERROR'
}

describe('cli: amounts and ids', () => {
  it('parses nRLC and RLC amounts', () => {
    assert.equal(parseAmount('A', '5'), 5n)
    assert.equal(parseAmount('A', '5nRLC'), 5n)
    assert.equal(parseAmount('A', '5nrlc'), 5n)
    assert.equal(parseAmount('A', '1.5RLC'), 1_500_000_000n)
    assert.equal(parseAmount('A', '2RLC'), 2_000_000_000n)
    assert.equal(parseAmount('A', '0.000000001RLC'), 1n)
    assert.equal(parseAmount('A', '18446744073709551615'), (1n << 64n) - 1n)
  })

  it('refuses malformed, zero, too precise and too large amounts with CLI_BAD_OPTION', () => {
    for (const bad of ['', 'abc', '-5', '1.5', '1.5nRLC', '0.0000000001RLC', '0', '0RLC', '5 ETH', '1e9', '18446744073709551616', '1,5RLC']) {
      assert.equal(codeOf(() => parseAmount('AMOUNT', bad)), 'CLI_BAD_OPTION', `"${bad}" is refused`)
    }
  })

  it('prints both forms', () => {
    assert.equal(formatRlc(1_500_000_000n), '1.5 RLC')
    assert.equal(formatRlc('0'), '0 RLC')
    assert.equal(formatRlc(1n), '0.000000001 RLC')
    assert.equal(formatAmount('500000000000'), '500 RLC (500000000000 nRLC)')
  })

  it('checks deal ids and checksums', () => {
    const id = '0x' + 'ab'.repeat(32)
    assert.equal(parseBytes32('DEALID', id.toUpperCase().replace('0X', '0x')), id)
    assert.equal(codeOf(() => parseBytes32('DEALID', '0x12')), 'CLI_BAD_OPTION')
    assert.equal(codeOf(() => parseBytes32('DEALID', 'ab'.repeat(32))), 'CLI_BAD_OPTION')
    assert.equal(parseChecksum('AB'.repeat(32)), '0x' + 'ab'.repeat(32))
    assert.equal(codeOf(() => parseChecksum('xyz')), 'CLI_BAD_OPTION')
  })

  it('validates task submit options into the API request', () => {
    const req = parseTaskSubmit({ app: 'wordcount', args: 'a b', category: '0', trust: '1', volume: '2', maxPrice: '1.5RLC', tag: ['region:eu'], biddingWindow: '1500' })
    assert.deepEqual(req, { app: 'wordcount', args: 'a b', category: 0, trust: 1, volume: 2, maxPrice: 1_500_000_000n, tags: ['region:eu'], biddingWindowMs: 1500 })
    assert.equal(parseTaskSubmit({ app: 'primes', encryptResult: true }).encryptResult, true)
    assert.equal(parseTaskSubmit({ app: 'primes' }).encryptResult, undefined)
    assert.equal(parseTaskSubmit({ app: '0x' + '11'.repeat(20), maxPrice: '0' }).maxPrice, 0n)
    assert.equal(codeOf(() => parseTaskSubmit({})), 'CLI_MISSING_ARGUMENT')
    assert.equal(codeOf(() => parseTaskSubmit({ app: '0x1234' })), 'CLI_BAD_OPTION')
    assert.equal(codeOf(() => parseTaskSubmit({ app: 'a', volume: '0' })), 'CLI_BAD_OPTION')
    assert.equal(codeOf(() => parseTaskSubmit({ app: 'a', input: ['not-a-cid'] })), 'CLI_BAD_OPTION')
    assert.equal(codeOf(() => parseTaskSubmit({ app: 'a', maxPrice: 'cheap' })), 'CLI_BAD_OPTION')
  })
})

/**
 * The commands against a small HTTP server answering the routes' documented
 * shapes (the real routes are covered by test/e2e/cli-market.test.ts): checks
 * what the CLI sends, prints and returns as exit code.
 */
describe('cli: market commands over HTTP', () => {
  let server: Server
  let url: string
  let dir: string
  let tokenFile: string
  const seen: Array<{ method: string, path: string, body: unknown }> = []
  const dealId = '0x' + 'de'.repeat(32)
  const worker = '0x' + '22'.repeat(20)

  function reply (res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(JSON.stringify(body))
  }

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const text = Buffer.concat(chunks).toString()
    const body: unknown = text.length > 0 ? JSON.parse(text) : undefined
    const path = req.url ?? ''
    seen.push({ method: req.method ?? '', path, body })
    if (req.headers.authorization !== 'Bearer tok') { reply(res, 401, { ok: false, error: { code: 'API_UNAUTHORIZED', message: 'no' } }); return }
    if (path === '/v1/status') {
      reply(res, 200, { peerId: '12D3KooR', address: worker, multiaddrs: [], role: 'requester', version: '0', connections: 0, defaultMaxPrice: '1000000000' })
    } else if (path === '/v1/wallet') {
      reply(res, 200, { address: worker, eth: '10000000000000000000', rlc: '500000000000', balance: '400000000000', frozen: '0', stake: '100000000000', stakeLocked: '0' })
    } else if (path.startsWith('/v1/orderbook')) {
      reply(res, 200, { orders: [{ type: 'request', orderHash: '0x' + '01'.repeat(32), signer: worker, order: { workerpoolprice: '7' }, remaining: '1', receivedAt: 0 }] })
    } else if (path === '/v1/account/deposit') {
      reply(res, 200, { txHash: '0x' + '03'.repeat(32), balance: '1500000000' })
    } else if (path === '/v1/tasks') {
      const app = (body as { app: string }).app
      if (app === 'nobody') {
        reply(res, 422, { ok: false, error: { code: 'NO_BIDS', message: 'no bid within 1000 ms', details: { reasons: [{ peerId: '12D3KooA', code: 'PRICE_TOO_LOW', reason: 'price 1 below floor 5' }, { peerId: '12D3KooB', code: 'CATEGORY', reason: 'category 3 not served' }] } } })
      } else {
        reply(res, 200, { dealId, scheduler: worker, workers: [worker], tasks: [{ taskId: '0x' + '05'.repeat(32), status: 'ACTIVE' }] })
      }
    } else if (path === `/v1/deals/${dealId}`) {
      reply(res, 400, { ok: false, error: { code: 'CHAIN_NOT_CONFIGURED', message: 'this node has no chain' } })
    } else {
      reply(res, 404, { ok: false, error: { code: 'API_NOT_FOUND', message: `no route ${req.method ?? ''} ${path}` } })
    }
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cli-market-'))
    tokenFile = join(dir, 'token')
    await writeFile(tokenFile, 'tok\n')
    server = createServer((req, res) => { void handle(req, res) })
    await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
    const addr = server.address()
    url = `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`
  })

  after(async () => {
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    await rm(dir, { recursive: true, force: true })
  })

  async function cli (args: string[]): Promise<{ code: number, out: string, err: string }> {
    let out = ''
    let err = ''
    const io: CliIo = { out: (t) => { out += t }, err: (t) => { err += t } }
    const code = await runCli([...args, '--api', url, '--token-file', tokenFile], io)
    return { code, out, err }
  }

  it('wallet show prints both amount forms; --json passes the view through', async () => {
    const h = await cli(['wallet', 'show'])
    assert.equal(h.code, 0, h.err)
    assert.match(h.out, /hub balance\s+400 RLC \(400000000000 nRLC\)/)
    assert.match(h.out, /eth\s+10 ETH/)
    const j = await cli(['wallet', 'show', '--json'])
    assert.equal((JSON.parse(j.out) as { stake: string }).stake, '100000000000')
  })

  it('account deposit sends nRLC as a decimal string', async () => {
    seen.length = 0
    const r = await cli(['account', 'deposit', '1.5RLC'])
    assert.equal(r.code, 0, r.err)
    assert.deepEqual(seen[0], { method: 'POST', path: '/v1/account/deposit', body: { amount: '1500000000' } })
    assert.match(r.out, /deposited 1\.5 RLC \(1500000000 nRLC\)/)
  })

  it('a malformed amount is a usage error before any request', async () => {
    seen.length = 0
    const r = await cli(['stake', '12abc', '--json'])
    assert.equal(r.code, 2)
    assert.equal((JSON.parse(r.err) as { error: { code: string } }).error.code, 'CLI_BAD_OPTION')
    assert.equal(seen.length, 0)
  })

  it('orderbook passes the filters as query parameters', async () => {
    seen.length = 0
    const r = await cli(['orderbook', 'request', '--category', '0', '--json'])
    assert.equal(r.code, 0, r.err)
    assert.equal(seen[0].path, '/v1/orderbook?type=request&category=0')
    assert.equal((JSON.parse(r.out) as { orders: unknown[] }).orders.length, 1)
    const bad = await cli(['orderbook', 'offers'])
    assert.equal(bad.code, 2)
  })

  it('task submit prints the deal; NO_BIDS prints one line per provider reason', async () => {
    const ok = await cli(['task', 'submit', '--app', 'wordcount', '--json'])
    assert.equal(ok.code, 0, ok.err)
    assert.equal((JSON.parse(ok.out) as { dealId: string }).dealId, dealId)
    const none = await cli(['task', 'submit', '--app', 'nobody'])
    assert.equal(none.code, 1)
    const lines = none.err.trim().split('\n')
    // without --max-price, the node's cap is said first, before the request is signed
    assert.equal(lines[0], 'task: no --max-price: offering the workers at most 1 RLC (1000000000 nRLC) a task (the node\'s defaultMaxPrice)')
    const firstSubmit = seen.findIndex((s) => s.path === '/v1/tasks' && (s.body as { app: string }).app === 'nobody')
    assert.ok(seen.slice(0, firstSubmit).some((s) => s.path === '/v1/status'), 'the cap was read before the submit')
    const capped = await cli(['task', 'submit', '--app', 'nobody', '--max-price', '2RLC'])
    assert.ok(!capped.err.includes('no --max-price'), 'a named price is not announced as the default')
    assert.ok(lines.some((l) => l.includes('12D3KooA') && l.includes('PRICE_TOO_LOW')), none.err)
    assert.ok(lines.some((l) => l.includes('12D3KooB') && l.includes('category 3 not served')), none.err)
    assert.match(lines[lines.length - 1], /\(NO_BIDS\)$/)
    const json = await cli(['task', 'submit', '--app', 'nobody', '--json'])
    assert.equal(json.code, 1)
    const envelope = JSON.parse(json.err) as { error: { code: string, details: { reasons: Array<{ code: string }> } } }
    assert.equal(envelope.error.code, 'NO_BIDS')
    assert.deepEqual(envelope.error.details.reasons.map((r) => r.code), ['PRICE_TOO_LOW', 'CATEGORY'], '--json passes the reasons on for scripts')
  })

  it('the server\'s error code reaches the user (CHAIN_NOT_CONFIGURED)', async () => {
    const r = await cli(['deal', 'show', dealId])
    assert.equal(r.code, 1)
    assert.match(r.err, /\(CHAIN_NOT_CONFIGURED\)\n$/)
  })
})
