/**
 * Every decoder of the market and network protocols against hostile bytes
 * (test/helpers/fuzz.ts: random bytes, random JSON, mutated valid messages;
 * 10,000+ cases each, fixed seed): gossip order and cancel messages, the
 * orderbook sync request and frames, the bid stream's messages and acks,
 * key-release requests and answers, resource records (DHT adverts). Each
 * answers a decoded value that encodes back to what it decodes to, or a
 * coded error; never a crash.
 */
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Wallet, hexlify, randomBytes } from 'ethers'
import { isIexecError } from '../../../node/common/errors.js'
import { hashOrder } from '../../../protocols/eip712.js'
import {
  decodeBidStreamAck, decodeBidStreamMessage, decodeMarketMessage, decodeSyncFrame, decodeSyncRequest, encodeBidStreamAck, encodeBidStreamMessage,
  encodeMarketMessage, encodeSyncFrame, MarketWireError, parseRequestParams, encodeSyncRequest, MAX_MESSAGE_BYTES, SYNC_REQUEST_MAX_BYTES, signCancel
} from '../../../protocols/market.js'
import type { MarketMessage } from '../../../protocols/market.js'
import {
  decodeKeyReleaseRequest, decodeKeyReleaseResponse, encodeKeyReleaseRequest, encodeKeyReleaseResponse, KEY_RELEASE_MAX_MESSAGE_BYTES
} from '../../../protocols/key-release.js'
import {
  decodeResourceRecordUnverified, RESOURCE_RECORD_MAX_BYTES, signResourceRecord, verifyResourceRecord
} from '../../../protocols/resource-record.js'
import { resourceDhtRules } from '../../../node/network/index.js'
import { resourceKey } from '../../../protocols/topics.js'
import { splitArgs } from '../../../protocols/args.js'
import { fuzzDecoder } from '../../helpers/fuzz.js'
import {
  APP, CHAIN_ID, HUB, appOrder, appOwner, bid, datasetOrder, domain, requestOrder, signedAppOrderBytes, signedBidBytes, signedDatasetOrderBytes, signedRequestBytes
} from '../market/fixture.js'

const enc = new TextEncoder()
const MARKET_CODES = new Set(['WIRE_TOO_LARGE', 'WIRE_MALFORMED', 'WIRE_BAD_VERSION', 'WIRE_WRONG_TYPE', 'WIRE_INVALID'])
const iexecCode = (err: unknown): string | undefined => isIexecError(err) ? err.code : undefined
const RUNS = { random: 3_400, json: 3_300, mutated: 3_300 }
const ORDER_KEYS = ['v', 'type', 'chainId', 'hub', 'order', 'sign', 'proof', 'kind', 'orderKind', 'cancelSign', 'orderHash', 'app', 'dataset', 'requester',
  'worker', 'requestHash', 'volume', 'salt', 'tag', 'params', 'trust', 'category', 'price', 'appprice', 'code', 'reason']
const hex = (n: number): string => hexlify(randomBytes(n))

/** fast-check wraps the property's failure: match the assertion it caught. */
const causedBy = (re: RegExp) => (err: unknown): boolean => re.test(String((err as { cause?: { message?: string } }).cause?.message ?? ''))

/** The same message again: what a decoder accepts, its encoder gives back (and that decodes equal). */
function roundTrips<T> (encode: (v: T) => Uint8Array, decode: (b: Uint8Array) => T) {
  return (v: T): void => { assert.deepEqual(decode(encode(v)), v) }
}

