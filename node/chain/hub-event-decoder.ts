import { getAddress } from 'ethers'
import type { EventFragment, Interface, Result } from 'ethers'
import { hubInterface } from '../../contracts-abi/index.js'
import type { Hub } from '../../contracts-abi/index.js'
import type { TypedContractEvent } from '../../contracts-abi/types/common.js'
import type { ChainEvent } from './event-follower.js'

type HubFilters = Hub['filters']

/** The hub's event names, as its ABI (contracts-abi/) declares them. */
export type HubEventName = { [K in keyof HubFilters]: K extends `${string}(${string}` ? never : K }[keyof HubFilters] & string

/** The decoded arguments of a hub event, by position and by name (an ethers Result). */
export type HubEventArgs<N extends HubEventName> = HubFilters[N] extends TypedContractEvent<infer _I, infer O, infer Obj> ? Result & O & Obj : Result

/** A hub event decoded and typed by its name. */
export type HubEvent<N extends HubEventName = HubEventName> = Omit<ChainEvent, 'name' | 'args'> & { name: N, args: HubEventArgs<N> }

/** A log as a receipt or eth_getLogs gives it (ethers' Log fits). */
export interface LogLike {
  address: string
  topics: readonly string[]
  data: string
  blockNumber: number
  blockHash: string
  /** ethers' Log names it `index` */
  index?: number
  logIndex?: number
  transactionHash: string
}

/**
 * Decodes the hub's logs, its events found by topic once: ethers' parseLog
 * hashes every fragment's signature again for each log.
 */
export class HubLogDecoder {
  private readonly events = new Map<string, EventFragment>()

  constructor (readonly iface: Interface = hubInterface()) {
    iface.forEachEvent((f) => { if (!f.anonymous) this.events.set(f.topicHash, f) })
  }

  /** One log as a ChainEvent; `name` and `args` undefined when the hub has no such event. Arguments decode on first read. */
  decode (log: LogLike): ChainEvent {
    const base: ChainEvent = {
      address: log.address,
      blockNumber: log.blockNumber,
      blockHash: log.blockHash,
      logIndex: log.logIndex ?? log.index ?? 0,
      transactionHash: log.transactionHash,
      topics: log.topics,
      data: log.data
    }
    const fragment = log.topics.length > 0 ? this.events.get(log.topics[0].toLowerCase()) : undefined
    if (fragment === undefined) return base
    // most events reach handlers that look at their name (or an indexed topic) and move on
    let args: Result | undefined
    const iface = this.iface
    return Object.defineProperty({ ...base, name: fragment.name }, 'args', {
      enumerable: true,
      get: () => { args ??= iface.decodeEventLog(fragment, log.data, log.topics); return args }
    })
  }
}

let shared: HubLogDecoder | undefined

/**
 * The hub's events of a transaction receipt, in log order. Only the hub's
 * own logs count: any contract (a deal's callback, a token) can emit a log
 * that looks like one of the hub's. A log that does not decode is left out.
 */
export function hubEventsOfReceipt (receipt: { logs: readonly LogLike[] }, hub: string): ChainEvent[] {
  const decoder = (shared ??= new HubLogDecoder())
  const at = getAddress(hub)
  const out: ChainEvent[] = []
  for (const log of receipt.logs) {
    if (getAddress(log.address) !== at) continue
    const event = decoder.decode(log)
    if (event.name === undefined) continue
    try {
      void event.args
    } catch {
      continue
    }
    out.push(event)
  }
  return out
}

/** true when `event` is the hub's event `name` (its args then typed). */
export function isHubEvent<N extends HubEventName> (event: ChainEvent, name: N): event is ChainEvent & HubEvent<N> {
  return event.name === name && event.args !== undefined
}

/** The hub's events named `name` in a receipt, typed. */
export function hubEventsNamed<N extends HubEventName> (receipt: { logs: readonly LogLike[] }, hub: string, name: N): Array<HubEvent<N>> {
  return hubEventsOfReceipt(receipt, hub).filter((e): e is ChainEvent & HubEvent<N> => isHubEvent(e, name))
}
