import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import type { Server } from 'node:net'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createNetwork, writeSwarmKeyFile } from '../../node/network/index.js'
import type { Network, NetworkOptions } from '../../node/network/index.js'
import { freePort } from '../../node/chain/local-chain.js'
import { isIexecError } from '../../node/common/errors.js'

const code = (c: string) => (e: unknown): boolean => isIexecError(e, c)

describe('network: bad input gets a typed error', function () {
  const cleanup: Array<() => Promise<void>> = []
  let root: string

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'iexec-neterr-'))
    cleanup.push(async () => { await rm(root, { recursive: true, force: true }) })
  })
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  async function options (over: Partial<NetworkOptions> = {}): Promise<NetworkOptions> {
    return { privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], swarmId: 'errs', ...over }
  }

  async function started (over: Partial<NetworkOptions> = {}): Promise<Network> {
    const net = await createNetwork(await options(over))
    cleanup.push(async () => { await net.stop() })
    await net.start()
    return net
  }

  it('BAD_MULTIADDR for a malformed listen or bootstrap address, or a bootstrap address without a peer id', async () => {
    await assert.rejects(createNetwork(await options({ listen: ['/ip4/999.1.1.1/tcp/1'] })), code('BAD_MULTIADDR'))
    await assert.rejects(createNetwork(await options({ listen: ['not-an-address'] })), code('BAD_MULTIADDR'))
    await assert.rejects(createNetwork(await options({ listen: ['/ip4/127.0.0.1/udp/1/quic-v1'] })), code('BAD_MULTIADDR'))
    await assert.rejects(createNetwork(await options({ bootstrap: ['/ip4/127.0.0.1/tcp/4001'] })), code('BAD_MULTIADDR'))
    await assert.rejects(createNetwork(await options({ bootstrap: ['/ip4/127.0.0.1/tcp/x/p2p/abc'] })), code('BAD_MULTIADDR'))
  })

  it('SWARM_KEY_MISSING for a missing key file and SWARM_KEY_INVALID for a malformed one', async () => {
    await assert.rejects(createNetwork(await options({ swarmKeyFile: join(root, 'nope.key') })), code('SWARM_KEY_MISSING'))
    const bad = join(root, 'bad.key')
    await writeFile(bad, '/key/swarm/psk/1.0.0/\n/base16/\nnothex\n')
    await assert.rejects(createNetwork(await options({ swarmKeyFile: bad })), code('SWARM_KEY_INVALID'))
    const good = join(root, 'good.key')
    await writeSwarmKeyFile(good)
    const net = await started({ swarmKeyFile: good })
    assert.equal(net.started, true)
  })

  it('LISTEN_PORT_IN_USE when another process holds the port, and nothing stays half-started', async () => {
    const port = await freePort()
    const blocker: Server = createServer()
    await new Promise<void>((resolve, reject) => { blocker.once('error', reject); blocker.listen(port, '127.0.0.1', resolve) })
    cleanup.push(async () => { await new Promise<void>((resolve) => blocker.close(() => { resolve() })) })
    const net = await createNetwork(await options({ listen: [`/ip4/127.0.0.1/tcp/${port}`] }))
    cleanup.push(async () => { await net.stop() })
    await assert.rejects(net.start(), code('LISTEN_PORT_IN_USE'))
    assert.equal(net.started, false)
  })

  it('an unreachable bootstrap peer does not stop the node: it is reported as failed', async () => {
    const ghost = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    // a port nobody listens on: the dial is refused at once
    const deadPort = await freePort()
    const warnings: string[] = []
    const logger = { info: () => {}, warn: (msg: string) => { warnings.push(msg) } }
    const net = await started({ bootstrap: [`/ip4/127.0.0.1/tcp/${deadPort}/p2p/${ghost}`], logger })
    assert.equal(net.started, true)
    assert.ok(net.multiaddrs().length > 0)
    const [status] = await net.bootstrapSettled()
    assert.equal(status.state, 'failed')
    assert.equal(status.peerId, ghost)
    assert.ok((status.error ?? '').length > 0)
    assert.deepEqual(warnings, ['bootstrap peer unreachable'], 'the operator is told')
    // the node still works: another node can connect to it
    const other = await started({ bootstrap: [net.multiaddrs()[0]] })
    const [ok] = await other.bootstrapSettled()
    assert.equal(ok.state, 'connected')
  })

  it('BAD_PEER_ID and NETWORK_NOT_STARTED for misuse', async () => {
    const net = await createNetwork(await options())
    cleanup.push(async () => { await net.stop() })
    assert.throws(() => net.multiaddrs(), code('NETWORK_NOT_STARTED'))
    await net.start()
    await assert.rejects(net.dialProtocol('not-a-peer-id', '/x/1'), code('BAD_PEER_ID'))
  })
})
