import assert from 'node:assert/strict'
import { Signature, TypedDataEncoder, Wallet, recoverAddress, verifyTypedData } from 'ethers'
import type { TypedDataDomain, TypedDataField } from 'ethers'
import { hubDomain } from '../../../protocols/hub-types.js'
import type { RequestOrder } from '../../../protocols/hub-types.js'
import { hashTypedData, recoverOrderSigner, recoverTypedDataSigner, signOrder, signTypedData, toEthersDomain } from '../../../protocols/typed-data.js'
import { hashOrder } from '../../../protocols/ids.js'
import { MarketWireError, hashCancel, recoverCancelSigner, signCancel } from '../../../protocols/market.js'
import { KEY_REQUEST_TYPES, hashKeyRequest, recoverKeyRequestSigner, signKeyRequest } from '../../../protocols/key-release.js'
import type { KeyRequestFields } from '../../../protocols/key-release.js'
import { FailureReportError, signFailureReport, verifyFailureReport } from '../../../protocols/failure-report.js'
import { ProtocolError, isProtocolError } from '../../../protocols/errors.js'
import { IexecError, isIexecError } from '../../../node/common/errors.js'

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
const wallet = new Wallet('0x' + '61'.repeat(32))
const domain = hubDomain(31337, '0x5FbDB2315678afecb367f032d93F642f64180aa3')
const ZERO = '0x0000000000000000000000000000000000000000'
const Z32 = '0x' + '00'.repeat(32)

/** The malleable twin of a signature: (r, n - s, the other v), which ethers recovers to the same address and the hub refuses. */
function highS (sign: string): string {
  const sig = Signature.from(sign)
  const s = N - BigInt(sig.s)
  return sig.r + s.toString(16).padStart(64, '0') + (sig.v === 27 ? '1c' : '1b')
}

/** Malformed forms of a good signature: the hub refuses them all, ethers takes some (see the first test). */
function malformed (sign: string): Record<string, string> {
  return {
    'high s': highS(sign),
    'v as 0 or 1': sign.slice(0, -2) + (parseInt(sign.slice(-2), 16) - 27).toString(16).padStart(2, '0'),
    '64-byte compact form': Signature.from(sign).compactSerialized,
    'too short': sign.slice(0, -4)
  }
}

const request: RequestOrder = {
  app: '0x' + '11'.repeat(20), appmaxprice: 5n, dataset: ZERO, datasetmaxprice: 0n, workerpool: ZERO, workerpoolmaxprice: 10n,
  requester: wallet.address, volume: 1n, tag: Z32, category: 0n, trust: 1n, beneficiary: wallet.address, callback: ZERO, params: '', salt: '0x' + '07'.repeat(32)
}

const keyFields: KeyRequestFields = { dataset: '0x' + '22'.repeat(20), taskid: '0x' + 'ab'.repeat(32), worker: wallet.address, nonce: '0x' + 'cd'.repeat(32), timestamp: 1_800_000_000 }

const strictCode = (err: unknown): boolean => isProtocolError(err, 'EIP712_INVALID_SIGNATURE')

