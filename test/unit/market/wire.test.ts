import assert from 'node:assert/strict'
import { Wallet } from 'ethers'
import { ZERO_BYTES32, signOrder } from '../../../protocols/eip712.js'
import {
  MARKET_WIRE_VERSION, MAX_MESSAGE_BYTES, MarketWireError, TAG_BITS, bidStreamProtocol, decodeBidStreamAck, decodeBidStreamMessage, decodeMarketMessage,
  decodeSyncFrame, decodeSyncRequest, decodeTags, encodeBidStreamAck, encodeBidStreamMessage, encodeMarketMessage, encodeSyncFrame, encodeSyncRequest,
  encodeTags, expiryOfSalt, marketSyncProtocol, orderMessage, parseRequestParams, recoverCancelSigner, saltWithExpiry, signCancel
} from '../../../protocols/market.js'
import type { BidDecline, MarketWireErrorCode, SyncRequest } from '../../../protocols/market.js'
import { appOrder, appOwner, bid, domain, requestOrder, requester, worker } from './fixture.js'
import { requesterResultKey } from '../../../node/scheduler/service.js'
import type { DealInfo } from '../../../node/chain/deal.js'

function wireError (code: MarketWireErrorCode): (err: unknown) => boolean {
  return (err: unknown) => err instanceof MarketWireError && err.code === code
}

const enc = new TextEncoder()

