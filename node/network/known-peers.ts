import { readFile } from 'node:fs/promises'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { writeFileDurable } from '../common/durable-file.js'

/**
 * Peers this node was connected to, kept in the data dir so that a restarted
 * node finds its swarm again without a bootstrap list: the peer store (level)
 * keeps every peer ever seen, but nothing in libp2p dials them at start.
 *
 * The file is ours, yet it is read as untrusted input (a disk error, an
 * editor, another version): an entry that does not parse is dropped, the
 * file is bounded in entries and addresses, and a file that is not JSON at
 * all is ignored (the node starts as if it had none).
 */

export interface KnownPeer {
  peerId: string
  /** addresses the peer was reached at (with no /p2p/ suffix of its own id) */
  addrs: string[]
  /** ms since the epoch */
  lastSeen: number
}

export const KNOWN_PEERS_LIMITS = {
  // enough to find a swarm again after a restart (the DHT finds the rest),
  // small enough to dial them all at start without a storm
  maxPeers: 64,
  maxAddrsPerPeer: 8,
  maxAddrLength: 512,
  // a file larger than this is not ours
  maxFileBytes: 1024 * 1024
} as const

function validPeer (v: unknown): KnownPeer | undefined {
  if (typeof v !== 'object' || v === null) return undefined
  const o = v as Record<string, unknown>
  if (typeof o.peerId !== 'string' || o.peerId.length > 128) return undefined
  try {
    peerIdFromString(o.peerId)
  } catch {
    return undefined
  }
  if (!Array.isArray(o.addrs)) return undefined
  const addrs: string[] = []
  for (const a of o.addrs.slice(0, KNOWN_PEERS_LIMITS.maxAddrsPerPeer)) {
    if (typeof a !== 'string' || a.length > KNOWN_PEERS_LIMITS.maxAddrLength) continue
    try {
      multiaddr(a)
      addrs.push(a)
    } catch {}
  }
  if (addrs.length === 0) return undefined
  const lastSeen = typeof o.lastSeen === 'number' && Number.isFinite(o.lastSeen) ? o.lastSeen : 0
  return { peerId: o.peerId, addrs, lastSeen }
}

/** Reads the known peers; a missing, oversized or broken file gives none. Newest first. */
export async function readKnownPeers (file: string): Promise<KnownPeer[]> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    return []
  }
  if (text.length > KNOWN_PEERS_LIMITS.maxFileBytes) return []
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return []
  }
  const list = (parsed as { peers?: unknown })?.peers
  if (!Array.isArray(list)) return []
  const out = new Map<string, KnownPeer>()
  for (const v of list.slice(0, KNOWN_PEERS_LIMITS.maxPeers * 2)) {
    const p = validPeer(v)
    if (p !== undefined && !out.has(p.peerId)) out.set(p.peerId, p)
  }
  return [...out.values()].sort((a, b) => b.lastSeen - a.lastSeen).slice(0, KNOWN_PEERS_LIMITS.maxPeers)
}

/**
 * Merges peers seen now over the ones known (a peer seen now replaces its
 * old entry), keeps the `max` most recently seen and writes them durably.
 */
export function mergeKnownPeers (known: KnownPeer[], seen: KnownPeer[], max: number = KNOWN_PEERS_LIMITS.maxPeers): KnownPeer[] {
  const byId = new Map<string, KnownPeer>()
  for (const p of known) byId.set(p.peerId, p)
  for (const p of seen) {
    const addrs = [...new Set(p.addrs)].slice(0, KNOWN_PEERS_LIMITS.maxAddrsPerPeer)
    if (addrs.length > 0) byId.set(p.peerId, { ...p, addrs })
  }
  return [...byId.values()].sort((a, b) => b.lastSeen - a.lastSeen).slice(0, Math.max(0, max))
}

export async function writeKnownPeers (file: string, peers: KnownPeer[]): Promise<void> {
  await writeFileDurable(file, JSON.stringify({ peers }, null, 1) + '\n', { mode: 0o600, tmp: `${file}.${process.pid}.tmp` })
}