describe('protocols: one strict signature recovery for every signed type', function () {
  it('some malformed forms are ones ethers takes (so refusing them is the strict policy at work)', async () => {
    const sign = await signCancel(wallet, domain, '0x' + '12'.repeat(32))
    const digest = hashCancel(domain, '0x' + '12'.repeat(32))
    const forms = malformed(sign)
    assert.equal(recoverAddress(digest, forms['v as 0 or 1']), wallet.address)
    assert.equal(recoverAddress(digest, forms['64-byte compact form']), wallet.address)
  })

  it('an order refuses every malformed form with EIP712_INVALID_SIGNATURE', async () => {
    const signed = await signOrder(wallet, domain, 'RequestOrder', request)
    assert.equal(recoverOrderSigner(domain, 'RequestOrder', request, signed.sign), wallet.address)
    for (const [what, bad] of Object.entries(malformed(signed.sign))) {
      assert.throws(() => recoverOrderSigner(domain, 'RequestOrder', request, bad), strictCode, what)
    }
  })

  it('a cancel refuses them as an order does: WIRE_INVALID caused by EIP712_INVALID_SIGNATURE', async () => {
    const h = hashOrder(domain, 'RequestOrder', request)
    const sign = await signCancel(wallet, domain, h)
    assert.equal(recoverCancelSigner(domain, h, sign), wallet.address)
    for (const [what, bad] of Object.entries(malformed(sign))) {
      assert.throws(() => recoverCancelSigner(domain, h, bad), (err: unknown) => {
        assert.ok(err instanceof MarketWireError && err.code === 'WIRE_INVALID', `${what}: ${String(err)}`)
        assert.ok(strictCode((err as Error).cause), `${what}: caused by ${String((err as Error).cause)}`)
        return true
      }, what)
    }
  })

  it('a key request refuses them as an order does (no signer: BAD_SIGNATURE at the owner)', async () => {
    const sign = await signKeyRequest(wallet, domain, keyFields)
    assert.equal(recoverKeyRequestSigner(domain, keyFields, sign), wallet.address)
    for (const [what, bad] of Object.entries(malformed(sign))) {
      assert.equal(recoverKeyRequestSigner(domain, keyFields, bad), undefined, what)
      assert.throws(() => recoverTypedDataSigner(domain, KEY_REQUEST_TYPES, { ...keyFields, timestamp: BigInt(keyFields.timestamp) }, bad), strictCode, what)
    }
  })

  it('a failure report refuses them with FAILURE_REPORT_BAD_SIGNATURE', async () => {
    const report = await signFailureReport(wallet, domain, { taskid: keyFields.taskid, worker: wallet.address, code: 'APP_ERROR', exitCode: 1, stderr: '', stderrEncrypted: false, stderrBytes: 0, at: 1_800_000_000 })
    const expected = { taskid: keyFields.taskid, workers: [wallet.address] }
    assert.deepEqual(verifyFailureReport(domain, report, expected), report)
    for (const [what, bad] of Object.entries(malformed(report.signature))) {
      assert.throws(() => verifyFailureReport(domain, { ...report, signature: bad }, expected), (err: unknown) => err instanceof FailureReportError && err.code === 'FAILURE_REPORT_BAD_SIGNATURE', what)
    }
  })
})

describe('protocols: typed-data helpers', function () {
  const types: Record<string, TypedDataField[]> = { Thing: [{ name: 'who', type: 'address' }, { name: 'n', type: 'uint256' }, { name: 's', type: 'string' }] }
  const value = { who: wallet.address, n: 42n, s: 'hello' }

  it('toEthersDomain is the hub domain as ethers takes it', () => {
    const d: TypedDataDomain = toEthersDomain(domain)
    assert.deepEqual(d, { name: domain.name, version: domain.version, chainId: domain.chainId, verifyingContract: domain.verifyingContract })
    assert.equal(hashTypedData(domain, types, value), TypedDataEncoder.hash(d, types, value))
    assert.equal(hashKeyRequest(domain, keyFields), TypedDataEncoder.hash(d, KEY_REQUEST_TYPES, { ...keyFields, timestamp: BigInt(keyFields.timestamp) }))
  })

  it('signTypedData makes the signature ethers makes, and recoverTypedDataSigner agrees with ethers on it', async () => {
    const ours = await signTypedData(wallet, domain, types, value)
    assert.equal(ours, await wallet.signTypedData(toEthersDomain(domain), types, value))
    assert.equal(recoverTypedDataSigner(domain, types, value, ours), verifyTypedData(toEthersDomain(domain), types, value, ours))
    assert.notEqual(recoverTypedDataSigner(domain, types, { ...value, n: 43n }, ours), wallet.address)
  })

  it('signTypedData hands a signer without a local key the typed data', async () => {
    const calls: string[] = []
    const remote = { signTypedData: async (d: TypedDataDomain, t: Record<string, TypedDataField[]>, v: Record<string, unknown>) => { calls.push(Object.keys(t)[0]); return await wallet.signTypedData(d, t, v) } }
    const sign = await signTypedData(remote, domain, types, value)
    assert.deepEqual(calls, ['Thing'])
    assert.equal(recoverTypedDataSigner(domain, types, value, sign), wallet.address)
  })
})

describe('protocols: errors', function () {
  it('the node\'s typed-error check recognises protocol errors, and node errors are protocol errors', () => {
    const wire = new MarketWireError('WIRE_INVALID', 'x')
    assert.ok(wire instanceof ProtocolError)
    assert.ok(isIexecError(wire, 'WIRE_INVALID'))
    assert.equal(isIexecError(wire, 'OTHER'), false)
    const node = new IexecError('SOME_CODE', 'y', { a: 1 })
    assert.ok(node instanceof ProtocolError)
    assert.ok(isProtocolError(node, 'SOME_CODE'))
    assert.deepEqual(node.details, { a: 1 })
    assert.equal(isIexecError(new Error('plain')), false)
  })
})
