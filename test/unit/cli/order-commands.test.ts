import assert from 'node:assert/strict'
import { isIexecError } from '../../../node/common/errors.js'
import { runCli, type CliIo } from '../../../node/cli/index.js'
import { parseExpiry, parseOrderPublish, parseOrderUnpublish } from '../../../node/cli/order-commands.js'
import { describeError } from '../../../node/cli/output.js'

const A = '0x' + '11'.repeat(20)
const B = '0x' + '22'.repeat(20)
const C = '0x' + '33'.repeat(20)
const H = '0x' + 'ab'.repeat(32)
const NOW = 1_800_000_000

/** The call throws a usage error (exit 2) with this code. */
function usage (fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => isIexecError(e, code) && describeError(e).exitCode === 2, `expected ${code}`)
}

describe('cli: order publish | unpublish (flags checked before any network call)', () => {
  it('app orders: every field into the API body', () => {
    assert.deepEqual(parseOrderPublish('app', {
      app: 'wordcount', price: '1.5RLC', volume: '10', tag: ['region:eu', 'gpu'], dataset: A, requester: B, workerpool: C, expiry: '+2h'
    }, NOW), {
      type: 'app', app: 'wordcount', price: '1500000000', volume: '10', tags: ['region:eu', 'gpu'],
      datasetrestrict: A, requesterrestrict: B, workerpoolrestrict: C, expiresAt: NOW + 7200
    })
    assert.deepEqual(parseOrderPublish('app', { app: A, salt: H.toUpperCase().replace('0X', '0x') }, NOW), { type: 'app', app: A, salt: H })
  })

  it('dataset orders: the owner chooses an app or any app; a price, 0 only with --free', () => {
    assert.deepEqual(parseOrderPublish('dataset', { dataset: A, app: B, price: '5', requester: C, volume: '3', expiry: String(NOW + 60) }, NOW), {
      type: 'dataset', dataset: A, price: '5', apprestrict: B, requesterrestrict: C, volume: '3', expiresAt: NOW + 60
    })
    assert.deepEqual(parseOrderPublish('dataset', { dataset: A, anyApp: true, free: true }, NOW), { type: 'dataset', dataset: A, price: '0', anyApp: true })
    usage(() => parseOrderPublish('dataset', { dataset: A, price: '5' }, NOW), 'DATASET_APPS_REQUIRED')
    usage(() => parseOrderPublish('dataset', { dataset: A, app: B, anyApp: true, price: '5' }, NOW), 'CLI_BAD_OPTION')
    usage(() => parseOrderPublish('dataset', { dataset: A, app: B }, NOW), 'CLI_MISSING_ARGUMENT')
    usage(() => parseOrderPublish('dataset', { dataset: A, app: B, price: '0' }, NOW), 'CLI_BAD_OPTION')
    usage(() => parseOrderPublish('dataset', { app: B, price: '1' }, NOW), 'CLI_MISSING_ARGUMENT')
  })

  it('request orders: prices, category, trust, params, beneficiary, callback, workerpool', () => {
    assert.deepEqual(parseOrderPublish('request', {
      app: A, dataset: B, workerpool: C, appMaxPrice: '2', datasetMaxPrice: '3', maxPrice: '1RLC', volume: '2', tag: ['region:eu', 'my-own'],
      category: '1', trust: '1', args: 'a "b c"', input: ['bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'], beneficiary: B, callback: C, biddingWindow: '3000', expiry: '+1d'
    }, NOW), {
      type: 'request', app: A, dataset: B, workerpool: C, appmaxprice: '2', datasetmaxprice: '3', workerpoolmaxprice: '1000000000', volume: 2,
      tags: ['region:eu', 'my-own'], category: 1, trust: 1, args: 'a "b c"', inputs: ['bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'],
      beneficiary: B, callback: C, biddingWindowMs: 3000, expiresAt: NOW + 86_400
    })
    usage(() => parseOrderPublish('request', { app: A, datasetMaxPrice: '3' }, NOW), 'CLI_BAD_OPTION')
    usage(() => parseOrderPublish('request', { dataset: B }, NOW), 'CLI_MISSING_ARGUMENT')
    usage(() => parseOrderPublish('request', { app: A, trust: '0' }, NOW), 'CLI_BAD_OPTION')
  })

  it('bad input: malformed addresses, volumes, prices, expiries, salts, options of another type', () => {
    usage(() => parseOrderPublish('bid', { app: A }, NOW), 'CLI_BAD_OPTION')
    usage(() => parseOrderPublish('app', {}, NOW), 'CLI_MISSING_ARGUMENT')
    usage(() => parseOrderPublish('app', { app: 'has space' }, NOW), 'CLI_BAD_OPTION')
    for (const [flag, v] of [['dataset', '0x12'], ['requester', 'bob'], ['workerpool', A + '00']] as const) {
      usage(() => parseOrderPublish('app', { app: A, [flag]: v }, NOW), 'CLI_BAD_OPTION')
    }
    usage(() => parseOrderPublish('request', { app: A, beneficiary: 'me' }, NOW), 'CLI_BAD_OPTION')
    usage(() => parseOrderPublish('request', { app: A, callback: '0xzz' + '1'.repeat(38) }, NOW), 'CLI_BAD_OPTION')
    for (const v of ['0', '-1', '1.5', 'ten']) usage(() => parseOrderPublish('app', { app: A, volume: v }, NOW), 'CLI_BAD_OPTION')
    for (const v of ['0', '-3', '10001']) usage(() => parseOrderPublish('request', { app: A, volume: v }, NOW), 'CLI_BAD_OPTION')
    for (const v of ['abc', '-5', '1.5', '5 dollars', String(1n << 48n)]) usage(() => parseOrderPublish('app', { app: A, price: v }, NOW), 'CLI_BAD_OPTION')
    for (const v of ['cheap', '-1']) usage(() => parseOrderPublish('request', { app: A, maxPrice: v }, NOW), 'CLI_BAD_OPTION')
    usage(() => parseOrderPublish('request', { app: A, appMaxPrice: 'x' }, NOW), 'CLI_BAD_OPTION')
    usage(() => parseOrderPublish('app', { app: A, tag: ['region:mars'] }, NOW), 'CLI_BAD_OPTION')
    usage(() => parseOrderPublish('app', { app: A, salt: '0x1234' }, NOW), 'CLI_BAD_OPTION')
    usage(() => parseOrderPublish('app', { app: A, salt: H, expiry: '+1h' }, NOW), 'CLI_BAD_OPTION')
    // an option of another order type is refused, not silently dropped
    usage(() => parseOrderPublish('app', { app: A, free: true }, NOW), 'CLI_BAD_OPTION')
    usage(() => parseOrderPublish('app', { app: A, trust: '1' }, NOW), 'CLI_BAD_OPTION')
    usage(() => parseOrderPublish('dataset', { dataset: A, anyApp: true, free: true, callback: B }, NOW), 'CLI_BAD_OPTION')
    usage(() => parseOrderPublish('request', { app: A, price: '1' }, NOW), 'CLI_BAD_OPTION')
  })

  it('--expiry: unix seconds, ISO time or +duration; one that has passed is ORDER_EXPIRED', () => {
    assert.equal(parseExpiry('+90s', NOW), NOW + 90)
    assert.equal(parseExpiry('+30m', NOW), NOW + 1800)
    assert.equal(parseExpiry(String(NOW + 1), NOW), NOW + 1)
    assert.equal(parseExpiry('2030-01-01T00:00:00Z', NOW), Date.UTC(2030, 0, 1) / 1000)
    usage(() => parseExpiry(String(NOW), NOW), 'ORDER_EXPIRED')
    usage(() => parseExpiry('2020-01-01T00:00:00Z', NOW), 'ORDER_EXPIRED')
    usage(() => parseExpiry('1', NOW), 'ORDER_EXPIRED')
    usage(() => parseOrderPublish('app', { app: A, expiry: '2001-09-09' }, NOW), 'ORDER_EXPIRED')
    for (const v of ['tomorrow', '+5w', '-1h', '+', '2030-13-45']) usage(() => parseExpiry(v, NOW), 'CLI_BAD_OPTION')
  })

  it('unpublish: a hash, or --app/--dataset with --all', () => {
    assert.deepEqual(parseOrderUnpublish(H, {}), { orderHash: H })
    assert.deepEqual(parseOrderUnpublish(undefined, { app: A, all: true }), { app: A })
    assert.deepEqual(parseOrderUnpublish(undefined, { dataset: B, all: true }), { dataset: B })
    usage(() => parseOrderUnpublish('0x1234', {}), 'CLI_BAD_OPTION')
    usage(() => parseOrderUnpublish(undefined, {}), 'CLI_MISSING_ARGUMENT')
    usage(() => parseOrderUnpublish(undefined, { app: A }), 'CLI_MISSING_ARGUMENT')
    usage(() => parseOrderUnpublish(undefined, { app: A, dataset: B, all: true }), 'CLI_USAGE')
    usage(() => parseOrderUnpublish(H, { app: A, all: true }), 'CLI_USAGE')
    usage(() => parseOrderUnpublish(undefined, { app: 'wordcount', all: true }), 'CLI_BAD_OPTION')
  })

  it('the command line: exit 2 and one coded line, before any node is asked (none runs)', async () => {
    let err = ''
    const io: CliIo = { out: () => {}, err: (s) => { err += s } }
    const cases: Array<[string[], string]> = [
      [['order', 'publish', 'app', '--app', 'wc', '--volume', '-1'], 'CLI_BAD_OPTION'],
      [['order', 'publish', 'app', '--app', 'wc', '--price', 'lots'], 'CLI_BAD_OPTION'],
      [['order', 'publish', 'dataset', '--dataset', '0x12', '--any-app', '--free'], 'CLI_BAD_OPTION'],
      [['order', 'publish', 'app', '--app', 'wc', '--expiry', '2001-01-01'], 'ORDER_EXPIRED'],
      [['order', 'unpublish', 'nothash'], 'CLI_BAD_OPTION'],
      [['order', 'publish'], 'CLI_MISSING_ARGUMENT']
    ]
    for (const [argv, code] of cases) {
      err = ''
      const exit = await runCli([...argv, '--data-dir', '/nonexistent/iexec-orders-test', '--json'], io)
      assert.equal(exit, 2, `${argv.join(' ')}: ${err}`)
      assert.equal((JSON.parse(err.trim()) as { error: { code: string } }).error.code, code, argv.join(' '))
    }
  })
})
