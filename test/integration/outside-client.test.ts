/**
 * A client nobody here wrote reaches the swarm's content: a plain Helia node,
 * built only from what `status --json` prints (`swarm`: transports, the pnet
 * key file, the private DHT protocol id; `multiaddrs`), joins a private
 * swarm and fetches a task's result CID over bitswap, byte for byte what
 * the worker holds.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHelia } from 'helia'
import { unixfs } from '@helia/unixfs'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { catContent } from '../../node/storage/index.js'
import { writeSwarmKeyFile } from '../../node/network/index.js'
import { RLC, ok, startSwarm, waitFor } from './market-helpers.js'
import type { OutsideClientFacts } from '../../node/api/backend.js'

const PRIMES = new URL('../../examples/apps/primes/primes.wasm', import.meta.url)

describe('outside client: a plain Helia node fetches a result from a private swarm with what status --json prints', function () {
  this.timeout(240_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  it('joins with the swarm key, the DHT protocol id and the transports, and fetches the result CID', async () => {
    const keys = await mkdtemp(join(tmpdir(), 'iexec-outside-'))
    cleanup.push(async () => { await rm(keys, { recursive: true, force: true }) })
    const swarmKeyFile = join(keys, 'swarm.key')
    await writeSwarmKeyFile(swarmKeyFile)
    const s = await startSwarm({ providers: 2, requesters: 1, market: { biddingWindowMs: 2_000 }, config: { swarmKeyFile } }, cleanup)
    const requester = s.requesters[0]
    const wasm = await readFile(PRIMES)
    const added = await ok(s.providers[0], 'POST', '/v1/content', { data: wasm.toString('base64') })
    await ok(s.providers[0], 'POST', '/v1/apps', { name: 'primes', cid: added.cid, checksum: added.checksum, price: '0' })
    await waitFor(async () => ((await ok(requester, 'GET', '/v1/orderbook?type=app')).orders as unknown[]).length === 1, 30_000, 'the app order at the requester')
    const deal = await ok(requester, 'POST', '/v1/tasks', { app: 'primes', args: '100', trust: 1, maxPrice: (10n * RLC).toString() })
    const dealId = String(deal.dealId)
    await waitFor(async () => ((await ok(requester, 'GET', `/v1/deals/${dealId}`)).tasks as Array<{ taskId: string, status: string }>)[0].status === 'COMPLETED', 120_000, 'the task COMPLETED')
    const taskId = ((await ok(requester, 'GET', `/v1/deals/${dealId}`)).tasks as Array<{ taskId: string }>)[0].taskId
    const cid = String((await ok(requester, 'GET', `/v1/tasks/${taskId}`)).resultCid)
    const worker = s.providers.find((p) => p.address.toLowerCase() === String((deal.workers as string[])[0]).toLowerCase())
    assert.ok(worker !== undefined)

    // everything the client knows comes from here
    const status = await ok(worker, 'GET', '/v1/status')
    const facts = status.swarm as OutsideClientFacts
    assert.equal(facts.swarmKeyFile, swarmKeyFile)
    assert.deepEqual([facts.transports, facts.connectionEncrypters, facts.streamMuxers], [['tcp', 'websockets', 'p2p-circuit'], ['noise'], ['yamux']])
    assert.match(facts.dhtProtocol, /^\/iexec-p2p\/[a-z0-9-]+\/kad\/1\.0\.0$/)
    assert.equal(Object.keys(facts.topics).length, 5)

    const client = await createHelia({
      // no public routers or gateways: the swarm is private
      routers: [],
      libp2p: {
        addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
        transports: [tcp()],
        connectionEncrypters: [noise()],
        streamMuxers: [yamux()],
        connectionProtector: preSharedKey({ psk: await readFile(facts.swarmKeyFile ?? '') }),
        peerDiscovery: [],
        services: {
          identify: identify(),
          ping: ping(),
          dht: kadDHT({ protocol: facts.dhtProtocol, clientMode: true, peerInfoMapper: passthroughMapper })
        }
      }
    })
    cleanup.push(async () => { await client.stop() })
    await client.start()
    await client.libp2p.dial(multiaddr((status.multiaddrs as string[])[0]))
    const parts: Uint8Array[] = []
    for await (const c of unixfs(client).cat(CID.parse(cid), { signal: AbortSignal.timeout(60_000) })) parts.push(c)
    const fetched = Buffer.concat(parts)
    const held: Uint8Array[] = []
    for await (const c of catContent(worker.network.helia, cid, { timeoutMs: 10_000 })) held.push(c)
    assert.ok(fetched.byteLength > 0)
    assert.ok(fetched.equals(Buffer.concat(held)), 'the outside client got the worker\'s bytes')

    // without the swarm key the same client cannot even connect
    const stranger = await createHelia({
      routers: [],
      libp2p: { addresses: { listen: [] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()], peerDiscovery: [], services: { identify: identify() } }
    })
    cleanup.push(async () => { await stranger.stop() })
    await stranger.start()
    await assert.rejects(stranger.libp2p.dial(multiaddr((status.multiaddrs as string[])[0]), { signal: AbortSignal.timeout(10_000) }))
  })
})
