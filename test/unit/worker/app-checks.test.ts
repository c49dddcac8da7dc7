import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import type { CID } from 'multiformats/cid'
import { addBytes } from '../../../node/storage/index.js'
import type { ContentHelia } from '../../../node/storage/index.js'
import { AppChecks } from '../../../node/worker/app-checks.js'
import { buildModule } from './wasm-builder.js'

/** Blocks in memory; every read is counted. */
class MapBlockstore {
  private readonly blocks = new Map<string, Uint8Array>()
  reads = 0

  async put (cid: CID, bytes: Uint8Array | AsyncIterable<Uint8Array>): Promise<CID> {
    const parts: Uint8Array[] = []
    if (bytes instanceof Uint8Array) parts.push(bytes)
    else for await (const p of bytes) parts.push(p)
    this.blocks.set(cid.toString(), new Uint8Array(Buffer.concat(parts)))
    return cid
  }

  has (cid: CID): boolean {
    return this.blocks.has(cid.toString())
  }

  async * get (cid: CID): AsyncGenerator<Uint8Array> {
    this.reads++
    const b = this.blocks.get(cid.toString())
    if (b === undefined) throw new Error(`no block ${cid.toString()}`)
    yield b
  }
}

const sha = (b: Uint8Array): string => '0x' + createHash('sha256').update(b).digest('hex')
const WASM = buildModule({ memory: { min: 1 } })
const LIBRARY = buildModule({ memory: { min: 1 }, start: false })
const ELF = new Uint8Array([0x7f, 0x45, 0x4c, 0x46, ...new Array<number>(60).fill(0)])
const JUNK = new Uint8Array(Buffer.from('#!/bin/sh\necho not an app\n'))

interface Harness {
  checks: AppChecks
  store: MapBlockstore
  /** the registration of each app, by address */
  registry: Map<string, { cid: string, checksum: string }>
  appOfCalls: string[]
  hub: { present: boolean, down: boolean }
}

function harness (executors: readonly string[] = ['wasi']): Harness {
  const store = new MapBlockstore()
  const h: Harness = { store, registry: new Map(), appOfCalls: [], hub: { present: true, down: false }, checks: undefined as unknown as AppChecks }
  const helia = { blockstore: store } as unknown as ContentHelia
  h.checks = new AppChecks({
    appOf: () => h.hub.present
      ? async (app) => {
        h.appOfCalls.push(app)
        if (h.hub.down) throw new Error('rpc down')
        const r = h.registry.get(app.toLowerCase())
        if (r === undefined) throw new Error('no such app')
        return r
      }
      : undefined,
    helia: () => helia,
    executors
  })
  return h
}

/** Adds `bytes` to the store and registers them as app `app` (with `checksum`, by default theirs). */
async function register (h: Harness, app: string, bytes: Uint8Array, checksum = sha(bytes)): Promise<void> {
  const { cid } = await addBytes({ blockstore: h.store } as unknown as ContentHelia, bytes)
  h.registry.set(app.toLowerCase(), { cid: cid.toString(), checksum })
}

const A = '0x' + 'a1'.repeat(20)

describe('worker: the provider\'s app checks', () => {
  describe('problem', () => {
    it('finds no problem with a WASI command, and fetches it once per app whatever the address\' case', async () => {
      const h = harness()
      await register(h, A, WASM)
      assert.equal(await h.checks.problem(A), undefined)
      const reads = h.store.reads
      assert.equal(await h.checks.problem(A.toUpperCase().replace('0X', '0x')), undefined)
      assert.equal(h.store.reads, reads)
      assert.equal(h.appOfCalls.length, 1)
    })

    it('refuses a module that does not hash to its registered checksum', async () => {
      const h = harness()
      await register(h, A, WASM, sha(JUNK))
      assert.equal(await h.checks.problem(A), 'its module does not hash to its registered checksum')
    })

    it('refuses what is neither a WASI module, an ELF binary nor an OCI image', async () => {
      const h = harness()
      await register(h, A, JUNK)
      assert.match(await h.checks.problem(A) ?? '', /^APP_UNKNOWN_KIND: /)
    })

    it('refuses a WASI module its executor cannot run, with the module check\'s code', async () => {
      const h = harness()
      await register(h, A, LIBRARY)
      assert.match(await h.checks.problem(A) ?? '', /^MODULE_NOT_COMMAND: /)
    })

    it('leaves a native binary to the executor that runs it', async () => {
      const h = harness()
      await register(h, A, ELF)
      assert.equal(await h.checks.problem(A), undefined)
    })

    it('gives no verdict without a hub or when the look-up fails, and asks again next time', async () => {
      const h = harness()
      await register(h, A, JUNK)
      h.hub.present = false
      assert.equal(await h.checks.problem(A), undefined)
      h.hub.present = true
      h.hub.down = true
      assert.equal(await h.checks.problem(A), undefined)
      h.hub.down = false
      assert.match(await h.checks.problem(A) ?? '', /^APP_UNKNOWN_KIND/)
      assert.equal(h.appOfCalls.length, 2)
    })

    it('gives no verdict on a registration whose CID does not parse', async () => {
      const h = harness()
      h.registry.set(A, { cid: 'not a cid', checksum: sha(WASM) })
      assert.equal(await h.checks.problem(A), undefined)
    })

    it('keeps the verdicts of the last 1000 apps: the oldest is looked up again', async () => {
      const h = harness()
      const apps = Array.from({ length: 1001 }, (_, i) => '0x' + i.toString(16).padStart(40, '0'))
      const { cid } = await addBytes({ blockstore: h.store } as unknown as ContentHelia, JUNK)
      for (const app of apps) h.registry.set(app, { cid: cid.toString(), checksum: sha(JUNK) })
      for (const app of apps) await h.checks.problem(app)
      assert.equal(h.appOfCalls.length, 1001)
      await h.checks.problem(apps[1000])
      await h.checks.problem(apps[1])
      assert.equal(h.appOfCalls.length, 1001, 'kept')
      await h.checks.problem(apps[0])
      assert.equal(h.appOfCalls.length, 1002, 'dropped as the oldest')
    })
  })

  describe('executorOf', () => {
    it('answers a node that runs every kind without fetching anything', async () => {
      const h = harness(['native', 'wasi'])
      assert.equal(await h.checks.executorOf(A), 'native')
      assert.equal(h.appOfCalls.length, 0)
    })

    it('reads the executor off the app\'s first bytes, once per app', async () => {
      const h = harness(['wasi'])
      const B = '0x' + 'b2'.repeat(20)
      await register(h, A, WASM)
      await register(h, B, ELF)
      assert.equal(await h.checks.executorOf(A), 'wasi')
      assert.equal(await h.checks.executorOf(B), 'native')
      assert.equal(await h.checks.executorOf(B), 'native')
      assert.deepEqual(h.appOfCalls, [A, B])
    })

    it('answers undefined without a hub, and asks again after a failed look-up', async () => {
      const h = harness(['wasi'])
      h.hub.present = false
      assert.equal(await h.checks.executorOf(A), undefined)
      h.hub.present = true
      await assert.rejects(h.checks.executorOf(A), /no such app/)
      await register(h, A, ELF)
      assert.equal(await h.checks.executorOf(A), 'native')
    })
  })
})
