/**
 * Property test: thousands of random and mutated messages through the
 * adapter. It must always answer (never throw), and whatever it accepts must
 * be a message whose signature verifies, independently, under our domain.
 */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { hashOrder, recoverOrderSigner } from '../../../protocols/eip712.js'
import type { OrderKind } from '../../../protocols/eip712.js'
import {
  KIND_OF_TYPE, MARKET_MESSAGE_TYPES, MarketWireError, decodeBidStreamAck, decodeBidStreamMessage, decodeMarketMessage, decodeSyncFrame, decodeSyncRequest,
  encodeMarketMessage, recoverCancelSigner, signCancel
} from '../../../protocols/market.js'
import type { MarketMessageType } from '../../../protocols/market.js'
import { GossipValidationStats, runGossipValidation } from '../../../node/market/gossip-adapter.js'
import {
  APP, CHAIN_ID, DATASET, FakeChain, HUB, appOrder, appOwner, bid, datasetOrder, datasetOwner, domain, requestOrder, requester,
  signedAppOrderBytes, signedBidBytes, signedDatasetOrderBytes, signedRequestBytes, worker
} from './fixture.js'

const enc = new TextEncoder()
const dec = new TextDecoder()

/** The independent oracle: who may sign an order of this kind. */
function rightful (kind: OrderKind, order: Record<string, unknown>): string {
  switch (kind) {
    case 'AppOrder': return String(order.app).toLowerCase() === APP.toLowerCase() ? appOwner.address : 'nobody'
    case 'DatasetOrder': return String(order.dataset).toLowerCase() === DATASET.toLowerCase() ? datasetOwner.address : 'nobody'
    case 'RequestOrder': return String(order.requester)
    case 'Bid': return String(order.worker)
  }
}

/** True when an accepted message really verifies; throws (fails the property) otherwise. */
function checkAccepted (type: MarketMessageType, bytes: Uint8Array): void {
  const msg = decodeMarketMessage(bytes, type)
  assert.equal(msg.chainId, CHAIN_ID)
  assert.equal(msg.hub.toLowerCase(), HUB.toLowerCase())
  if (msg.type === 'cancel') {
    assert.equal(msg.proof.kind, 'signed', 'the fake chain shows no on-chain cancel, so only signed ones can pass')
    if (msg.proof.kind !== 'signed') return
    const h = hashOrder(domain, msg.proof.orderKind, msg.proof.order as never)
    assert.equal(recoverCancelSigner(domain, h, msg.proof.cancelSign).toLowerCase(), rightful(msg.proof.orderKind, msg.proof.order as unknown as Record<string, unknown>).toLowerCase())
    return
  }
  const kind = KIND_OF_TYPE[msg.type]
  assert.notEqual(msg.sign, '0x', 'the fake chain has no presigns')
  const signer = recoverOrderSigner(domain, kind, msg.order as never, msg.sign)
  assert.equal(signer.toLowerCase(), rightful(kind, msg.order as unknown as Record<string, unknown>).toLowerCase())
}