describe('market: wire formats', function () {
  it('round-trips every order message, bigints as canonical decimal strings', async () => {
    const a = appOrder({ appprice: (1n << 200n) + 7n })
    const s = await signOrder(appOwner, domain, 'AppOrder', a)
    const bytes = encodeMarketMessage(orderMessage('apporder', domain, a, s.sign))
    const text = new TextDecoder().decode(bytes)
    assert.match(text, new RegExp(`"appprice":"${((1n << 200n) + 7n).toString()}"`))
    assert.match(text, /"v":1/)
    assert.ok(bytes.length < MAX_MESSAGE_BYTES.apporder)
    const back = decodeMarketMessage(bytes, 'apporder')
    assert.deepEqual(back.order, { ...a, app: a.app, salt: a.salt.toLowerCase() })
    assert.equal(back.chainId, domain.chainId)
    const r = requestOrder()
    const rs = await signOrder(requester, domain, 'RequestOrder', r)
    assert.deepEqual(decodeMarketMessage(encodeMarketMessage(orderMessage('requestorder', domain, r, rs.sign)), 'requestorder').order, r)
    const b = bid('0x' + 'ab'.repeat(32))
    const bs = await signOrder(worker, domain, 'Bid', b)
    const bidBytes = encodeMarketMessage(orderMessage('bid', domain, b, bs.sign))
    assert.ok(bidBytes.length <= MAX_MESSAGE_BYTES.bid, `a bid is ${bidBytes.length} bytes`)
  })

  it('refuses to encode what a peer would refuse', () => {
    assert.throws(() => encodeMarketMessage(orderMessage('requestorder', domain, requestOrder({ params: 'x'.repeat(5000) }), '0x')), wireError('WIRE_INVALID'))
    assert.throws(() => encodeMarketMessage(orderMessage('apporder', domain, { ...appOrder(), volume: 3 as unknown as bigint }, '0x')), wireError('WIRE_INVALID'))
    assert.throws(() => encodeMarketMessage(orderMessage('apporder', domain, appOrder(), '0x1234')), wireError('WIRE_INVALID'))
  })

  it('signs and recovers cancels under the hub domain', async () => {
    const h = '0x' + '12'.repeat(32)
    const sig = await signCancel(requester, domain, h)
    assert.equal(recoverCancelSigner(domain, h, sig), requester.address)
    assert.notEqual(recoverCancelSigner(domain, '0x' + '13'.repeat(32), sig), requester.address)
    assert.throws(() => recoverCancelSigner(domain, h, '0x1234'), wireError('WIRE_INVALID'))
    const msg = decodeMarketMessage(encodeMarketMessage({ v: 1, type: 'cancel', chainId: domain.chainId, hub: domain.verifyingContract, proof: { kind: 'onchain', orderHash: h } }), 'cancel')
    assert.deepEqual(msg.proof, { kind: 'onchain', orderHash: h })
  })

  it('carries the expiry in the first 8 bytes of the salt', () => {
    const s = saltWithExpiry(1_800_000_000)
    assert.match(s, /^0x000000006b49d200[0-9a-f]{48}$/)
    assert.equal(expiryOfSalt(s), 1_800_000_000n)
    assert.equal(expiryOfSalt(saltWithExpiry(0)), undefined)
    assert.equal(expiryOfSalt(ZERO_BYTES32), undefined)
    assert.notEqual(saltWithExpiry(5), saltWithExpiry(5), 'the rest is random')
    assert.throws(() => saltWithExpiry(-1), wireError('WIRE_INVALID'))
    assert.throws(() => saltWithExpiry(1n << 64n), wireError('WIRE_INVALID'))
  })

  it('maps named tags to bits and back, refusing unknown names', () => {
    const t = encodeTags(['region:eu', 'energy:green', 'tee'])
    assert.equal(BigInt(t), (1n << 16n) | (1n << 24n) | 1n)
    assert.deepEqual(decodeTags(t).names.sort(), ['energy:green', 'region:eu', 'tee'])
    assert.equal(decodeTags(t).unknownBits, 0n)
    assert.equal(decodeTags('0x' + '00'.repeat(31) + '06').unknownBits, 6n)
    assert.throws(() => encodeTags(['region:mars']), wireError('WIRE_INVALID'))
    assert.equal(new Set(Object.values(TAG_BITS)).size, Object.keys(TAG_BITS).length, 'one bit per name')
  })

  it('parses request params, keeping unknown iExec keys out', () => {
    assert.deepEqual(parseRequestParams(''), {})
    assert.deepEqual(parseRequestParams('{"iexec_args":"a b","iexec_input_files":["bafy"],"iexec_p2p_tags":["ssd"],"iexec_developer_logger":true}'),
      { iexec_args: 'a b', iexec_input_files: ['bafy'], iexec_p2p_tags: ['ssd'] })
    assert.throws(() => parseRequestParams('{'), wireError('WIRE_INVALID'))
    assert.throws(() => parseRequestParams('{"iexec_args":1}'), wireError('WIRE_INVALID'))
    assert.throws(() => parseRequestParams('{"iexec_p2p_tags":[""]}'), wireError('WIRE_INVALID'))
    const key = '0x02' + 'ab'.repeat(32)
    assert.deepEqual(parseRequestParams(`{"iexec_result_encryption":true,"iexec_p2p_result_key":"${key}"}`), { iexec_result_encryption: true, iexec_p2p_result_key: key })
    // an uncompressed or short key is refused: workers would encrypt to garbage
    assert.throws(() => parseRequestParams(`{"iexec_p2p_result_key":"0x04${'ab'.repeat(64)}"}`), wireError('WIRE_INVALID'))
    assert.throws(() => parseRequestParams('{"iexec_p2p_result_key":"0x02ab"}'), wireError('WIRE_INVALID'))
  })

  it('the scheduler takes the result key from the params only when it is the requester\'s own', async () => {
    const me = Wallet.createRandom()
    const other = Wallet.createRandom()
    const deal = (key: string, requester = me.address): DealInfo => ({
      dealid: '0x' + '01'.repeat(32), requestHash: '0x' + '02'.repeat(32), scheduler: other.address, requester, app: other.address,
      dataset: '0x' + '00'.repeat(20), workers: [], volume: 1, trust: 1, category: 0, workerPrice: '0', startTime: 0, contributionDeadline: 0, finalDeadline: 0,
      params: JSON.stringify({ iexec_result_encryption: true, iexec_p2p_result_key: key })
    })
    assert.equal(await requesterResultKey(deal(me.signingKey.compressedPublicKey)), me.signingKey.compressedPublicKey)
    // someone else's key planted in the params: no key, so nothing is assigned in clear or to the wrong reader
    assert.equal(await requesterResultKey(deal(other.signingKey.compressedPublicKey)), undefined)
    assert.equal(await requesterResultKey({ ...deal(me.signingKey.compressedPublicKey), params: '{"iexec_result_encryption":true}' }), undefined)
    assert.equal(await requesterResultKey({ ...deal(me.signingKey.compressedPublicKey), params: '{' }), undefined)
  })

  it('defines the sync protocol: request, order frames and the end frame with a cursor', () => {
    assert.equal(marketSyncProtocol('s1'), '/iexec-p2p/s1/market/sync/1.0.0')
    const req: SyncRequest = { v: MARKET_WIRE_VERSION, types: ['apporder' as const, 'requestorder' as const], limit: 100, cursor: 'apporder:0xab' }
    assert.deepEqual(decodeSyncRequest(encodeSyncRequest(req)), req)
    assert.throws(() => decodeSyncRequest(enc.encode('{"v":1,"types":["bid"],"limit":1}')), wireError('WIRE_INVALID'))
    assert.throws(() => decodeSyncRequest(enc.encode('{"v":1,"types":["apporder"],"limit":100000}')), wireError('WIRE_INVALID'))
    assert.throws(() => decodeSyncRequest(new Uint8Array(2000)), wireError('WIRE_TOO_LARGE'))
    const order = enc.encode('{"x":1}')
    const f = decodeSyncFrame(encodeSyncFrame({ kind: 'order', message: order }))
    assert.equal(f.kind, 'order')
    assert.deepEqual(f.kind === 'order' ? [...f.message] : [], [...order])
    assert.deepEqual(decodeSyncFrame(encodeSyncFrame({ kind: 'end', cursor: 'c' })), { kind: 'end', cursor: 'c' })
    assert.deepEqual(decodeSyncFrame(encodeSyncFrame({ kind: 'end' })), { kind: 'end' })
    assert.throws(() => decodeSyncFrame(new Uint8Array([9, 1])), wireError('WIRE_MALFORMED'))
    assert.throws(() => decodeSyncFrame(new Uint8Array(0)), wireError('WIRE_MALFORMED'))
  })

  it('defines the bid stream: a bid or a decline with its code, and an ack', async () => {
    assert.equal(bidStreamProtocol('s1'), '/iexec-p2p/s1/market/bid/1.0.0')
    const b = bid('0x' + 'ab'.repeat(32))
    const s = await signOrder(worker, domain, 'Bid', b)
    const m = decodeBidStreamMessage(encodeBidStreamMessage(orderMessage('bid', domain, b, s.sign)))
    assert.equal(m.type, 'bid')
    const decline: BidDecline = { v: MARKET_WIRE_VERSION, type: 'decline', requestHash: '0x' + 'ab'.repeat(32), worker: worker.address, code: 'PRICE_TOO_LOW', reason: 'price too low' }
    assert.deepEqual(decodeBidStreamMessage(encodeBidStreamMessage(decline)), decline)
    assert.throws(() => decodeBidStreamMessage(enc.encode(JSON.stringify({ ...decline, code: 'WHATEVER' }))), wireError('WIRE_INVALID'))
    assert.throws(() => decodeBidStreamMessage(enc.encode(JSON.stringify({ ...decline, type: 'apporder' }))), wireError('WIRE_WRONG_TYPE'))
    assert.deepEqual(decodeBidStreamAck(encodeBidStreamAck({ v: 1, ok: false, code: 'GOSSIP_BID_UNKNOWN_REQUEST' })), { v: 1, ok: false, code: 'GOSSIP_BID_UNKNOWN_REQUEST' })
    assert.throws(() => decodeBidStreamAck(enc.encode('{"v":1}')), wireError('WIRE_INVALID'))
  })

  it('refuses bytes that are not a message with typed codes', () => {
    assert.throws(() => decodeMarketMessage(new Uint8Array([0xc3, 0x28])), wireError('WIRE_MALFORMED'))
    assert.throws(() => decodeMarketMessage(enc.encode('"str"')), wireError('WIRE_MALFORMED'))
    assert.throws(() => decodeMarketMessage(enc.encode('{"v":1,"type":"nope"}')), wireError('WIRE_INVALID'))
    assert.throws(() => decodeMarketMessage(enc.encode('{"v":2,"type":"bid"}')), wireError('WIRE_BAD_VERSION'))
    assert.throws(() => decodeMarketMessage(new Uint8Array(MAX_MESSAGE_BYTES.bid + 1), 'bid'), wireError('WIRE_TOO_LARGE'))
  })
})
