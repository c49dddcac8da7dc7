import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import type { NetworkInterfaceInfo } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { KNOWN_PEERS_LIMITS, mergeKnownPeers, natPlan, parseMultiaddrs, reachabilityOf, readKnownPeers, writeKnownPeers, checkAnnounceAddrs } from '../../../node/network/index.js'
import type { KnownPeer } from '../../../node/network/index.js'
import { validateConfig } from '../../../node/config/config-file.js'
import { defaultNodeConfig } from '../../../node/config/options.js'

function iface (address: string, family: 'IPv4' | 'IPv6' = 'IPv4', internal = false): NetworkInterfaceInfo {
  return { address, family, internal, netmask: '255.255.255.0', mac: '00:00:00:00:00:00', cidr: null } as unknown as NetworkInterfaceInfo
}

const PEER_A = '12D3KooWGDB4jYhmcKjJs6Kv13stX28RYcjRUWxZjFmKiCcwnQnp'
const PEER_B = '12D3KooWDkkpn54vZrkz1nmKQ7v6RdRN7XcwzaDQXLYZUAA8hUgs'

describe('network: NAT plan, reachability, known peers', () => {
  describe('natPlan (the auto relay switches)', () => {
    const publicHost = { lo: [iface('127.0.0.1', 'IPv4', true)], eth0: [iface('45.0.0.1')] }
    const homeHost = { lo: [iface('127.0.0.1', 'IPv4', true)], eth0: [iface('192.168.1.20')] }

    it('a node listening on a public IP (directly or on 0.0.0.0) serves relays and reserves none', () => {
      assert.deepEqual(natPlan(['/ip4/0.0.0.0/tcp/4001'], {}, publicHost), { relayServer: true, relayClient: false })
      assert.deepEqual(natPlan(['/ip4/45.0.0.1/tcp/4001'], {}, publicHost), { relayServer: true, relayClient: false })
    })

    it('a node with only LAN addresses reserves a relay slot and serves none', () => {
      assert.deepEqual(natPlan(['/ip4/0.0.0.0/tcp/4001'], {}, homeHost), { relayServer: false, relayClient: true })
    })

    it('a loopback swarm does neither (no relay discovery runs for nothing)', () => {
      assert.deepEqual(natPlan(['/ip4/127.0.0.1/tcp/0'], {}, publicHost), { relayServer: false, relayClient: false })
    })

    it('explicit switches win over auto', () => {
      assert.deepEqual(natPlan(['/ip4/127.0.0.1/tcp/0'], { relayServer: true, relayClient: true }, homeHost), { relayServer: true, relayClient: true })
      assert.deepEqual(natPlan(['/ip4/0.0.0.0/tcp/4001'], { relayServer: false }, publicHost), { relayServer: false, relayClient: false })
    })
  })

  describe('reachabilityOf', () => {
    const a = (s: string, verified: boolean, type = 'transport'): { multiaddr: ReturnType<typeof multiaddr>, verified: boolean, type: string } => ({ multiaddr: multiaddr(s), verified, type })

    it('public once a public address is verified (AutoNAT) or announced', () => {
      const r = reachabilityOf([a('/ip4/127.0.0.1/tcp/4001', true), a('/ip4/45.0.0.1/tcp/4001', true)])
      assert.equal(r.reachability, 'public')
      assert.deepEqual(r.publicAddrs, ['/ip4/45.0.0.1/tcp/4001'])
    })

    it('unknown while the public address is not verified yet', () => {
      assert.equal(reachabilityOf([a('/ip4/45.0.0.1/tcp/4001', false)]).reachability, 'unknown')
    })

    it('relayed with a reservation and no public address; private with LAN addresses only', () => {
      const circuit = `/ip4/45.0.0.1/tcp/4001/p2p/${PEER_A}/p2p-circuit`
      const r = reachabilityOf([a('/ip4/10.1.0.2/tcp/4001', true), a(circuit, true)])
      assert.equal(r.reachability, 'relayed')
      assert.deepEqual(r.relayAddrs, [circuit])
      assert.equal(reachabilityOf([a('/ip4/10.1.0.2/tcp/4001', true)]).reachability, 'private')
    })
  })

  describe('addresses', () => {
    it('listen accepts TCP, TCP+WebSockets and /p2p-circuit; bootstrap accepts /dnsaddr names', () => {
      assert.equal(parseMultiaddrs(['/ip4/0.0.0.0/tcp/4001', '/ip4/0.0.0.0/tcp/4002/ws', '/p2p-circuit'], 'listen').length, 3)
      assert.equal(parseMultiaddrs(['/dnsaddr/bootstrap.example.org', `/dnsaddr/bootstrap.example.org/p2p/${PEER_A}`], 'bootstrap').length, 2)
    })

    it('refuses a bootstrap address without a peer id, a UDP listen address and a bad announce with BAD_MULTIADDR', () => {
      assert.throws(() => parseMultiaddrs(['/ip4/1.2.3.4/tcp/4001'], 'bootstrap'), { code: 'BAD_MULTIADDR' })
      assert.throws(() => parseMultiaddrs(['/ip4/0.0.0.0/udp/4001/quic-v1'], 'listen'), { code: 'BAD_MULTIADDR' })
      assert.throws(() => { checkAnnounceAddrs(['/ip4/1.2.3.4/udp/1']) }, { code: 'BAD_MULTIADDR' })
      assert.throws(() => { checkAnnounceAddrs(['not an address']) }, { code: 'BAD_MULTIADDR' })
      checkAnnounceAddrs(['/ip4/45.0.0.12/tcp/4001', '/dns4/node.example.org/tcp/443/ws'])
    })
  })

  describe('known peers file', () => {
    let dir = ''
    before(async () => { dir = await mkdtemp(join(tmpdir(), 'iexec-known-')) })
    after(async () => { await rm(dir, { recursive: true, force: true }) })

    it('round-trips, newest first, and a peer seen again replaces its entry', async () => {
      const file = join(dir, 'known-peers.json')
      const old: KnownPeer[] = [{ peerId: PEER_A, addrs: ['/ip4/45.0.0.1/tcp/4001'], lastSeen: 1 }]
      const merged = mergeKnownPeers(old, [{ peerId: PEER_B, addrs: ['/ip4/45.0.0.12/tcp/4001'], lastSeen: 5 }, { peerId: PEER_A, addrs: ['/ip4/45.0.0.1/tcp/4002'], lastSeen: 3 }])
      await writeKnownPeers(file, merged)
      const back = await readKnownPeers(file)
      assert.deepEqual(back.map((p) => p.peerId), [PEER_B, PEER_A])
      assert.deepEqual(back[1].addrs, ['/ip4/45.0.0.1/tcp/4002'])
    })

    it('is bounded: the most recently seen are kept', () => {
      const many: KnownPeer[] = Array.from({ length: 100 }, (_, i) => ({ peerId: i % 2 === 0 ? PEER_A : PEER_B, addrs: [`/ip4/45.0.0.${i}/tcp/1`], lastSeen: i }))
      assert.equal(mergeKnownPeers([], many, 1).length, 1)
      assert.equal(mergeKnownPeers([], many, 1)[0].lastSeen, 99)
      const addrs = Array.from({ length: 50 }, (_, i) => `/ip4/45.0.0.${i}/tcp/1`)
      assert.equal(mergeKnownPeers([], [{ peerId: PEER_A, addrs, lastSeen: 1 }])[0].addrs.length, KNOWN_PEERS_LIMITS.maxAddrsPerPeer)
    })

    it('hostile or broken content loses nothing else: bad entries dropped, a non-JSON file reads as none', async () => {
      const file = join(dir, 'hostile.json')
      await writeFile(file, JSON.stringify({
        peers: [
          { peerId: 'not-a-peer-id', addrs: ['/ip4/1.2.3.4/tcp/1'], lastSeen: 9 },
          { peerId: PEER_A, addrs: ['garbage', 42, '/ip4/45.0.0.1/tcp/4001'], lastSeen: 'yesterday' },
          { peerId: PEER_B, addrs: ['garbage'] },
          null,
          'text'
        ]
      }))
      const got = await readKnownPeers(file)
      assert.deepEqual(got, [{ peerId: PEER_A, addrs: ['/ip4/45.0.0.1/tcp/4001'], lastSeen: 0 }])
      await writeFile(file, '{ not json')
      assert.deepEqual(await readKnownPeers(file), [])
      assert.deepEqual(await readKnownPeers(join(dir, 'missing.json')), [])
      // written whole: no temp file left behind
      await writeKnownPeers(join(dir, 'w.json'), [])
      assert.deepEqual(JSON.parse(await readFile(join(dir, 'w.json'), 'utf8')), { peers: [] })
    })
  })

  describe('config: nat, announce, mdns, maxKnownPeers', () => {
    it('defaults: auto relays, hole punching and AutoNAT on, UPnP and mDNS off', () => {
      const c = validateConfig({})
      assert.deepEqual(c.nat, defaultNodeConfig().nat)
      assert.equal(c.nat.relayServer, 'auto')
      assert.equal(c.nat.upnp, false)
      assert.equal(c.mdns, false)
      assert.equal(c.maxKnownPeers, 64)
    })

    it('refuses unknown or ill-typed NAT settings with CONFIG_INVALID', () => {
      assert.throws(() => validateConfig({ nat: { relayServer: 'yes' } }), { code: 'CONFIG_INVALID' })
      assert.throws(() => validateConfig({ nat: { relay: true } }), { code: 'CONFIG_INVALID' })
      assert.throws(() => validateConfig({ nat: { relayDataLimitBytes: -1 } }), { code: 'CONFIG_INVALID' })
      assert.throws(() => validateConfig({ mdns: 'on' }), { code: 'CONFIG_INVALID' })
      assert.throws(() => validateConfig({ maxKnownPeers: 1e6 }), { code: 'CONFIG_INVALID' })
      assert.equal(validateConfig({ nat: { upnp: true } }).nat.upnp, true)
    })
  })
})
