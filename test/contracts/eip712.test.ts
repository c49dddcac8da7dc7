// protocols/eip712.ts on its own: signing and recovery round trips, typed
// errors on bad input. (Agreement with the hub's hashes is checked on chain in hub-flow.test.ts.)
import assert from 'node:assert/strict'
import { Wallet, keccak256, solidityPacked } from 'ethers'
import { isIexecError } from '../../node/common/errors.js'
import {
  hubDomain, hashOrder, signOrder, recoverOrderSigner, signAuthorization, recoverAuthorizationSigner, hashAuthorization,
  resultHash, resultSeal, taskId, dealId, typeString, emptyDatasetOrder, ZERO_ADDRESS, ZERO_BYTES32, type RequestOrder, type Bid
} from '../../protocols/eip712.js'

const wallet = new Wallet('0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d')
const other = new Wallet('0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a')
const domain = hubDomain(31337, '0x5FbDB2315678afecb367f032d93F642f64180aa3')

const request: RequestOrder = {
  app: '0x' + '01'.repeat(20),
  appmaxprice: 5n,
  dataset: ZERO_ADDRESS,
  datasetmaxprice: 0n,
  workerpool: ZERO_ADDRESS,
  workerpoolmaxprice: 10n,
  requester: wallet.address,
  volume: 3n,
  tag: ZERO_BYTES32,
  category: 0n,
  trust: 1n,
  beneficiary: wallet.address,
  callback: ZERO_ADDRESS,
  params: '{"args":"x"}',
  salt: '0x' + '07'.repeat(32)
}

describe('protocols/eip712', () => {
  it('signs and recovers every kind; the hash ignores the sign field', async () => {
    const signed = await signOrder(wallet, domain, 'RequestOrder', request)
    assert.equal(recoverOrderSigner(domain, 'RequestOrder', request, signed.sign), wallet.address)
    assert.equal(hashOrder(domain, 'RequestOrder', signed), hashOrder(domain, 'RequestOrder', request))
    const bid: Bid = { requestHash: hashOrder(domain, 'RequestOrder', request), worker: other.address, price: 4n, volume: 1n, salt: ZERO_BYTES32 }
    const sb = await signOrder(other, domain, 'Bid', bid)
    assert.equal(recoverOrderSigner(domain, 'Bid', bid, sb.sign), other.address)
    // another chain or hub gives another hash
    assert.notEqual(hashOrder(hubDomain(1, domain.verifyingContract), 'RequestOrder', request), hashOrder(domain, 'RequestOrder', request))
    assert.notEqual(recoverOrderSigner(hubDomain(1, domain.verifyingContract), 'RequestOrder', request, signed.sign), wallet.address)
  })

  it('the scheduler authorization round-trips and binds worker and task', async () => {
    const taskid = taskId('0x' + 'aa'.repeat(32), 0)
    const sign = await signAuthorization(wallet, domain, { worker: other.address, taskid })
    assert.equal(recoverAuthorizationSigner(domain, { worker: other.address, taskid }, sign), wallet.address)
    assert.notEqual(recoverAuthorizationSigner(domain, { worker: wallet.address, taskid }, sign), wallet.address)
    assert.notEqual(hashAuthorization(domain, { worker: other.address, taskid }), hashAuthorization(domain, { worker: other.address, taskid: taskId('0x' + 'aa'.repeat(32), 1) }))
  })

  it('commit values and ids are keccak of the packed fields', () => {
    const taskid = taskId('0x' + 'aa'.repeat(32), 2)
    assert.equal(taskid, keccak256(solidityPacked(['bytes32', 'uint256'], ['0x' + 'aa'.repeat(32), 2n])))
    const digest = '0x' + 'cd'.repeat(32)
    assert.equal(resultHash(taskid, digest), keccak256(solidityPacked(['bytes32', 'bytes32'], [taskid, digest])))
    assert.equal(resultSeal(other.address, taskid, digest), keccak256(solidityPacked(['address', 'bytes32', 'bytes32'], [other.address, taskid, digest])))
    assert.notEqual(resultSeal(wallet.address, taskid, digest), resultSeal(other.address, taskid, digest))
    assert.equal(dealId('0x' + 'bb'.repeat(32), 0n), keccak256(solidityPacked(['bytes32', 'uint256'], ['0x' + 'bb'.repeat(32), 0n])))
    assert.equal(typeString('Bid'), 'Bid(bytes32 requestHash,address worker,uint256 price,uint256 volume,bytes32 salt)')
    assert.equal(emptyDatasetOrder().sign, '0x')
  })

  it('bad input gets typed errors', async () => {
    const code = (c: string) => (err: unknown): boolean => isIexecError(err, c)
    assert.throws(() => hashOrder(domain, 'RequestOrder', { ...request, volume: 3 as unknown as bigint }), code('EIP712_INVALID_ORDER'))
    assert.throws(() => hashOrder(domain, 'RequestOrder', { ...request, app: '0x1234' }), code('EIP712_INVALID_ORDER'))
    assert.throws(() => hashOrder(domain, 'RequestOrder', { ...request, salt: '0x12' }), code('EIP712_INVALID_ORDER'))
    assert.throws(() => hashOrder(domain, 'RequestOrder', { ...request, appmaxprice: -1n }), code('EIP712_INVALID_ORDER'))
    await assert.rejects(signOrder(wallet, domain, 'RequestOrder', { ...request, params: undefined as unknown as string }), code('EIP712_INVALID_ORDER'))
    assert.throws(() => recoverOrderSigner(domain, 'RequestOrder', request, '0x1234'), code('EIP712_INVALID_SIGNATURE'))
    assert.throws(() => hubDomain(31337, 'nope'), code('EIP712_INVALID_DOMAIN'))
    assert.throws(() => hubDomain(0, domain.verifyingContract), code('EIP712_INVALID_DOMAIN'))
    assert.throws(() => resultHash('0x12', '0x' + 'cd'.repeat(32)), code('EIP712_INVALID_ORDER'))
  })
})
