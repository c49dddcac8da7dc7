/**
 * Shared fixture of the market unit tests: real keys, real EIP-712
 * signatures, and lookups backed by maps (the injected facts from the chain).
 */
import { Wallet, hexlify } from 'ethers'
import { ZERO_ADDRESS, ZERO_BYTES32, hashOrder, hubDomain, signOrder } from '../../../protocols/eip712.js'
import type { AppOrder, Bid, DatasetOrder, HubDomain, RequestOrder } from '../../../protocols/eip712.js'
import { encodeMarketMessage, orderMessage, saltWithExpiry } from '../../../protocols/market.js'
import { BoundedSeenSet } from '../../../node/market/lookups.js'
import type { OrderState } from '../../../node/market/lookups.js'
import type { MarketValidationContext } from '../../../node/market/validation.js'

export const HUB = '0x5FbDB2315678afecb367f032d93F642f64180aa3'
export const OTHER_HUB = '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512'
export const CHAIN_ID = 31337n
export const APP = '0x1111111111111111111111111111111111111111'
export const DATASET = '0x2222222222222222222222222222222222222222'

// fixed keys: deterministic and fast (no key generation in the tests)
export const appOwner = new Wallet('0x' + '11'.repeat(32))
export const datasetOwner = new Wallet('0x' + '22'.repeat(32))
export const requester = new Wallet('0x' + '33'.repeat(32))
export const worker = new Wallet('0x' + '44'.repeat(32))
export const mallory = new Wallet('0x' + '55'.repeat(32))

export const domain: HubDomain = hubDomain(CHAIN_ID, HUB)

/** The clock of the tests: fixed, moved by hand. */
export const NOW = 1_800_000_000

let saltCounter = 0
/** A distinct salt per call, expiring an hour after NOW unless told otherwise. */
export function salt (expiresAt: number = NOW + 3600): string {
  saltCounter++
  const random = new Uint8Array(24)
  new DataView(random.buffer).setUint32(20, saltCounter)
  return saltWithExpiry(expiresAt, random)
}

export function appOrder (over: Partial<AppOrder> = {}): AppOrder {
  return { app: APP, appprice: 1n, volume: 10n, tag: ZERO_BYTES32, datasetrestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, salt: salt(), ...over }
}

export function datasetOrder (over: Partial<DatasetOrder> = {}): DatasetOrder {
  return { dataset: DATASET, datasetprice: 2n, volume: 10n, tag: ZERO_BYTES32, apprestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, salt: salt(), ...over }
}

export function requestOrder (over: Partial<RequestOrder> = {}): RequestOrder {
  return {
    app: APP,
    appmaxprice: 1n,
    dataset: ZERO_ADDRESS,
    datasetmaxprice: 0n,
    workerpool: ZERO_ADDRESS,
    workerpoolmaxprice: 5n,
    requester: requester.address,
    volume: 1n,
    tag: ZERO_BYTES32,
    category: 0n,
    trust: 1n,
    beneficiary: requester.address,
    callback: ZERO_ADDRESS,
    params: '{"iexec_args":"hello"}',
    salt: salt(),
    ...over
  }
}

export function bid (requestHash: string, over: Partial<Bid> = {}): Bid {
  return { requestHash, worker: worker.address, price: 3n, volume: 1n, salt: salt(), ...over }
}

export async function signedAppOrderBytes (order: AppOrder = appOrder(), signer: Wallet = appOwner, d: HubDomain = domain): Promise<Uint8Array> {
  const s = await signOrder(signer, d, 'AppOrder', order)
  return encodeMarketMessage(orderMessage('apporder', d, order, s.sign))
}

export async function signedDatasetOrderBytes (order: DatasetOrder = datasetOrder(), signer: Wallet = datasetOwner, d: HubDomain = domain): Promise<Uint8Array> {
  const s = await signOrder(signer, d, 'DatasetOrder', order)
  return encodeMarketMessage(orderMessage('datasetorder', d, order, s.sign))
}

export async function signedRequestBytes (order: RequestOrder = requestOrder(), signer: Wallet = requester, d: HubDomain = domain): Promise<Uint8Array> {
  const s = await signOrder(signer, d, 'RequestOrder', order)
  return encodeMarketMessage(orderMessage('requestorder', d, order, s.sign))
}

export async function signedBidBytes (b: Bid, signer: Wallet = worker, d: HubDomain = domain): Promise<Uint8Array> {
  const s = await signOrder(signer, d, 'Bid', b)
  return encodeMarketMessage(orderMessage('bid', d, b, s.sign))
}

/** Map-backed lookups with counters, so tests can set chain facts. */
export class FakeChain {
  owners = new Map<string, string>([[`app:${APP.toLowerCase()}`, appOwner.address], [`dataset:${DATASET.toLowerCase()}`, datasetOwner.address]])
  states = new Map<string, OrderState>()
  requests = new Map<string, RequestOrder>()
  now = NOW
  ownerCalls = 0
  failLookups = false

  context (): MarketValidationContext {
    return {
      domain,
      clock: { nowSeconds: () => this.now },
      owners: {
        ownerOf: async (kind, asset) => {
          this.ownerCalls++
          if (this.failLookups) throw new Error('rpc down')
          return this.owners.get(`${kind}:${asset.toLowerCase()}`)
        }
      },
      orderState: {
        orderState: async (hash) => {
          if (this.failLookups) throw new Error('rpc down')
          return this.states.get(hash) ?? { consumed: 0n, cancelled: false, presigned: false }
        }
      },
      requests: { requestOrder: async (hash) => this.requests.get(hash) },
      seen: new BoundedSeenSet(10_000)
    }
  }

  /** Makes a request known (as if gossip had delivered it), returns its hash. */
  holdRequest (r: RequestOrder): string {
    const h = hashOrder(domain, 'RequestOrder', r)
    this.requests.set(h, r)
    return h
  }
}

export function randomHex32 (): string {
  return hexlify(crypto.getRandomValues(new Uint8Array(32)))
}
