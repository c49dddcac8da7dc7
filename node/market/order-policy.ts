/**
 * Who may use an asset: the restrictions and tags an app or dataset owner
 * puts in its orders (`dataset publish --app … --requester … --tag …`,
 * `app publish --dataset … --requester … --tag …`), read from an API body.
 *
 * The hub's restriction fields hold one address each (Hub.matchOrders:
 * `restriction == 0 || restriction == party`), so an owner who allows
 * several apps (or requesters) signs one order per allowed pair: the hub
 * then enforces each, and a requester's node picks the order that names
 * its app and itself. iExec PoCo's alternative, a restriction that names a
 * group contract, would need the hub to call it in matchOrders; one order
 * per pair needs no change to the hub, at the price of one order (and one
 * cancel) per pair, bounded by {@link MAX_POLICY_ORDERS}.
 */
import { getAddress, isAddress } from 'ethers'
import { HttpError } from '../common/http-error.js'
import { bad } from '../common/http-error.js'
import { ZERO_ADDRESS } from '../../protocols/eip712.js'
import { TAG_BITS, encodeTags } from '../../protocols/market.js'
import type { MarketService } from './service.js'

/** At most this many orders for one publish (allowed apps or datasets x allowed requesters). */
export const MAX_POLICY_ORDERS = 64
/** At most this many entries in one list (apps, datasets, requesters, tags). */
export const MAX_POLICY_ENTRIES = 32

function list (v: unknown, field: string): string[] | undefined {
  if (v === undefined) return undefined
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_POLICY_ENTRIES || v.some((x) => typeof x !== 'string' || x.length === 0 || x.length > 128)) {
    throw bad(field, `must be a list of 1-${MAX_POLICY_ENTRIES} non-empty strings`)
  }
  return [...new Set(v as string[])]
}

/** Addresses (checksummed, deduplicated); API_BAD_REQUEST on a malformed one. */
export function addressList (v: unknown, field: string): string[] | undefined {
  const raw = list(v, field)
  if (raw === undefined) return undefined
  const out = new Set<string>()
  for (const a of raw) {
    if (!isAddress(a)) throw bad(field, `must hold addresses (0x and 40 hex digits), got "${String(a).slice(0, 80)}"`)
    out.add(getAddress(a))
  }
  return [...out]
}

/** Named tags (TAG_BITS) as the order's bytes32 tag; API_BAD_REQUEST on a name with no bit. */
export function tagList (v: unknown): { names: string[], tag: string } {
  const names = list(v, 'tags') ?? []
  for (const n of names) {
    if (TAG_BITS[n] === undefined) throw new HttpError(400, 'TAG_UNKNOWN', `tag '${n.slice(0, 64)}' has no tag bit: an order's tags are on chain, one of ${Object.keys(TAG_BITS).join(', ')}`, { field: 'tags', tag: n.slice(0, 64) })
  }
  return { names, tag: encodeTags(names) }
}

/** A volume (number of uses): a whole number in [1, 2^64), as a number or a decimal string. */
export function volumeOf (v: unknown, fallback: bigint): bigint {
  if (v === undefined) return fallback
  const s = typeof v === 'number' && Number.isSafeInteger(v) ? String(v) : v
  if (typeof s !== 'string' || !/^[0-9]{1,20}$/.test(s)) throw bad('volume', 'must be a whole number of uses, at least 1')
  const n = BigInt(s)
  if (n < 1n || n >= 1n << 64n) throw bad('volume', 'must be in [1, 2^64)')
  return n
}

/**
 * App addresses from addresses or names, each checked on the hub (through
 * the node's registry of AppRegistered events). A name must be unambiguous:
 * anyone can register an app under any name, so an allow-list that picked
 * one of several apps named `wordcount` could allow an attacker's copy.
 * APP_NOT_FOUND (404) for an unknown app, APP_NAME_AMBIGUOUS (409).
 */
export async function resolveAllowedApps (m: MarketService, refs: string[]): Promise<string[]> {
  const out = new Set<string>()
  for (const ref of refs) {
    if (ref.startsWith('0x')) {
      if (!isAddress(ref)) throw bad('apps', `must hold app addresses or names, got "${String(ref).slice(0, 80)}"`)
      const app = getAddress(ref)
      if (await m.ctx.owners.ownerOf('app', app) === undefined) throw new HttpError(404, 'APP_NOT_FOUND', `app ${app} is not registered on the hub`, { app })
      out.add(app)
      continue
    }
    let named = await m.appsNamed(ref)
    if (named.length === 0) {
      // a fresh registration may not have reached our follower yet
      await m.hubEvents.poll()
      named = await m.appsNamed(ref)
    }
    if (named.length === 0) throw new HttpError(404, 'APP_NOT_FOUND', `no app named '${ref.slice(0, 64)}' is registered on the hub`, { app: ref.slice(0, 64) })
    if (named.length > 1) {
      throw new HttpError(409, 'APP_NAME_AMBIGUOUS', `${named.length} apps are named '${ref}' (${named.map((a) => a.app).join(', ')}): name the one you allow by its address`,
        { app: ref, candidates: named.map((a) => getAddress(a.app)) })
    }
    out.add(getAddress(named[0].app))
  }
  return [...out]
}

/** Dataset addresses, each checked on the hub. DATASET_NOT_FOUND (404) for an unknown one. */
export async function checkDatasets (m: MarketService, datasets: string[]): Promise<void> {
  for (const d of datasets) {
    if (await m.ctx.owners.ownerOf('dataset', d) === undefined) throw new HttpError(404, 'DATASET_NOT_FOUND', `dataset ${d} is not registered on the hub`, { dataset: d })
  }
}

/**
 * Every (first, second) restriction pair an owner's choice needs one order
 * for; an empty list means "anyone" (the zero address).
 */
export function restrictionPairs (first: string[], second: string[]): Array<[string, string]> {
  const a = first.length === 0 ? [ZERO_ADDRESS] : first
  const b = second.length === 0 ? [ZERO_ADDRESS] : second
  const out: Array<[string, string]> = []
  for (const x of a) for (const y of b) out.push([x, y])
  if (out.length > MAX_POLICY_ORDERS) {
    throw new HttpError(400, 'API_BAD_REQUEST', `${a.length} x ${b.length} restrictions need ${out.length} orders, at most ${MAX_POLICY_ORDERS}`, { field: 'requesters' })
  }
  return out
}
