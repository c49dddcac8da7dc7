import assert from 'node:assert/strict'
import { DatasetKeyResolver } from '../../../node/storage/dataset-key-resolver.js'
import type { DatasetKeyResolverInit } from '../../../node/storage/dataset-key-resolver.js'
import { DatasetKey, MemoryKeyStore } from '../../../node/storage/key-store.js'
import { isIexecError } from '../../../node/common/errors.js'

const SELF = '0x00000000000000000000000000000000000000Aa'
const DATASET = '0x00000000000000000000000000000000000000d5'
const request = { dataset: DATASET, dealid: '0x' + '11'.repeat(32), idx: 0, authorization: '0x' }

/** A resolver whose network must not be used: the own-dataset path reads the key store only. */
function resolver (owner: string, keyStore = new MemoryKeyStore()): { r: DatasetKeyResolver, asked: string[] } {
  const asked: string[] = []
  const offLimits = new Proxy({}, { get: (_t, p) => { throw new Error(`network.${String(p)} used`) } })
  const r = new DatasetKeyResolver({
    hub: { datasetOf: async (d: string) => { asked.push(d); return { owner, cid: 'bafy' } } } as unknown as DatasetKeyResolverInit['hub'],
    keyStore,
    network: offLimits as DatasetKeyResolverInit['network'],
    swarmId: 'unit',
    wallet: { address: SELF } as unknown as DatasetKeyResolverInit['wallet'],
    selfPeerId: '12D3KooWself',
    domain: {} as DatasetKeyResolverInit['domain'],
    resolvePeer: async () => { throw new Error('no lookup for an own dataset') }
  })
  return { r, asked }
}

describe('storage: DatasetKeyResolver (where a worker gets a dataset\'s key)', () => {
  it('takes the key of its own dataset from its key store (owner compared without case)', async () => {
    const keys = new MemoryKeyStore()
    const bytes = new Uint8Array(32).fill(7)
    await keys.put(DATASET, new DatasetKey(bytes))
    const { r, asked } = resolver(SELF.toLowerCase(), keys)
    assert.deepEqual(await r.key(request), bytes)
    assert.deepEqual(asked, [DATASET])
  })

  it('refuses its own dataset without a key with STORAGE_KEY_NOT_FOUND', async () => {
    const { r } = resolver(SELF.toUpperCase().replace('0X', '0x'))
    await assert.rejects(r.key(request), (e: unknown) => isIexecError(e, 'STORAGE_KEY_NOT_FOUND'))
  })

  it('goes to the owner\'s node for another owner\'s dataset', async () => {
    const { r } = resolver('0x00000000000000000000000000000000000000bb')
    // the fake network refuses to be used: reaching it is the proof the owner path was taken
    await assert.rejects(r.key(request), /network\.|no lookup/)
  })
})
