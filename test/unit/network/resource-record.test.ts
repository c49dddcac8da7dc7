import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Wallet } from 'ethers'
import {
  signResourceRecord, verifyResourceRecord, validateResourceRecord, RESOURCE_RECORD_MAX_BYTES, compareResourceRecords
} from '../../../protocols/resource-record.js'
import type { ResourceRecord } from '../../../protocols/resource-record.js'
import { resourceDhtRules } from '../../../node/network/index.js'
import { resourceKey, peerIdOfResourceKey, categoryCid, topic, dhtProtocol } from '../../../protocols/topics.js'
import { isIexecError } from '../../../node/common/errors.js'

const code = (c: string) => (e: unknown): boolean => isIexecError(e, c)
const enc = new TextEncoder()
const dec = new TextDecoder()

async function fixture (): Promise<{ key: Awaited<ReturnType<typeof generateKeyPair>>, wallet: Wallet, record: ResourceRecord }> {
  const key = await generateKeyPair('Ed25519')
  const wallet = Wallet.createRandom() as unknown as Wallet
  const record: ResourceRecord = {
    peerId: peerIdFromPrivateKey(key).toString(),
    address: wallet.address,
    cpus: 4,
    memoryMb: 8192,
    gpus: 0,
    executors: ['wasi'],
    category: 1,
    priceFloor: '1000000000',
    version: '0.1.0',
    tags: ['region:eu', 'energy:green'],
    timestamp: 1_700_000_000_000,
    seq: 1_700_000_000_000
  }
  return { key, wallet, record }
}

describe('protocols: resource record', function () {
  it('round-trips a signed record and binds peer id and address', async () => {
    const { key, wallet, record } = await fixture()
    const bytes = await signResourceRecord(record, key, wallet)
    assert.ok(bytes.length < RESOURCE_RECORD_MAX_BYTES)
    assert.deepEqual(await verifyResourceRecord(bytes, record.peerId), record)
  })

  it('rejects a forged peer signature, a forged Ethereum signature and a tampered payload', async () => {
    const { key, wallet, record } = await fixture()
    const wire = JSON.parse(dec.decode(await signResourceRecord(record, key, wallet))) as { payload: string, peerSig: string, ethSig: string }

    // another key signs: the peer signature no longer matches the record's peer id
    const other = await generateKeyPair('Ed25519')
    const forgedPeer = { ...wire, peerSig: Buffer.from(await other.sign(enc.encode('iexec-p2p/resource-record/1\n' + wire.payload))).toString('base64') }
    await assert.rejects(verifyResourceRecord(enc.encode(JSON.stringify(forgedPeer))), code('RECORD_BAD_PEER_SIGNATURE'))

    // another wallet signs the same bytes: the address binding breaks
    const thief = Wallet.createRandom()
    const forgedEth = { ...wire, ethSig: await thief.signMessage(enc.encode('iexec-p2p/resource-record/1\n' + wire.payload)) }
    await assert.rejects(verifyResourceRecord(enc.encode(JSON.stringify(forgedEth))), code('RECORD_BAD_ETH_SIGNATURE'))

    // a cheaper price written into the signed payload
    const tampered = { ...wire, payload: wire.payload.replace('"priceFloor":"1000000000"', '"priceFloor":"1"') }
    await assert.rejects(verifyResourceRecord(enc.encode(JSON.stringify(tampered))), code('RECORD_BAD_PEER_SIGNATURE'))
  })

  it('rejects a record under another peer id, oversize, malformed or out-of-limits input', async () => {
    const { key, wallet, record } = await fixture()
    const bytes = await signResourceRecord(record, key, wallet)
    const otherId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    await assert.rejects(verifyResourceRecord(bytes, otherId), code('RECORD_PEER_MISMATCH'))
    // signing with a key that is not the record's peer
    await assert.rejects(signResourceRecord({ ...record, peerId: otherId }, key, wallet), code('RECORD_PEER_MISMATCH'))

    await assert.rejects(verifyResourceRecord(new Uint8Array(RESOURCE_RECORD_MAX_BYTES + 1)), code('RECORD_TOO_LARGE'))
    await assert.rejects(verifyResourceRecord(enc.encode('not json')), code('RECORD_MALFORMED'))
    await assert.rejects(verifyResourceRecord(enc.encode('{"payload":1}')), code('RECORD_MALFORMED'))
    // 17 tags: over the limit of 16
    await assert.rejects(signResourceRecord({ ...record, tags: Array.from({ length: 17 }, (_, i) => `t${i}`) }, key, wallet), code('RECORD_INVALID'))
    assert.throws(() => validateResourceRecord({ ...record, cpus: -1 }), (e: unknown) => isIexecError(e, 'RECORD_INVALID') && e.details?.field === 'cpus')
    assert.throws(() => validateResourceRecord({ ...record, peerId: 'QmNotAPeer' }), code('RECORD_INVALID'))
    assert.throws(() => validateResourceRecord({ ...record, extra: 1 }), code('RECORD_INVALID'))
    assert.throws(() => validateResourceRecord({ ...record, priceFloor: '1.5' }), code('RECORD_INVALID'))
  })

  it('DHT rules: the validator checks key ownership and signatures, the selector keeps the newest', async () => {
    const { key, wallet, record } = await fixture()
    const { validators, selectors } = resourceDhtRules()
    const validate = validators['iexec-res']
    const select = selectors['iexec-res']
    const older = await signResourceRecord(record, key, wallet)
    const newer = await signResourceRecord({ ...record, seq: record.seq + 1, timestamp: record.timestamp + 5 }, key, wallet)
    await validate(resourceKey(record.peerId), newer)
    const otherId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    await assert.rejects(async () => { await validate(resourceKey(otherId), newer) }, code('RECORD_PEER_MISMATCH'))
    assert.equal(await select(resourceKey(record.peerId), [older, newer, enc.encode('junk')]), 1)
    assert.equal(await select(resourceKey(record.peerId), [newer, older]), 0)
    assert.ok(compareResourceRecords(record, { ...record, seq: record.seq + 1 }) < 0)
  })

  it('topic and key helpers are swarm-scoped', async () => {
    assert.equal(topic('dev', 'bid'), '/iexec-p2p/dev/bid/1')
    assert.equal(dhtProtocol('dev'), '/iexec-p2p/dev/kad/1.0.0')
    assert.equal(peerIdOfResourceKey(resourceKey('12D3KooWabc')), '12D3KooWabc')
    assert.equal(peerIdOfResourceKey(enc.encode('/pk/abc')), undefined)
    assert.notEqual((await categoryCid('a', 0)).toString(), (await categoryCid('b', 0)).toString())
    assert.notEqual((await categoryCid('a', 0)).toString(), (await categoryCid('a', 1)).toString())
  })
})
