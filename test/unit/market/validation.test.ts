import assert from 'node:assert/strict'
import { hexlify } from 'ethers'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Message } from '@libp2p/gossipsub'
import { hashOrder, hubDomain, signOrder } from '../../../protocols/eip712.js'
import { MAX_MESSAGE_BYTES, encodeMarketMessage, orderMessage, signCancel } from '../../../protocols/market.js'
import type { CancelMessage } from '../../../protocols/market.js'
import { GossipValidationError } from '../../../node/market/errors.js'
import type { GossipAction, GossipValidationCode } from '../../../node/market/errors.js'
import {
  validateAppOrderGossip, validateBidGossip, validateCancelGossip, validateDatasetOrderGossip, validateRequestOrderGossip
} from '../../../node/market/validation.js'
import { CachedAssetOwners } from '../../../node/market/lookups.js'
import { GossipValidationStats, createTopicValidator, runGossipValidation } from '../../../node/market/gossip-adapter.js'
import {
  APP, CHAIN_ID, FakeChain, HUB, NOW, OTHER_HUB, appOrder, appOwner, bid, domain, mallory, randomHex32, requestOrder, requester,
  salt, signedAppOrderBytes, signedBidBytes, signedDatasetOrderBytes, signedRequestBytes, worker
} from './fixture.js'

const enc = new TextEncoder()

