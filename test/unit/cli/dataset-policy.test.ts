import assert from 'node:assert/strict'
import { isIexecError } from '../../../node/common/errors.js'
import { datasetPolicyCommand, parseDatasetPolicy, parseDatasetPriceChoice, parseOrderTags, parseOrderVolume } from '../../../node/cli/dataset-commands.js'
import { orderShowCommand, orderbookCommand, parseAppPolicy } from '../../../node/cli/market-commands.js'
import { describeError } from '../../../node/cli/output.js'

const A = '0x' + '11'.repeat(20)
const B = '0x' + '22'.repeat(20)

/** The call throws a usage error (exit 2) with this code. */
function usage (fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => isIexecError(e, code) && describeError(e).exitCode === 2)
}

describe('cli: who may use a dataset or an app (flags checked before any network call)', () => {
  it('dataset publish: --app or --any-app, never both, never neither', () => {
    assert.deepEqual(parseDatasetPolicy({ app: ['wordcount', A, 'wordcount'] }), { apps: ['wordcount', A], requesters: [], tags: [] })
    assert.deepEqual(parseDatasetPolicy({ anyApp: true, requester: [B], tag: ['region:eu'], volume: '10' }), { anyApp: true, requesters: [B], tags: ['region:eu'], volume: 10n })
    usage(() => parseDatasetPolicy({}), 'DATASET_APPS_REQUIRED')
    usage(() => parseDatasetPolicy({ requester: [A] }), 'DATASET_APPS_REQUIRED')
    usage(() => parseDatasetPolicy({ app: ['x'], anyApp: true }), 'CLI_BAD_OPTION')
    usage(() => parseDatasetPolicy({ app: ['0x12'] }), 'CLI_BAD_OPTION')
    usage(() => parseDatasetPolicy({ app: [''] }), 'CLI_BAD_OPTION')
    usage(() => parseDatasetPolicy({ anyApp: true, requester: ['me'] }), 'CLI_BAD_OPTION')
    // 9 apps x 8 requesters = 72 orders, above the 64 a publish signs
    const many = (n: number, d: number): string[] => Array.from({ length: n }, (_, i) => '0x' + (d * 100 + i + 1).toString(16).padStart(40, '0'))
    usage(() => parseDatasetPolicy({ app: many(9, 1), requester: many(8, 2) }), 'CLI_BAD_OPTION')
    assert.equal(parseDatasetPolicy({ app: many(8, 1), requester: many(8, 2) }).requesters.length, 8)
  })

  it('tags must have a bit on chain; volumes are whole numbers of uses from 1', () => {
    assert.deepEqual(parseOrderTags(['gpu', 'region:eu', 'gpu']), ['gpu', 'region:eu'])
    usage(() => parseOrderTags(['region:mars']), 'CLI_BAD_OPTION')
    usage(() => parseOrderTags(['has space']), 'CLI_BAD_OPTION')
    assert.equal(parseOrderVolume(undefined), undefined)
    assert.equal(parseOrderVolume('1'), 1n)
    for (const bad of ['0', '-1', '1.5', 'many', '10000000000000']) usage(() => parseOrderVolume(bad), 'CLI_BAD_OPTION')
  })

  it('a price is required, and 0 only with --free', () => {
    assert.equal(parseDatasetPriceChoice({ price: '1.5RLC' }), 1_500_000_000n)
    assert.equal(parseDatasetPriceChoice({ free: true }), 0n)
    assert.equal(parseDatasetPriceChoice({ free: true, price: '0' }), 0n)
    usage(() => parseDatasetPriceChoice({}), 'CLI_MISSING_ARGUMENT')
    usage(() => parseDatasetPriceChoice({ price: '0' }), 'CLI_BAD_OPTION')
    usage(() => parseDatasetPriceChoice({ price: '0RLC' }), 'CLI_BAD_OPTION')
    usage(() => parseDatasetPriceChoice({ free: true, price: '5' }), 'CLI_BAD_OPTION')
    usage(() => parseDatasetPriceChoice({ price: '-1' }), 'CLI_BAD_OPTION')
  })

  it('app publish: --dataset, --requester, --tag the same way', () => {
    assert.deepEqual(parseAppPolicy({ dataset: [A, A], requester: [B], tag: ['gpu'] }), { datasets: [A], requesters: [B], tags: ['gpu'] })
    assert.deepEqual(parseAppPolicy({}), { datasets: [], requesters: [], tags: [] })
    usage(() => parseAppPolicy({ dataset: ['0x12'] }), 'CLI_BAD_OPTION')
    usage(() => parseAppPolicy({ requester: ['nope'] }), 'CLI_BAD_OPTION')
    usage(() => parseAppPolicy({ tag: ['fast'] }), 'CLI_BAD_OPTION')
  })
})

describe('cli: order show and orderbook --tag check their input before any call', () => {
  it('a malformed order hash or an unknown tag is a usage error', async () => {
    const io = { out: () => {}, err: () => {} }
    // no node runs at this API: a call would fail with another code
    const opts = { api: 'http://127.0.0.1:1', token: 'x' }
    await assert.rejects(orderShowCommand(io as never, '0x12', opts as never), (e: unknown) => isIexecError(e, 'CLI_BAD_OPTION') && describeError(e).exitCode === 2)
    const ds = '0x' + '33'.repeat(20)
    for (const [verb, address, flags, code] of [
      ['allow', '0x12', { app: ['wordcount'] }, 'CLI_BAD_OPTION'],
      ['allow', ds, {}, 'DATASET_APPS_REQUIRED'],
      ['allow', ds, { app: ['x'], anyApp: true }, 'CLI_BAD_OPTION'],
      ['allow', ds, { anyApp: true, volume: '0' }, 'CLI_BAD_OPTION'],
      ['deny', ds, {}, 'CLI_MISSING_ARGUMENT'],
      ['deny', ds, { anyApp: true }, 'CLI_BAD_OPTION'],
      ['deny', ds, { app: ['wordcount'] }, 'CLI_BAD_OPTION']
    ] as Array<['allow' | 'deny', string, Record<string, unknown>, string]>) {
      await assert.rejects(datasetPolicyCommand(io as never, verb, address, { ...opts, ...flags } as never), (e: unknown) => isIexecError(e, code) && describeError(e).exitCode === 2, `${verb} ${JSON.stringify(flags)}`)
    }
    await assert.rejects(orderbookCommand(io as never, 'app', { ...opts, tag: ['region:mars'] } as never), (e: unknown) => isIexecError(e, 'CLI_BAD_OPTION') && describeError(e).exitCode === 2)
  })
})
