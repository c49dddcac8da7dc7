import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Wallet } from 'ethers'
import { ResourceAdverts } from '../../node/network/index.js'
import type { Network } from '../../node/network/index.js'
import { signResourceRecord } from '../../protocols/resource-record.js'
import type { ResourceRecord } from '../../protocols/resource-record.js'
import { resourceRecordProtocol } from '../../protocols/topics.js'
import { startLoopbackNetwork } from '../helpers/loopback-network.js'
import { waitFor } from '../helpers/wait.js'

const SWARM = 'advert-fetch-itest'
const RESOURCES = { cpus: 1, memoryMb: 512, gpus: 0, executors: ['wasi'], category: 0, priceFloor: '0', tags: [], version: '0.1.0' }

/**
 * A requester reads each provider's record from the provider itself
 * (resourceRecordProtocol), else from the DHT. Real libp2p nodes on
 * loopback: one honest provider whose DHT puts are dropped (found only by
 * asking it), and three hostile providers answering another peer's record,
 * bytes that are no record, or nothing: each is listed with its own record
 * from the DHT, never with what it answered.
 */
describe('network: a provider answers its own record; a hostile answer falls back to the DHT', function () {
  this.timeout(240_000)
  const cleanup: Array<() => Promise<void>> = []
  after(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {})
  })

  async function startNetwork (privateKey: PrivateKey, bootstrap: string[]): Promise<Network> {
    return await startLoopbackNetwork({ privateKey, bootstrap, swarmId: SWARM }, cleanup)
  }

  function adverts (network: Network, privateKey: PrivateKey, publish: boolean, logs?: string[]): ResourceAdverts {
    const a = new ResourceAdverts({
      network, swarmId: SWARM, privateKey, wallet: Wallet.createRandom(), publish, intervalMs: 10 * 60_000,
      // five nodes in one process on a shared machine
      lookupTimeoutMs: 60_000,
      resources: RESOURCES,
      ...(logs !== undefined ? { logger: { info: (msg, f) => logs.push(`${msg} ${JSON.stringify(f ?? {})}`), warn: (msg, f) => logs.push(`${msg} ${JSON.stringify(f ?? {})}`) } } : {})
    })
    cleanup.push(async () => { await a.stop() })
    return a
  }

  /** Replaces a provider's answer on the record protocol with a hostile one. */
  async function answerWith (net: Network, answer: (stream: Stream) => Promise<void>): Promise<void> {
    await net.unhandle(resourceRecordProtocol(SWARM))
    await net.handle(resourceRecordProtocol(SWARM), async (stream) => {
      try { await answer(stream) } catch (err) { stream.abort(err instanceof Error ? err : new Error(String(err))) }
    })
  }

  it('lists the honest provider from its own answer and each hostile one with its DHT record', async () => {
    const keys = await Promise.all(Array.from({ length: 5 }, async () => await generateKeyPair('Ed25519')))
    const [readerKey, honestKey, replayKey, garbageKey, silentKey] = keys
    const reader = await startNetwork(readerKey, [])
    const nets: Network[] = [reader]
    for (const key of keys.slice(1)) nets.push(await startNetwork(key, [reader.multiaddrs()[0], nets.at(-1)?.multiaddrs()[0] ?? reader.multiaddrs()[0]]))
    for (const net of nets) {
      await net.bootstrapSettled()
      assert.ok(await net.waitForDhtPeers(1, 60_000), `${net.peerId} has DHT peers`)
    }
    const [, honestNet, replayNet, garbageNet, silentNet] = nets

    // the honest provider's record never reaches the DHT: only its own answer can list it
    const dropPuts = Object.create(honestNet) as Network
    dropPuts.dhtPut = async () => {}
    const honest = adverts(dropPuts, honestKey, true)
    const hostile = [adverts(replayNet, replayKey, true), adverts(garbageNet, garbageKey, true), adverts(silentNet, silentKey, true)]
    await Promise.all([honest, ...hostile].map(async (a) => { await a.start() }))
    await waitFor(() => [honest, ...hostile].every((a) => a.lastPublished() !== undefined), 120_000, 'every provider published')

    // another peer's valid record, replayed; bytes that are no record; a stream left open and silent
    // (a record valid in itself: its own peer and wallet signatures)
    const stranger = await generateKeyPair('Ed25519')
    const strangerWallet = Wallet.createRandom()
    const strangerRecord: ResourceRecord = { ...(honest.lastPublished() as ResourceRecord), peerId: peerIdFromPrivateKey(stranger).toString(), address: strangerWallet.address, seq: Date.now() + 1 }
    const strangerBytes = await signResourceRecord(strangerRecord, stranger, strangerWallet)
    await answerWith(replayNet, async (stream) => {
      await lpStream(stream).write(strangerBytes)
      await stream.close()
    })
    await answerWith(garbageNet, async (stream) => {
      await lpStream(stream).write(new TextEncoder().encode('{"not":"a record"}'))
      await stream.close()
    })
    const silent = new Set<Stream>()
    await answerWith(silentNet, async (stream) => { silent.add(stream) })
    cleanup.push(async () => { for (const s of silent) s.abort(new Error('test over')) })

    const logs: string[] = []
    const lookup = adverts(reader, readerKey, false, logs)
    const expected = new Map([honest, ...hostile].map((a) => [a.lastPublished()?.peerId as string, a.lastPublished() as ResourceRecord]))
    let found: ResourceRecord[] = []
    await waitFor(async () => {
      found = await lookup.findResources({ category: 0 })
      return found.length === expected.size
    }, 120_000, 'the reader lists the four providers', 500).catch(() => {})
    assert.deepEqual(found.map((r) => r.peerId).sort(), [...expected.keys()].sort(), `four providers listed (logs: ${logs.join('; ')})`)
    for (const r of found) {
      const own = expected.get(r.peerId) as ResourceRecord
      assert.equal(r.address, own.address, 'each provider with its own wallet')
      assert.equal(r.seq, own.seq, 'each provider with the record it signed')
    }
    // the three hostile answers were refused and the DHT read instead; the honest one was taken
    for (const net of [replayNet, garbageNet, silentNet]) {
      assert.ok(logs.some((l) => l.startsWith('provider did not answer its record') && l.includes(net.peerId)), `${net.peerId}'s answer refused`)
    }
    assert.ok(!logs.some((l) => l.startsWith('provider did not answer its record') && l.includes(honestNet.peerId)), 'the honest answer taken')
    assert.ok(silent.size > 0, 'the silent provider was asked')
  })
})