describe('market: validation property', function () {
  this.timeout(120_000)

  it('never throws and never accepts a message whose signature does not verify (3000 random and mutated messages)', async () => {
    const chain = new FakeChain()
    const r = requestOrder()
    const rh = chain.holdRequest(r)
    const ao = appOrder()
    const seeds: Array<{ type: MarketMessageType, bytes: Uint8Array }> = [
      { type: 'apporder', bytes: await signedAppOrderBytes(ao) },
      { type: 'datasetorder', bytes: await signedDatasetOrderBytes(datasetOrder()) },
      { type: 'requestorder', bytes: await signedRequestBytes(r) },
      { type: 'bid', bytes: await signedBidBytes(bid(rh)) },
      {
        type: 'cancel',
        bytes: encodeMarketMessage({ v: 1, type: 'cancel', chainId: CHAIN_ID, hub: HUB, proof: { kind: 'signed', orderKind: 'AppOrder', order: ao, cancelSign: await signCancel(appOwner, domain, hashOrder(domain, 'AppOrder', ao)) } })
      },
      { type: 'cancel', bytes: encodeMarketMessage({ v: 1, type: 'cancel', chainId: CHAIN_ID, hub: HUB, proof: { kind: 'onchain', orderHash: rh } }) }
    ]
    // JSON-level mutations keep the message parseable so the deeper checks get exercised
    const jsonValue = fc.oneof(
      fc.string(), fc.integer(), fc.constant(null), fc.boolean(),
      fc.constantFrom('0', '1', '31337', '0x', HUB, APP, requester.address, worker.address, '0x' + 'ab'.repeat(32), '0x' + '1b'.repeat(65), '99999999999999999999999999999999999999999999999999999999999999999999999999999999'),
      fc.uint8Array({ minLength: 0, maxLength: 80 }).map((b) => '0x' + Buffer.from(b).toString('hex'))
    )
    const mutation = fc.oneof(
      // random bytes
      fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ minLength: 0, maxLength: 3000 }) }),
      // flip bytes of a valid message
      fc.record({ kind: fc.constant('flip' as const), seed: fc.nat(seeds.length - 1), at: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), value: fc.integer({ min: 0, max: 255 }) }),
      // truncate or extend
      fc.record({ kind: fc.constant('cut' as const), seed: fc.nat(seeds.length - 1), len: fc.nat() }),
      // replace a (possibly nested) JSON field with a random value
      fc.record({ kind: fc.constant('field' as const), seed: fc.nat(seeds.length - 1), path: fc.array(fc.nat(), { minLength: 1, maxLength: 2 }), value: jsonValue }),
      // graft a field from another valid message (e.g. a signature onto another order)
      fc.record({ kind: fc.constant('graft' as const), seed: fc.nat(seeds.length - 1), donor: fc.nat(seeds.length - 1), path: fc.array(fc.nat(), { minLength: 1, maxLength: 2 }) }),
      // the valid message itself
      fc.record({ kind: fc.constant('valid' as const), seed: fc.nat(seeds.length - 1) })
    )

    function pick (o: Record<string, unknown>, path: number[]): { parent: Record<string, unknown>, key: string } | undefined {
      let parent = o
      for (let i = 0; i < path.length; i++) {
        const keys = Object.keys(parent)
        if (keys.length === 0) return undefined
        const key = keys[path[i]! % keys.length]!
        const v = parent[key]
        if (i === path.length - 1 || typeof v !== 'object' || v === null) return { parent, key }
        parent = v as Record<string, unknown>
      }
      return undefined
    }

    const stats = new GossipValidationStats()
    let accepted = 0
    let runs = 0
    await fc.assert(fc.asyncProperty(mutation, fc.constantFrom(...MARKET_MESSAGE_TYPES), async (m, topicType) => {
      runs++
      let bytes: Uint8Array
      let type: MarketMessageType = topicType
      switch (m.kind) {
        case 'random': bytes = m.bytes; break
        case 'flip': {
          const s = seeds[m.seed]!
          bytes = Uint8Array.from(s.bytes)
          for (const a of m.at) bytes[a % bytes.length] = m.value
          type = s.type
          break
        }
        case 'cut': {
          const s = seeds[m.seed]!
          const len = m.len % (s.bytes.length * 2)
          bytes = len <= s.bytes.length ? s.bytes.slice(0, len) : Uint8Array.from([...s.bytes, ...new Uint8Array(len - s.bytes.length).fill(0x7d)])
          type = s.type
          break
        }
        case 'field':
        case 'graft': {
          const s = seeds[m.seed]!
          const o = JSON.parse(dec.decode(s.bytes)) as Record<string, unknown>
          const at = pick(o, m.path)
          if (at !== undefined) {
            if (m.kind === 'field') {
              at.parent[at.key] = m.value
            } else {
              const donor = JSON.parse(dec.decode(seeds[m.donor]!.bytes)) as Record<string, unknown>
              const from = pick(donor, m.path)
              if (from !== undefined) at.parent[at.key] = from.parent[from.key]
            }
          }
          bytes = enc.encode(JSON.stringify(o))
          type = s.type
          break
        }
        case 'valid': {
          const s = seeds[m.seed]!
          bytes = s.bytes
          type = s.type
          break
        }
      }
      // a fresh context each run: a duplicate must not hide a forged message behind an earlier accept
      const result = await runGossipValidation({ type, ctx: chain.context(), stats }, bytes, 'peer')
      assert.ok([TopicValidatorResult.Accept, TopicValidatorResult.Ignore, TopicValidatorResult.Reject].includes(result))
      if (result === TopicValidatorResult.Accept) {
        accepted++
        checkAccepted(type, bytes)
      }
    }), { numRuns: 3000, seed: 42 })
    assert.equal(runs, 3000)
    // the run must exercise both sides: some messages accepted, many refused
    assert.ok(accepted > 50, `only ${accepted} accepted`)
    const snapshot = stats.snapshot()
    assert.equal(Object.keys(snapshot).some((k) => k.includes('INTERNAL')), false, `no validator bug: ${JSON.stringify(snapshot)}`)
    assert.ok(Object.keys(snapshot).some((k) => k.endsWith('GOSSIP_BAD_SIGNATURE')), 'forgeries were produced and caught')
  })
})

describe('market: stream decoders property', function () {
  it('the sync and bid-stream decoders either decode or throw a typed MarketWireError (2000 random inputs each)', () => {
    const decoders = [decodeSyncRequest, decodeSyncFrame, decodeBidStreamMessage, decodeBidStreamAck]
    const input = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 2000 }),
      // JSON-shaped inputs reach the schema checks
      fc.record({ v: fc.oneof(fc.constant(1), fc.integer()), type: fc.constantFrom('bid', 'decline', 'x'), ok: fc.boolean(), code: fc.string(), types: fc.array(fc.constantFrom('apporder', 'bid', 'requestorder')), limit: fc.integer(), cursor: fc.string(), requestHash: fc.string(), worker: fc.string(), reason: fc.string() }, { requiredKeys: [] })
        .map((o) => enc.encode(JSON.stringify(o))),
      fc.uint8Array({ minLength: 0, maxLength: 300 }).map((b) => Uint8Array.from([b.length % 2, ...b]))
    )
    for (const decode of decoders) {
      fc.assert(fc.property(input, (bytes) => {
        try {
          decode(bytes)
        } catch (err) {
          assert.ok(err instanceof MarketWireError, `${decode.name} threw ${String(err)}`)
        }
      }), { numRuns: 2000, seed: 7 })
    }
  })
})
