import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { IexecNode } from '../../node/node.js'
import { initDataDir } from '../../node/config/index.js'
import { writeSwarmKeyFile } from '../../node/network/index.js'
import { topic } from '../../protocols/topics.js'
import { waitFor } from '../helpers/wait.js'

const SWARM = 'itest'

describe('network: a private swarm of 5 nodes in one process', function () {
  this.timeout(120_000)
  const cleanup: Array<() => Promise<void>> = []
  let root: string
  let swarmKey: string

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'iexec-net-'))
    cleanup.push(async () => { await rm(root, { recursive: true, force: true }) })
    swarmKey = join(root, 'swarm.key')
    await writeSwarmKeyFile(swarmKey)
  })

  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  async function startNode (name: string, opts: { bootstrap?: string[], tags?: string[], swarmKeyFile?: string, category?: number } = {}): Promise<IexecNode> {
    const dataDir = join(root, name)
    await initDataDir({ dataDir, devUnprotectedKey: true, config: { swarmId: SWARM, tags: opts.tags ?? [], category: opts.category ?? 0, advertIntervalMs: 60_000 } })
    const node = await IexecNode.create({ dataDir, swarmKeyFile: opts.swarmKeyFile ?? swarmKey, bootstrap: opts.bootstrap ?? [] })
    cleanup.push(async () => { await node.stop() })
    await node.start()
    return node
  }

  // node 0 first; each later node bootstraps to node 0 and to its predecessor
  async function startSwarm (n: number): Promise<IexecNode[]> {
    const nodes: IexecNode[] = []
    for (let i = 0; i < n; i++) {
      const bootstrap = i === 0 ? [] : [...new Set([nodes[0].multiaddrs()[0], nodes[i - 1].multiaddrs()[0]])]
      nodes.push(await startNode(`n${i}`, { bootstrap, tags: i % 2 === 0 ? ['energy:green', 'region:eu'] : ['region:us'] }))
    }
    for (const node of nodes) {
      await node.network.bootstrapSettled()
      await waitFor(() => node.adverts.lastPublished() !== undefined, 30_000, `${node.peerId} advert`)
    }
    return nodes
  }

  it('every node finds every provider of the category through the DHT, and tags filter them', async () => {
    const nodes = await startSwarm(5)
    const all = nodes.map((n) => n.peerId).sort()
    const green = nodes.filter((_, i) => i % 2 === 0).map((n) => n.peerId).sort()
    for (const node of nodes) {
      const found = await node.resources({ category: 0 })
      assert.deepEqual(found.map((r) => r.peerId).sort(), all, `lookup from ${node.peerId}`)
      for (const r of found) {
        const owner = nodes.find((n) => n.peerId === r.peerId)
        assert.equal(r.address, owner?.address, 'record binds the peer id to its wallet address')
      }
      const greens = await node.resources({ category: 0, tags: ['energy:green'] })
      assert.deepEqual(greens.map((r) => r.peerId).sort(), green)
      assert.deepEqual(await node.resources({ category: 7 }), [], 'nobody provides category 7')
    }
    // one provider by its wallet address: its address CID, then its advert alone
    for (const [i, node] of nodes.entries()) {
      const other = nodes[(i + 2) % nodes.length]
      const r = await node.adverts.findByAddress(other.address.toLowerCase())
      assert.equal(r?.peerId, other.peerId, `${node.peerId} finds ${other.address}`)
      assert.equal(r?.address, other.address)
    }
    assert.equal(await nodes[0].adverts.findByAddress('0x' + '77'.repeat(20)), undefined, 'an address nobody advertises')
  })

  it('a gossip message published by one node reaches the four others; an outsider with another swarm key gets nothing', async () => {
    const nodes = await startSwarm(5)
    const otherKey = join(root, 'other.key')
    await writeSwarmKeyFile(otherKey)
    const outsider = await startNode('outsider', { swarmKeyFile: otherKey, bootstrap: [nodes[0].multiaddrs()[0]] })
    const [status] = await outsider.network.bootstrapSettled()
    assert.equal(status.state, 'failed', 'pnet refuses a peer with another key')
    await assert.rejects(outsider.network.dial(nodes[1].multiaddrs()[0], { signal: AbortSignal.timeout(10_000) }))
    assert.equal(outsider.status().connections, 0)

    const t = topic(SWARM, 'requestorder')
    const received = new Map<string, string[]>()
    for (const node of [...nodes, outsider]) {
      received.set(node.peerId, [])
      node.network.subscribe(t, (msg) => { received.get(node.peerId)?.push(new TextDecoder().decode(msg.data) + '@' + msg.from) })
    }
    const publisher = nodes[2]
    // wait until the subscriptions have propagated to each node's neighbours
    await waitFor(() => nodes.every((n) => n.network.topicPeers(t).length > 0), 10_000, 'topic subscriptions exchanged')
    await publisher.network.publish(t, new TextEncoder().encode('hello'))
    const others = nodes.filter((n) => n !== publisher)
    await waitFor(() => others.every((n) => (received.get(n.peerId)?.length ?? 0) > 0), 10_000, 'gossip delivery to all four')
    for (const n of others) assert.deepEqual(received.get(n.peerId), [`hello@${publisher.peerId}`])
    assert.deepEqual(received.get(publisher.peerId), [], 'no self-delivery')
    assert.deepEqual(received.get(outsider.peerId), [], 'the outsider received nothing')
    assert.equal(outsider.status().connections, 0)
  })

  it('a restarted node keeps its peer id, address and blocks, and rejoins the DHT', async () => {
    const nodes = await startSwarm(3)
    const target = nodes[2]
    const bytes = new TextEncoder().encode('kept across restarts')
    const cid = CID.createV1(raw.code, await sha256.digest(bytes))
    await target.network.helia.blockstore.put(cid, bytes)
    const { peerId, address, dataDir } = target
    await target.stop()
    await waitFor(() => nodes[0].status().connections === 1, 10_000, 'node 0 sees the drop')

    const again = await IexecNode.create({ dataDir, swarmKeyFile: swarmKey, bootstrap: [nodes[0].multiaddrs()[0]] })
    cleanup.push(async () => { await again.stop() })
    await again.start()
    assert.equal(again.peerId, peerId)
    assert.equal(again.address, address)
    assert.equal(await again.network.helia.blockstore.has(cid), true, 'block store survived the restart')
    await waitFor(() => again.adverts.lastPublished() !== undefined, 30_000, 'advert republished')
    const found = await nodes[0].resources({ category: 0 })
    assert.ok(found.some((r) => r.peerId === peerId), 'the restarted provider is found again')
  })
})