async function refused (p: Promise<unknown>, code: GossipValidationCode, action: GossipAction): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof GossipValidationError, `expected a GossipValidationError, got ${String(err)}`)
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`)
    assert.equal(err.action, action, `${code} must be ${action}`)
    return true
  })
}

const CURVE_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

/** The malleable twin (r, n - s, the other v) of a signature: the hub refuses it. */
function highS (sign: string): string {
  const s = CURVE_N - BigInt('0x' + sign.slice(66, 130))
  return sign.slice(0, 66) + s.toString(16).padStart(64, '0') + (sign.slice(-2) === '1b' ? '1c' : '1b')
}

/** The same signature with v as 0 or 1: ethers takes it, the hub does not. */
function vAsRecoveryId (sign: string): string {
  return sign.slice(0, -2) + (parseInt(sign.slice(-2), 16) - 27).toString(16).padStart(2, '0')
}

/** Rewrites one JSON field of an encoded message (for tampering tests). */
function tamper (bytes: Uint8Array, edit: (o: Record<string, unknown>) => void): Uint8Array {
  const o = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>
  edit(o)
  return enc.encode(JSON.stringify(o))
}

/** A request order message built by hand (encodeMarketMessage refuses what peers would refuse). */
function requestWire (r: ReturnType<typeof requestOrder>, sign: string): Uint8Array {
  return enc.encode(JSON.stringify({ v: 1, type: 'requestorder', chainId: '31337', hub: HUB, order: { ...r, appmaxprice: '1', datasetmaxprice: '0', workerpoolmaxprice: '5', volume: '1', category: '0', trust: '1' }, sign }))
}

describe('market: gossip validation', function () {
  let chain: FakeChain
  beforeEach(() => { chain = new FakeChain() })

  describe('accept paths', function () {
    it('accepts a signed app order and returns its hub hash, signer and expiry', async () => {
      const order = appOrder()
      const v = await validateAppOrderGossip(await signedAppOrderBytes(order), chain.context())
      assert.equal(v.hash, hashOrder(domain, 'AppOrder', order))
      assert.equal(v.signer, appOwner.address)
      assert.equal(v.expiresAt, BigInt(NOW + 3600))
      assert.equal(v.message.order.appprice, 1n)
    })

    it('accepts a dataset order, a request order and a bid', async () => {
      const ctx = chain.context()
      const d = await validateDatasetOrderGossip(await signedDatasetOrderBytes(), ctx)
      assert.equal(d.message.type, 'datasetorder')
      const r = requestOrder()
      const rv = await validateRequestOrderGossip(await signedRequestBytes(r), ctx)
      assert.equal(rv.signer, requester.address)
      chain.holdRequest(r)
      const bv = await validateBidGossip(await signedBidBytes(bid(rv.hash)), ctx)
      assert.equal(bv.signer, worker.address)
      assert.equal(bv.message.order.requestHash, rv.hash)
    })

    it('accepts an order with no expiry (zero salt prefix)', async () => {
      const v = await validateAppOrderGossip(await signedAppOrderBytes(appOrder({ salt: salt(0) })), chain.context())
      assert.equal(v.expiresAt, undefined)
    })

    it('accepts a presigned order (sign 0x) once the hub shows the presign, ignores it before', async () => {
      const order = appOrder()
      const h = hashOrder(domain, 'AppOrder', order)
      const bytes = encodeMarketMessage(orderMessage('apporder', domain, order, '0x'))
      await refused(validateAppOrderGossip(bytes, chain.context()), 'GOSSIP_NOT_PRESIGNED', 'IGNORE')
      chain.states.set(h, { consumed: 0n, cancelled: false, presigned: true })
      const v = await validateAppOrderGossip(bytes, chain.context())
      assert.equal(v.signer, appOwner.address)
    })
  })

  describe('refusals', function () {
    it('rejects a forged signature (app order signed by someone other than the app owner)', async () => {
      await refused(validateAppOrderGossip(await signedAppOrderBytes(appOrder(), mallory), chain.context()), 'GOSSIP_BAD_SIGNATURE', 'REJECT')
    })

    it('rejects a request order signed by another key than its requester', async () => {
      await refused(validateRequestOrderGossip(await signedRequestBytes(requestOrder(), mallory), chain.context()), 'GOSSIP_BAD_SIGNATURE', 'REJECT')
    })

    it('rejects a tampered order (price changed after signing)', async () => {
      const bytes = tamper(await signedAppOrderBytes(), (o) => { (o.order as Record<string, unknown>).appprice = '0' })
      await refused(validateAppOrderGossip(bytes, chain.context()), 'GOSSIP_BAD_SIGNATURE', 'REJECT')
    })

    it('rejects a signature that is 65 random bytes', async () => {
      const bytes = tamper(await signedAppOrderBytes(), (o) => { o.sign = hexlify(crypto.getRandomValues(new Uint8Array(65))) })
      await refused(validateAppOrderGossip(bytes, chain.context()), 'GOSSIP_BAD_SIGNATURE', 'REJECT')
    })

    it('rejects a message claiming another chain id', async () => {
      const other = hubDomain(1n, HUB)
      await refused(validateAppOrderGossip(await signedAppOrderBytes(appOrder(), appOwner, other), chain.context()), 'GOSSIP_WRONG_CHAIN', 'REJECT')
    })

    it('rejects a message claiming another hub address', async () => {
      const other = hubDomain(CHAIN_ID, OTHER_HUB)
      await refused(validateRequestOrderGossip(await signedRequestBytes(requestOrder(), requester, other), chain.context()), 'GOSSIP_WRONG_HUB', 'REJECT')
    })

    it('rejects an order signed under another domain but relabelled with ours', async () => {
      const other = hubDomain(1n, HUB)
      const bytes = tamper(await signedAppOrderBytes(appOrder(), appOwner, other), (o) => { o.chainId = CHAIN_ID.toString() })
      await refused(validateAppOrderGossip(bytes, chain.context()), 'GOSSIP_BAD_SIGNATURE', 'REJECT')
    })

    it('ignores an expired order (expiry in the salt has passed)', async () => {
      const bytes = await signedAppOrderBytes(appOrder({ salt: salt(NOW - 1) }))
      await refused(validateAppOrderGossip(bytes, chain.context()), 'GOSSIP_EXPIRED', 'IGNORE')
      // the same order is fine while the clock is before its expiry
      chain.now = NOW - 10
      await validateAppOrderGossip(bytes, chain.context())
    })

    it('ignores a consumed order and a cancelled one', async () => {
      const consumed = appOrder({ volume: 3n })
      chain.states.set(hashOrder(domain, 'AppOrder', consumed), { consumed: 3n, cancelled: false, presigned: false })
      await refused(validateAppOrderGossip(await signedAppOrderBytes(consumed), chain.context()), 'GOSSIP_CONSUMED', 'IGNORE')
      const cancelled = requestOrder()
      chain.states.set(hashOrder(domain, 'RequestOrder', cancelled), { consumed: 1n, cancelled: true, presigned: false })
      await refused(validateRequestOrderGossip(await signedRequestBytes(cancelled), chain.context()), 'GOSSIP_CANCELLED', 'IGNORE')
      // partly consumed is still live
      const partly = appOrder({ volume: 3n })
      chain.states.set(hashOrder(domain, 'AppOrder', partly), { consumed: 2n, cancelled: false, presigned: false })
      const v = await validateAppOrderGossip(await signedAppOrderBytes(partly), chain.context())
      assert.equal(v.consumed, 2n, 'the consumed volume travels with the validated order')
    })

    it('rejects an oversized message before parsing it', async () => {
      const big = new Uint8Array(MAX_MESSAGE_BYTES.apporder + 1).fill(0x20)
      await refused(validateAppOrderGossip(big, chain.context()), 'GOSSIP_TOO_LARGE', 'REJECT')
      // params beyond their limit are refused; far beyond, the whole message is too large
      const long = requestOrder({ params: 'x'.repeat(4097) })
      await refused(validateRequestOrderGossip(requestWire(long, (await signOrder(requester, domain, 'RequestOrder', long)).sign), chain.context()), 'GOSSIP_INVALID_FIELD', 'REJECT')
      const r = requestOrder({ params: 'x'.repeat(12_000) })
      const s = await signOrder(requester, domain, 'RequestOrder', r)
      await refused(validateRequestOrderGossip(requestWire(r, s.sign), chain.context()), 'GOSSIP_TOO_LARGE', 'REJECT')
    })

    it('rejects garbage bytes, non-UTF-8 and non-object JSON', async () => {
      const ctx = chain.context()
      await refused(validateAppOrderGossip(crypto.getRandomValues(new Uint8Array(300)), ctx), 'GOSSIP_MALFORMED', 'REJECT')
      await refused(validateAppOrderGossip(new Uint8Array([0xff, 0xfe, 0x7b]), ctx), 'GOSSIP_MALFORMED', 'REJECT')
      await refused(validateBidGossip(enc.encode('[1,2,3]'), ctx), 'GOSSIP_MALFORMED', 'REJECT')
      await refused(validateBidGossip(new Uint8Array(0), ctx), 'GOSSIP_MALFORMED', 'REJECT')
    })

    it('rejects schema violations: unknown field, missing field, non-canonical integer, bad address', async () => {
      const good = await signedAppOrderBytes()
      const ctx = chain.context()
      await refused(validateAppOrderGossip(tamper(good, (o) => { o.extra = 1 }), ctx), 'GOSSIP_INVALID_FIELD', 'REJECT')
      await refused(validateAppOrderGossip(tamper(good, (o) => { delete (o.order as Record<string, unknown>).tag }), ctx), 'GOSSIP_INVALID_FIELD', 'REJECT')
      await refused(validateAppOrderGossip(tamper(good, (o) => { (o.order as Record<string, unknown>).volume = '010' }), ctx), 'GOSSIP_INVALID_FIELD', 'REJECT')
      await refused(validateAppOrderGossip(tamper(good, (o) => { (o.order as Record<string, unknown>).volume = 10 }), ctx), 'GOSSIP_INVALID_FIELD', 'REJECT')
      await refused(validateAppOrderGossip(tamper(good, (o) => { (o.order as Record<string, unknown>).app = '0x1234' }), ctx), 'GOSSIP_INVALID_FIELD', 'REJECT')
      await refused(validateAppOrderGossip(tamper(good, (o) => { (o.order as Record<string, unknown>).volume = '1' + '0'.repeat(78) }), ctx), 'GOSSIP_INVALID_FIELD', 'REJECT')
    })

    it('rejects a message of another type on a topic, ignores an unknown wire version', async () => {
      const ctx = chain.context()
      await refused(validateRequestOrderGossip(await signedAppOrderBytes(), ctx), 'GOSSIP_WRONG_TYPE', 'REJECT')
      await refused(validateAppOrderGossip(tamper(await signedAppOrderBytes(), (o) => { o.v = 2 }), ctx), 'GOSSIP_BAD_VERSION', 'IGNORE')
    })

    it('ignores a replayed order (same hash), even under a different signature', async () => {
      const ctx = chain.context()
      const order = appOrder()
      const bytes = await signedAppOrderBytes(order)
      await validateAppOrderGossip(bytes, ctx)
      await refused(validateAppOrderGossip(bytes, ctx), 'GOSSIP_DUPLICATE', 'IGNORE')
      await refused(validateAppOrderGossip(await signedAppOrderBytes(order, mallory), ctx), 'GOSSIP_DUPLICATE', 'IGNORE')
    })

    it('does not remember refused messages: a forged copy first, then the real order is accepted', async () => {
      const ctx = chain.context()
      const order = appOrder()
      await refused(validateAppOrderGossip(await signedAppOrderBytes(order, mallory), ctx), 'GOSSIP_BAD_SIGNATURE', 'REJECT')
      const v = await validateAppOrderGossip(await signedAppOrderBytes(order), ctx)
      assert.equal(v.signer, appOwner.address)
    })

    it('ignores an order for an unregistered app, and a failing lookup', async () => {
      await refused(validateAppOrderGossip(await signedAppOrderBytes(appOrder({ app: '0x9999999999999999999999999999999999999999' })), chain.context()), 'GOSSIP_UNKNOWN_ASSET', 'IGNORE')
      chain.failLookups = true
      await refused(validateDatasetOrderGossip(await signedDatasetOrderBytes(), chain.context()), 'GOSSIP_LOOKUP_FAILED', 'IGNORE')
    })

    it('rejects zero volume and a request the hub would refuse (trust 0 or above 255)', async () => {
      await refused(validateAppOrderGossip(await signedAppOrderBytes(appOrder({ volume: 0n })), chain.context()), 'GOSSIP_ZERO_VOLUME', 'REJECT')
      await refused(validateRequestOrderGossip(await signedRequestBytes(requestOrder({ trust: 0n })), chain.context()), 'GOSSIP_BAD_REQUEST', 'REJECT')
      await refused(validateRequestOrderGossip(await signedRequestBytes(requestOrder({ trust: 256n })), chain.context()), 'GOSSIP_BAD_REQUEST', 'REJECT')
    })

    it('checks bids against the request they answer', async () => {
      const r = requestOrder({ workerpoolmaxprice: 5n })
      const unknown = hashOrder(domain, 'RequestOrder', r)
      await refused(validateBidGossip(await signedBidBytes(bid(unknown)), chain.context()), 'GOSSIP_BID_UNKNOWN_REQUEST', 'IGNORE')
      const h = chain.holdRequest(r)
      await refused(validateBidGossip(await signedBidBytes(bid(h, { price: 6n })), chain.context()), 'GOSSIP_BID_PRICE_ABOVE_MAX', 'REJECT')
      await refused(validateBidGossip(await signedBidBytes(bid(h), mallory), chain.context()), 'GOSSIP_BAD_SIGNATURE', 'REJECT')
      const restricted = requestOrder({ workerpool: mallory.address })
      const rh = chain.holdRequest(restricted)
      await refused(validateBidGossip(await signedBidBytes(bid(rh)), chain.context()), 'GOSSIP_BID_WORKER_RESTRICTED', 'REJECT')
    })
  })

  describe('cancels', function () {
    function cancelBytes (proof: CancelMessage['proof'], chainId = CHAIN_ID, hub = HUB): Uint8Array {
      return encodeMarketMessage({ v: 1, type: 'cancel', chainId, hub, proof })
    }

    it('accepts a cancel signed by the app owner and refuses one signed by someone else', async () => {
      const order = appOrder()
      const h = hashOrder(domain, 'AppOrder', order)
      const forged = cancelBytes({ kind: 'signed', orderKind: 'AppOrder', order, cancelSign: await signCancel(mallory, domain, h) })
      await refused(validateCancelGossip(forged, chain.context()), 'GOSSIP_CANCEL_BAD_SIGNATURE', 'REJECT')
      const ctx = chain.context()
      const good = cancelBytes({ kind: 'signed', orderKind: 'AppOrder', order, cancelSign: await signCancel(appOwner, domain, h) })
      const v = await validateCancelGossip(good, ctx)
      assert.equal(v.orderHash, h)
      assert.equal(v.signer, appOwner.address)
      await refused(validateCancelGossip(good, ctx), 'GOSSIP_DUPLICATE', 'IGNORE')
    })

    it('refuses a high-s or malformed cancel signature as it refuses an order\'s (REJECT)', async () => {
      const order = appOrder()
      const h = hashOrder(domain, 'AppOrder', order)
      const good = await signOrder(appOwner, domain, 'AppOrder', order)
      const cancelSign = await signCancel(appOwner, domain, h)
      for (const [what, bad] of Object.entries({ 'high s': highS, 'v as 0 or 1': vAsRecoveryId })) {
        const orderBytes = tamper(await signedAppOrderBytes(order), (o) => { o.sign = bad(good.sign) })
        await refused(validateAppOrderGossip(orderBytes, chain.context()), 'GOSSIP_BAD_SIGNATURE', 'REJECT')
        await assert.rejects(validateCancelGossip(cancelBytes({ kind: 'signed', orderKind: 'AppOrder', order, cancelSign: bad(cancelSign) }), chain.context()), (err: unknown) => {
          assert.ok(err instanceof GossipValidationError, `${what}: ${String(err)}`)
          assert.equal(err.code, 'GOSSIP_CANCEL_BAD_SIGNATURE', what)
          assert.equal(err.action, 'REJECT', what)
          return true
        })
      }
    })

    it('refuses a cancel signed for another hub', async () => {
      const r = requestOrder()
      const h = hashOrder(domain, 'RequestOrder', r)
      const otherDomain = hubDomain(CHAIN_ID, OTHER_HUB)
      const bytes = cancelBytes({ kind: 'signed', orderKind: 'RequestOrder', order: r, cancelSign: await signCancel(requester, otherDomain, h) })
      await refused(validateCancelGossip(bytes, chain.context()), 'GOSSIP_CANCEL_BAD_SIGNATURE', 'REJECT')
      await refused(validateCancelGossip(cancelBytes({ kind: 'onchain', orderHash: h }, CHAIN_ID, OTHER_HUB), chain.context()), 'GOSSIP_WRONG_HUB', 'REJECT')
    })

    it('accepts an on-chain cancel only once the hub shows it', async () => {
      const h = randomHex32()
      const bytes = cancelBytes({ kind: 'onchain', orderHash: h })
      await refused(validateCancelGossip(bytes, chain.context()), 'GOSSIP_CANCEL_NOT_ON_CHAIN', 'IGNORE')
      chain.states.set(h, { consumed: 1n, cancelled: true, presigned: false })
      const v = await validateCancelGossip(bytes, chain.context())
      assert.equal(v.orderHash, h)
    })
  })

  describe('owner cache', function () {
    it('answers forged orders for one unknown app with one lookup per TTL, and keeps found owners', async () => {
      let nowMs = 0
      const base = chain.context()
      const owners = new CachedAssetOwners(base.owners, { negativeTtlMs: 5000, nowMs: () => nowMs })
      const ctx = { ...base, owners }
      const ghost = '0x9999999999999999999999999999999999999999'
      for (let i = 0; i < 20; i++) {
        await refused(validateAppOrderGossip(await signedAppOrderBytes(appOrder({ app: ghost }), mallory), ctx), 'GOSSIP_UNKNOWN_ASSET', 'IGNORE')
      }
      assert.equal(owners.sourceCalls, 1, 'the miss is cached')
      nowMs = 6000
      await owners.ownerOf('app', ghost)
      assert.equal(owners.sourceCalls, 2, 'the miss expires after its TTL')
      await Promise.all([owners.ownerOf('app', APP), owners.ownerOf('app', APP), owners.ownerOf('app', APP)])
      await owners.ownerOf('app', APP.toUpperCase().replace('0X', '0x'))
      assert.equal(owners.sourceCalls, 3, 'concurrent and later lookups of a found owner share one call')
    })
  })

  describe('adapter', function () {
    const peer = peerIdFromString('12D3KooWLRPJAA5o6Z6ghvKkJd2UKTSjVDG2eT4Df3nL6ay5jWek')

    function gossipMessage (data: Uint8Array): Message {
      return { type: 'unsigned', topic: 't', data }
    }

    it('maps accept, ignore and reject to gossipsub results, counts them by code and hands accepted messages on', async () => {
      const stats = new GossipValidationStats()
      const accepted: string[] = []
      const ctx = chain.context()
      const fn = createTopicValidator({ type: 'apporder', ctx, stats, onAccept: (v, from) => { accepted.push(`${v.hash}@${from}`) } })
      const good = await signedAppOrderBytes()
      assert.equal(await fn(peer, gossipMessage(good)), TopicValidatorResult.Accept)
      assert.equal(await fn(peer, gossipMessage(good)), TopicValidatorResult.Ignore)
      assert.equal(await fn(peer, gossipMessage(await signedAppOrderBytes(appOrder(), mallory))), TopicValidatorResult.Reject)
      assert.equal(await fn(peer, gossipMessage(enc.encode('nope'))), TopicValidatorResult.Reject)
      assert.equal(accepted.length, 1)
      assert.ok(accepted[0]?.endsWith(`@${peer.toString()}`))
      assert.equal(stats.get('apporder', 'accept'), 1)
      assert.equal(stats.get('apporder', 'ignore', 'GOSSIP_DUPLICATE'), 1)
      assert.equal(stats.get('apporder', 'reject', 'GOSSIP_BAD_SIGNATURE'), 1)
      assert.equal(stats.get('apporder', 'reject', 'GOSSIP_MALFORMED'), 1)
    })

    it('never throws: a broken lookup, a throwing onAccept and a throwing logger all end in a result', async () => {
      const stats = new GossipValidationStats()
      const base = chain.context()
      const ctx = { ...base, requests: { requestOrder: async (): Promise<never> => { throw new TypeError('bug') } } }
      const r = requestOrder()
      chain.holdRequest(r)
      const bidBytes = await signedBidBytes(bid(hashOrder(domain, 'RequestOrder', r)))
      assert.equal(await runGossipValidation({ type: 'bid', ctx, stats }, bidBytes, 'p'), TopicValidatorResult.Ignore)
      assert.equal(stats.get('bid', 'ignore', 'GOSSIP_LOOKUP_FAILED'), 1)
      const fn = createTopicValidator({
        type: 'apporder',
        ctx: base,
        onAccept: () => { throw new Error('consumer bug') },
        logger: { debug: () => { throw new Error('logger bug') } }
      })
      assert.equal(await fn(peer, gossipMessage(await signedAppOrderBytes())), TopicValidatorResult.Accept)
      assert.equal(await fn(peer, gossipMessage(enc.encode('not json'))), TopicValidatorResult.Reject, 'a throwing logger does not change the verdict')
    })
  })
})

