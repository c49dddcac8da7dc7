import { networkInterfaces } from 'node:os'
import type { NetworkInterfaceInfo } from 'node:os'
import { isPrivate } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { NAT_DEFAULTS } from './options.js'
import type { NatOptions } from './options.js'

/**
 * How this node stands toward NATs:
 * - `public`: it has a public address peers can dial (verified by AutoNAT, or announced by its owner)
 * - `relayed`: no public address, but a relay reservation: reachable through the relay, upgraded by DCUtR when it can
 * - `private`: only private or loopback addresses and no relay: reachable on its LAN (or host) only
 * - `unknown`: public addresses AutoNAT has not verified yet
 */
export type Reachability = 'public' | 'relayed' | 'private' | 'unknown'

export interface ReachabilityView {
  reachability: Reachability
  /** public addresses peers verified (AutoNAT) or the owner announced */
  publicAddrs: string[]
  /** /p2p-circuit addresses of the relays holding a reservation for us */
  relayAddrs: string[]
}

export interface NatPlan {
  relayServer: boolean
  relayClient: boolean
}

function ipOf (ma: Multiaddr): { family: 4 | 6, host: string } | undefined {
  const c = ma.getComponents()[0]
  if (c?.name === 'ip4' && c.value !== undefined) return { family: 4, host: c.value }
  if (c?.name === 'ip6' && c.value !== undefined) return { family: 6, host: c.value }
  return undefined
}

function isPublicIp (family: 4 | 6, host: string): boolean {
  try {
    return isPrivate(multiaddr(`/ip${family}/${host}/tcp/1`)) !== true
  } catch {
    return false
  }
}

/**
 * Decides the 'auto' relay switches from the listen addresses and the host's
 * interfaces: a node listening on a public IP of this host serves relays (it
 * is what NATed peers need) and reserves none; a node listening only on
 * private LAN addresses (a home behind a NAT) reserves a relay slot; a
 * loopback-only node (a local swarm, a test) does neither, so no relay
 * discovery (a DHT random walk) runs for nothing.
 */
export function natPlan (listen: string[], nat: NatOptions = {}, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): NatPlan {
  const hostIps: Array<{ family: 4 | 6, host: string }> = []
  for (const list of Object.values(interfaces)) {
    for (const i of list ?? []) {
      if (i.internal) continue
      hostIps.push({ family: i.family === 'IPv6' ? 6 : 4, host: i.address })
    }
  }
  let publicIp = false
  let lanIp = false
  for (const a of listen) {
    let ma: Multiaddr
    try {
      ma = multiaddr(a)
    } catch {
      continue
    }
    const ip = ipOf(ma)
    if (ip === undefined) continue
    const wildcard = ip.host === '0.0.0.0' || ip.host === '::'
    const candidates = wildcard ? hostIps.filter((h) => h.family === ip.family) : [ip]
    for (const c of candidates) {
      if (c.host.startsWith('127.') || c.host === '::1') continue
      if (c.family === 6 && /^fe80:/i.test(c.host)) continue
      if (isPublicIp(c.family, c.host)) publicIp = true
      else lanIp = true
    }
  }
  const server = nat.relayServer ?? NAT_DEFAULTS.relayServer
  const client = nat.relayClient ?? NAT_DEFAULTS.relayClient
  return {
    relayServer: server === 'auto' ? publicIp : server,
    relayClient: client === 'auto' ? !publicIp && lanIp : client
  }
}

/** A relayed address (…/p2p-circuit/…). */
export function isCircuit (ma: Multiaddr): boolean {
  return ma.getComponents().some((c) => c.name === 'p2p-circuit')
}

/** The address manager's view of one of our addresses (libp2p keeps it internal). */
export interface AddressInfo {
  multiaddr: Multiaddr
  verified: boolean
  type: string
}

/** Reachability from our addresses as libp2p's address manager holds them. */
export function reachabilityOf (addrs: AddressInfo[]): ReachabilityView {
  const publicAddrs = new Set<string>()
  const relayAddrs = new Set<string>()
  let unverifiedPublic = false
  for (const a of addrs) {
    if (isCircuit(a.multiaddr)) {
      relayAddrs.add(a.multiaddr.toString())
      continue
    }
    let priv: boolean
    try {
      priv = isPrivate(a.multiaddr) === true
    } catch {
      priv = true
    }
    if (priv) continue
    if (a.verified) publicAddrs.add(a.multiaddr.toString())
    else unverifiedPublic = true
  }
  const reachability: Reachability = publicAddrs.size > 0
    ? 'public'
    : relayAddrs.size > 0 ? 'relayed' : unverifiedPublic ? 'unknown' : 'private'
  return { reachability, publicAddrs: [...publicAddrs], relayAddrs: [...relayAddrs] }
}
