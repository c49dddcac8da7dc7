import assert from 'node:assert/strict'
import { mkdtemp, rm, readFile, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IexecNode } from '../../node/node.js'
import { initDataDir, dataDirPaths } from '../../node/config/index.js'
import { Repository, jsonCodec } from '../../node/db/index.js'
import { isIexecError } from '../../node/common/errors.js'
import { freePort } from '../../node/chain/local-chain.js'
import { waitFor } from '../helpers/wait.js'

describe('IexecNode (2 nodes, real data dirs)', function () {
  const cleanup: Array<() => Promise<void>> = []
  let root: string

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'iexec-node-'))
    cleanup.push(async () => { await rm(root, { recursive: true, force: true }) })
  })

  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  async function makeNode (name: string, init: Partial<Parameters<typeof IexecNode.create>[0]> = {}, config: Record<string, unknown> = {}): Promise<IexecNode> {
    const dataDir = join(root, name)
    await initDataDir({ dataDir, devUnprotectedKey: true, config: { swarmId: 'test', advertIntervalMs: 60_000, ...config } })
    const node = await IexecNode.create({ dataDir, ...init })
    cleanup.push(async () => { await node.stop() })
    return node
  }

  it('starts, serves the API with its token, sees its peer, lists resources and stops cleanly', async () => {
    const a = await makeNode('a', {}, { tags: ['region:eu'], cpus: 2 })
    await a.start()
    const b = await makeNode('b', { bootstrap: [a.multiaddrs()[0]], requester: true })
    await b.start()
    assert.equal(a.warnings.length, 1, 'an unprotected dev key is reported')

    const info = JSON.parse(await readFile(dataDirPaths(a.dataDir).apiInfo, 'utf8')) as { url: string, pid: number, peerId: string }
    assert.equal(info.url, a.apiUrl())
    assert.equal(info.peerId, a.peerId)
    assert.equal(info.pid, process.pid)

    await waitFor(() => b.status().connections > 0, 10_000, 'b connected to a')
    const peers = await b.peers()
    assert.deepEqual(peers.map((p) => p.peerId), [a.peerId])
    assert.equal(typeof peers[0].latencyMs, 'number')

    // a publishes its advert once its (empty) bootstrap settles; b finds it through the DHT
    await waitFor(() => a.adverts.lastPublished() !== undefined, 20_000, 'a advert published')
    const found = await b.resources({ category: 0 })
    assert.equal(found.length, 1)
    assert.equal(found[0].peerId, a.peerId)
    assert.equal(found[0].address, a.address)
    assert.equal(found[0].cpus, 2)
    assert.deepEqual(found[0].tags, ['region:eu'])
    assert.deepEqual(await b.resources({ category: 0, tags: ['region:us'] }), [])
    assert.equal(b.adverts.lastPublished(), undefined, 'a requester does not advertise')
    assert.deepEqual(b.status().bootstrap.map((s) => s.state), ['connected'])

    // nothing of the public IPFS network: only the swarm's own DHT protocol
    const protocols = a.network.helia.libp2p.getProtocols()
    assert.ok(protocols.includes('/iexec-p2p/test/kad/1.0.0'), 'swarm-private DHT protocol')
    assert.ok(!protocols.includes('/ipfs/kad/1.0.0'), 'no public IPFS DHT')
    // NAT traversal is libp2p's own (issue 27): a loopback-only node dials through relays and
    // answers AutoNAT and DCUtR, but serves no relay (the hop protocol) to anyone
    assert.ok(protocols.includes('/libp2p/autonat/1.0.0') && protocols.includes('/libp2p/dcutr'), protocols.join(','))
    assert.ok(!protocols.includes('/libp2p/circuit/relay/0.2.0/hop'), 'a loopback-only node serves no relay')

    const token = (await readFile(dataDirPaths(a.dataDir).apiToken, 'utf8')).trim()
    const ok = await fetch(`${a.apiUrl()}/v1/status`, { headers: { authorization: `Bearer ${token}` } })
    assert.equal(ok.status, 200)
    const status = await ok.json() as { peerId: string }
    assert.equal(status.peerId, a.peerId)
    const denied = await fetch(`${a.apiUrl()}/v1/status`, { headers: { authorization: 'Bearer wrong' } })
    assert.equal(denied.status, 401)

    await a.stop()
    await a.stop() // idempotent
    await assert.rejects(stat(dataDirPaths(a.dataDir).apiInfo), { code: 'ENOENT' })
    await a.whenStopped()
  })

  it('keeps peer id, address and stored data across a restart', async () => {
    const dataDir = join(root, 'r')
    const init = await initDataDir({ dataDir, password: 'pw', config: { swarmId: 'test' } })
    const first = await IexecNode.create({ dataDir, password: 'pw' })
    cleanup.push(async () => { await first.stop() })
    await first.start()
    assert.equal(first.peerId, init.peerId)
    assert.equal(first.address, init.address)
    await new Repository(first.db, 'note', jsonCodec<{ n: number }>()).put('k', { n: 42 })
    // a second node on the same data dir is refused while the first runs
    const rival = await IexecNode.create({ dataDir, password: 'pw' })
    cleanup.push(async () => { await rival.stop() })
    await assert.rejects(rival.start(), (e: unknown) => isIexecError(e, 'DB_OPEN_FAILED'))
    assert.equal(first.status().peerId, init.peerId)
    const info = JSON.parse(await readFile(dataDirPaths(dataDir).apiInfo, 'utf8')) as { url: string }
    assert.equal(info.url, first.apiUrl(), 'the refused rival left the running node\'s api.json alone')
    await first.stop()

    const second = await IexecNode.create({ dataDir, password: 'pw' })
    cleanup.push(async () => { await second.stop() })
    await second.start()
    assert.equal(second.peerId, init.peerId)
    assert.equal(second.address, init.address)
    assert.deepEqual(await new Repository(second.db, 'note', jsonCodec<{ n: number }>()).get('k'), { n: 42 })
  })

  it('starts despite an unreachable bootstrap peer, and reports it in status and node.log', async () => {
    const ghost = await makeNode('ghost')
    const ghostPeer = ghost.peerId
    const node = await makeNode('lonely', { bootstrap: [`/ip4/127.0.0.1/tcp/${await freePort()}/p2p/${ghostPeer}`] })
    await node.start()
    await node.network.bootstrapSettled()
    const [b] = node.status().bootstrap
    assert.equal(b.state, 'failed')
    assert.equal(b.peerId, ghostPeer)
    const log = await readFile(dataDirPaths(node.dataDir).logs, 'utf8')
    assert.match(log, /"msg":"bootstrap peer unreachable"/)
    assert.match(log, /"msg":"node started"/)
  })

  it('refuses an uninitialised data dir and a locked wallet with typed codes', async () => {
    await assert.rejects(IexecNode.create({ dataDir: join(root, 'none') }), (e: unknown) => isIexecError(e, 'DATA_DIR_NOT_INITIALIZED'))
    const dataDir = join(root, 'locked')
    await initDataDir({ dataDir, password: 'secret' })
    await assert.rejects(IexecNode.create({ dataDir }), (e: unknown) => isIexecError(e, 'WALLET_LOCKED'))
    await assert.rejects(IexecNode.create({ dataDir, password: 'nope' }), (e: unknown) => isIexecError(e, 'WALLET_BAD_PASSWORD'))
    await assert.rejects(IexecNode.create({ dataDir, password: 'secret', cpus: -1 }), (e: unknown) => isIexecError(e, 'CONFIG_INVALID'))
  })
})