describe('protocols: wire decoder fuzzing (fast-check, fixed seed)', function () {
  this.timeout(180_000)

  it('the harness fails on an uncoded error and on a code the decoder does not own', async () => {
    const crashy = (b: Uint8Array): unknown => { const v = JSON.parse(new TextDecoder().decode(b)) as { a: { x: number } }; return v.a.x.toFixed() }
    await assert.rejects(fuzzDecoder({ decode: crashy, codes: new Set(['X']), codeOf: iexecCode, valid: [enc.encode('{"a":{"x":1}}')] }, { random: 50, json: 50, mutated: 50 }), causedBy(/a coded refusal, got (SyntaxError|TypeError)/))
    const wrongCode = (): never => { throw new MarketWireError('WIRE_INVALID', 'no') }
    await assert.rejects(fuzzDecoder({ decode: wrongCode, codes: new Set(['WIRE_MALFORMED']), codeOf: iexecCode, valid: [] }, { random: 10, json: 0, mutated: 0 }), causedBy(/a known code, got WIRE_INVALID/))
  })

  it('gossip order and cancel messages (10,000 cases)', async () => {
    const r = requestOrder()
    const rh = hashOrder(domain, 'RequestOrder', r)
    const ao = appOrder()
    const cancel: MarketMessage = {
      v: 1, type: 'cancel', chainId: CHAIN_ID, hub: HUB,
      proof: { kind: 'signed', orderKind: 'AppOrder', order: ao, cancelSign: await signCancel(appOwner, domain, hashOrder(domain, 'AppOrder', ao)) }
    }
    const valid = [
      await signedAppOrderBytes(ao), await signedDatasetOrderBytes(datasetOrder()), await signedRequestBytes(r), await signedBidBytes(bid(rh)),
      encodeMarketMessage(cancel), encodeMarketMessage({ v: 1, type: 'cancel', chainId: CHAIN_ID, hub: HUB, proof: { kind: 'onchain', orderHash: rh } })
    ]
    const s = await fuzzDecoder({
      decode: (b) => decodeMarketMessage(b),
      codes: MARKET_CODES,
      codeOf: iexecCode,
      valid,
      keys: ORDER_KEYS,
      maxBytes: MAX_MESSAGE_BYTES.cancel,
      accepted: (m) => {
        roundTrips(encodeMarketMessage, (b) => decodeMarketMessage(b))(m)
        // a topic carries one type: the same bytes under another are refused
        const other = m.type === 'bid' ? 'apporder' : 'bid'
        assert.throws(() => decodeMarketMessage(encodeMarketMessage(m), other), (e) => iexecCode(e) === 'WIRE_WRONG_TYPE' || iexecCode(e) === 'WIRE_TOO_LARGE')
      }
    }, RUNS)
    assert.ok(s.accepted > 0 && s.refused > 9_000, `accepted ${s.accepted}, refused ${s.refused}`)
  })

  it('request params, the free text inside a signed request (10,000 cases)', async () => {
    const params = ['{"iexec_args":"a \'b c\' \\"d\\"","iexec_input_files":["https://x/y"],"iexec_result_encryption":true,"iexec_p2p_result_key":"0x02' + 'ab'.repeat(32) + '","iexec_p2p_tags":["gpu"]}', '{"iexec_args":"1000"}']
    const s = await fuzzDecoder({
      decode: (b) => parseRequestParams(new TextDecoder().decode(b)),
      codes: MARKET_CODES,
      codeOf: iexecCode,
      valid: params.map((p) => enc.encode(p)),
      keys: ['iexec_args', 'iexec_input_files', 'iexec_result_encryption', 'iexec_p2p_result_key', 'iexec_p2p_tags', 'iexec_developer_logger'],
      maxBytes: 4096,
      accepted: (p) => {
        // what a worker does with them: split the args the same way every time
        if (p.iexec_args !== undefined) assert.deepEqual(splitArgs(p.iexec_args), splitArgs(p.iexec_args))
        assert.deepEqual(parseRequestParams(JSON.stringify(p)), p)
      }
    }, RUNS)
    assert.ok(s.accepted > 0 && s.refused > 5_000, `accepted ${s.accepted}, refused ${s.refused}`)
  })

  it('orderbook sync: requests and frames (10,000 cases each)', async () => {
    const req = await fuzzDecoder({
      decode: decodeSyncRequest,
      codes: MARKET_CODES,
      codeOf: iexecCode,
      valid: [encodeSyncRequest({ v: 1, types: ['apporder', 'requestorder'], limit: 100, cursor: 'abc:0x01' }), encodeSyncRequest({ v: 1, types: ['datasetorder'], limit: 1 })],
      keys: ['v', 'types', 'cursor', 'limit'],
      maxBytes: SYNC_REQUEST_MAX_BYTES,
      accepted: roundTrips(encodeSyncRequest, decodeSyncRequest)
    }, RUNS)
    assert.ok(req.accepted > 0 && req.refused > 9_000)
    const order = await signedAppOrderBytes()
    const frames = await fuzzDecoder({
      decode: decodeSyncFrame,
      codes: MARKET_CODES,
      codeOf: iexecCode,
      valid: [encodeSyncFrame({ kind: 'order', message: order }), encodeSyncFrame({ kind: 'end', cursor: 'next:42' }), encodeSyncFrame({ kind: 'end' })],
      keys: ['cursor'],
      maxBytes: MAX_MESSAGE_BYTES.cancel + 1,
      accepted: (f) => {
        assert.deepEqual(decodeSyncFrame(encodeSyncFrame(f)), f)
        // an order frame's payload goes on to the gossip decoder, which must answer it too
        if (f.kind === 'order') {
          try {
            decodeMarketMessage(f.message)
          } catch (err) {
            assert.ok(MARKET_CODES.has(iexecCode(err) ?? ''), `a coded refusal, got ${String(err)}`)
          }
        }
      }
    }, RUNS)
    assert.ok(frames.accepted > 0 && frames.refused > 1_000)
  })

  it('bid stream: bids, declines and acks (10,000 cases each)', async () => {
    const rh = hashOrder(domain, 'RequestOrder', requestOrder())
    const decline = encodeBidStreamMessage({ v: 1, type: 'decline', requestHash: rh, worker: appOwner.address, code: 'PRICE_TOO_LOW', reason: 'below my floor' })
    const msgs = await fuzzDecoder({
      decode: decodeBidStreamMessage,
      codes: MARKET_CODES,
      codeOf: iexecCode,
      valid: [await signedBidBytes(bid(rh)), decline],
      keys: ORDER_KEYS,
      maxBytes: MAX_MESSAGE_BYTES.bid,
      accepted: roundTrips(encodeBidStreamMessage, decodeBidStreamMessage)
    }, RUNS)
    assert.ok(msgs.accepted > 0 && msgs.refused > 9_000)
    const acks = await fuzzDecoder({
      decode: decodeBidStreamAck,
      codes: MARKET_CODES,
      codeOf: iexecCode,
      valid: [encodeBidStreamAck({ v: 1, ok: true }), encodeBidStreamAck({ v: 1, ok: false, code: 'BID_UNKNOWN_REQUEST' })],
      keys: ['v', 'ok', 'code'],
      maxBytes: 256,
      accepted: roundTrips(encodeBidStreamAck, decodeBidStreamAck)
    }, RUNS)
    assert.ok(acks.accepted > 0 && acks.refused > 9_000)
  })

  it('key release: requests and answers (10,000 cases each)', async () => {
    const request = {
      dataset: APP, taskid: hex(32), dealid: hex(32), idx: 3, worker: appOwner.address, nonce: hex(32), timestamp: 1_800_000_000, signature: hex(65)
    }
    const reqs = await fuzzDecoder({
      decode: decodeKeyReleaseRequest,
      codes: new Set(['KEY_RELEASE_BAD_MESSAGE']),
      codeOf: iexecCode,
      valid: [encodeKeyReleaseRequest(request), encodeKeyReleaseRequest({ ...request, authorization: hex(65) })],
      keys: ['dataset', 'taskid', 'dealid', 'idx', 'worker', 'nonce', 'timestamp', 'signature', 'authorization'],
      maxBytes: KEY_RELEASE_MAX_MESSAGE_BYTES,
      accepted: roundTrips(encodeKeyReleaseRequest, decodeKeyReleaseRequest)
    }, RUNS)
    assert.ok(reqs.accepted > 0 && reqs.refused > 9_000)
    const answers = await fuzzDecoder({
      decode: decodeKeyReleaseResponse,
      codes: new Set(['KEY_RELEASE_BAD_MESSAGE']),
      codeOf: iexecCode,
      valid: [encodeKeyReleaseResponse({ ok: true, encryptedKey: hex(113) }), encodeKeyReleaseResponse({ ok: false, code: 'NOT_A_WORKER', reason: 'no' })],
      keys: ['ok', 'encryptedKey', 'code', 'reason'],
      maxBytes: KEY_RELEASE_MAX_MESSAGE_BYTES,
      accepted: roundTrips(encodeKeyReleaseResponse, decodeKeyReleaseResponse)
    }, RUNS)
    assert.ok(answers.accepted > 0 && answers.refused > 5_000)
  })

  it('resource records: the payload decoder (10,000 cases) and full verification with the DHT validator (2,000 cases)', async () => {
    const key = await generateKeyPair('Ed25519')
    const wallet = Wallet.createRandom()
    const peerId = peerIdFromPrivateKey(key).toString()
    const record = {
      peerId, address: wallet.address, cpus: 4, memoryMb: 8192, gpus: 1, executors: ['wasi', 'native'], category: 1, priceFloor: '1000',
      version: '0.1.0', tags: ['region:eu'], timestamp: 1_700_000_000_000, seq: 7
    }
    const bytes = await signResourceRecord(record, key, wallet)
    const CODES = new Set(['RECORD_TOO_LARGE', 'RECORD_MALFORMED', 'RECORD_INVALID', 'RECORD_BAD_PEER_SIGNATURE', 'RECORD_BAD_ETH_SIGNATURE', 'RECORD_PEER_MISMATCH'])
    const keys = ['payload', 'peerSig', 'ethSig', ...Object.keys(record)]
    // the payload is JSON inside JSON: mutate it as its own message too
    const payloadSeed = enc.encode(JSON.stringify({ ...JSON.parse(new TextDecoder().decode(bytes)), payload: JSON.parse(JSON.parse(new TextDecoder().decode(bytes)).payload) }))
    const unverified = await fuzzDecoder({
      decode: (b) => {
        // a seed with the payload as an object is re-wrapped as the wire has it (a string)
        let w: Record<string, unknown> | undefined
        try { w = JSON.parse(new TextDecoder().decode(b)) as Record<string, unknown> } catch {}
        if (w !== undefined && w !== null && typeof w === 'object' && typeof w.payload === 'object') b = enc.encode(JSON.stringify({ ...w, payload: JSON.stringify(w.payload) }))
        return decodeResourceRecordUnverified(b)
      },
      codes: CODES,
      codeOf: iexecCode,
      valid: [bytes, payloadSeed],
      keys,
      maxBytes: RESOURCE_RECORD_MAX_BYTES
    }, RUNS)
    assert.ok(unverified.accepted > 0 && unverified.refused > 5_000)
    // the DHT validator (what a peer's PUT reaches) runs the signature checks: fewer cases, they cost a verification each
    const validate = resourceDhtRules().validators['iexec-res']
    const dhtKey = resourceKey(peerId)
    const verified = await fuzzDecoder({
      decode: async (b) => {
        await validate(dhtKey, b)
        return await verifyResourceRecord(b, peerId)
      },
      codes: CODES,
      codeOf: iexecCode,
      valid: [bytes],
      keys,
      maxBytes: RESOURCE_RECORD_MAX_BYTES,
      accepted: (r) => { assert.deepEqual(r, record, 'only the signed record verifies') }
    }, { random: 700, json: 600, mutated: 700 })
    assert.ok(verified.accepted > 0 && verified.refused > 1_000)
  })
})
