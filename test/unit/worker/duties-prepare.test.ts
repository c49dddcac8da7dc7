import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { copyFile, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MAX_SWEEP_DOCUMENT_BYTES, parseRequestParams } from '../../../protocols/market.js'
import type { FetchOptions } from '../../../node/storage/index.js'
import { isIexecError } from '../../../node/common/errors.js'
import { DealPreparer } from '../../../node/worker/duties-prepare.js'
import type { DatasetTools } from '../../../node/worker/duties-prepare.js'
import type { WorkerTaskRecord } from '../../../node/worker/duties-book.js'
import { fakeClock } from '../scheduler/fakes.js'
import { DEAL, rec } from './duties-fakes.js'

const sha = (b: Uint8Array | string): string => '0x' + createHash('sha256').update(b).digest('hex')
const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s))

const APP = bytes('\0asm app module')
const OPTIONS = { maxAppBytes: 1_000, maxInputBytes: 50_000, fetchTimeoutMs: 7_000, fetchMinBytesPerSecond: 3_000, fetchStallTimeoutMs: 900, preparedTtlMs: 60_000 }

/** Asserts `p` rejects with an IexecError of `code`. */
async function rejectsWith (p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => isIexecError(err) && err.code === code, `expected ${code}`)
}

interface Fetch { kind: 'cat' | 'toFile', cid: string, options: FetchOptions }

interface Harness {
  preparer: DealPreparer
  workDir: string
  /** content by CID, as the content store holds it */
  blobs: Map<string, Uint8Array>
  fetches: Fetch[]
  /** whether a fetched dataset reads as encrypted */
  encrypted: { value: boolean }
  /** what a decryption writes and its checksum */
  plaintext: { value: Uint8Array }
  keyRequests: Array<{ dataset: string, dealid: string, idx: number, authorization: string }>
  keys: Uint8Array[]
  retained: string[][]
  released: string[][]
  volume: { value: number }
  clock: ReturnType<typeof fakeClock>
}

const harnesses: Harness[] = []

async function harness (o: { datasetKey?: boolean } = {}): Promise<Harness> {
  const workDir = await mkdtemp(join(tmpdir(), 'deal-preparer-'))
  const h: Partial<Harness> = {
    workDir,
    blobs: new Map([['bafyapp', APP]]),
    fetches: [],
    encrypted: { value: true },
    plaintext: { value: bytes('dataset plaintext') },
    keyRequests: [],
    keys: [],
    retained: [],
    released: [],
    volume: { value: 2 },
    clock: fakeClock()
  }
  const blob = (cid: string): Uint8Array => {
    const b = h.blobs!.get(cid)
    if (b === undefined) throw new Error(`no such content ${cid}`)
    return b
  }
  const datasets: DatasetTools = {
    isEncrypted: async () => h.encrypted!.value,
    decrypt: async (_from, to) => {
      await writeFile(to, h.plaintext!.value)
      return { checksum: sha(h.plaintext!.value).toUpperCase().replace('0X', '0x') }
    },
    placePlain: async (from, to) => {
      await copyFile(from, to)
      return sha(await readFile(to))
    }
  }
  h.preparer = new DealPreparer({
    content: {
      cat: async function * (cid, options) {
        h.fetches!.push({ kind: 'cat', cid, options })
        yield blob(cid)
      },
      toFile: async (cid, path, options) => {
        h.fetches!.push({ kind: 'toFile', cid, options })
        await writeFile(path, blob(cid))
      }
    },
    datasets,
    workDir,
    options: OPTIONS,
    signal: new AbortController().signal,
    volume: async () => h.volume!.value,
    ...(o.datasetKey !== false
      ? {
          datasetKey: async (req: { dataset: string, dealid: string, idx: number, authorization: string }) => {
            h.keyRequests!.push(req)
            const key = new Uint8Array(32).fill(7)
            h.keys!.push(key)
            return key
          }
        }
      : {}),
    retention: {
      prepare: async (cids) => {
        h.retained!.push(cids)
        return async () => { h.released!.push(cids) }
      }
    },
    log: () => {},
    now: h.clock!.now
  })
  harnesses.push(h as Harness)
  return h as Harness
}

/** A task of DEAL whose app is bafyapp with its right checksum. */
const task = (over: Partial<WorkerTaskRecord> = {}): WorkerTaskRecord => rec({ taskid: `0xt${over.idx ?? 0}`, state: 'assigned', appChecksum: sha(APP), ...over })

const exists = async (path: string): Promise<boolean> => await stat(path).then(() => true, () => false)

describe('worker duties: the deal preparer', () => {
  afterEach(async () => {
    for (const h of harnesses.splice(0)) await rm(h.workDir, { recursive: true, force: true })
  })

  describe('prepare', () => {
    it('fetches the app within maxAppBytes and each input once within maxInputBytes into the deal\'s folder', async () => {
      const h = await harness()
      h.blobs.set('bafyin1', bytes('one'))
      h.blobs.set('bafyin2', bytes('two'))
      const p = await h.preparer.prepare(task({ params: JSON.stringify({ iexec_input_files: ['bafyin1', 'bafyin2', 'bafyin1'] }) }))
      assert.deepEqual(p.module, APP)
      assert.equal(p.root, join(h.workDir, `deal-${DEAL}`))
      assert.deepEqual(p.inputFiles, ['bafyin1', 'bafyin2', 'bafyin1'])
      assert.deepEqual((await readdir(p.inputDir)).sort(), ['bafyin1', 'bafyin2'])
      assert.equal(await readFile(join(p.inputDir, 'bafyin2'), 'utf8'), 'two')
      assert.equal(p.datasetFilename, undefined)
      const app = h.fetches.filter((f) => f.cid === 'bafyapp')
      assert.equal(app.length, 1)
      assert.equal(app[0].kind, 'cat')
      assert.equal(app[0].options.maxBytes, OPTIONS.maxAppBytes)
      assert.equal(app[0].options.stallTimeoutMs, OPTIONS.fetchStallTimeoutMs)
      const inputs = h.fetches.filter((f) => f.cid !== 'bafyapp')
      assert.deepEqual(inputs.map((f) => f.cid).sort(), ['bafyin1', 'bafyin2'], 'a CID listed twice is fetched once')
      for (const f of inputs) {
        assert.equal(f.options.maxBytes, OPTIONS.maxInputBytes)
        assert.equal(f.options.minBytesPerSecond, OPTIONS.fetchMinBytesPerSecond)
        assert.ok(f.options.signal !== undefined, 'the worker\'s stop ends the fetch')
      }
      assert.deepEqual(h.retained, [['bafyapp']])
      assert.deepEqual(h.released, [['bafyapp']], 'the app is kept once checked')
    })

    it('prepares a deal once for all its tasks, concurrent ones included', async () => {
      const h = await harness()
      const [a, b] = await Promise.all([h.preparer.prepare(task({ idx: 0 })), h.preparer.prepare(task({ idx: 1 }))])
      const c = await h.preparer.prepare(task({ idx: 2 }))
      assert.equal(a, b)
      assert.equal(a, c)
      assert.equal(h.fetches.filter((f) => f.cid === 'bafyapp').length, 1)
    })

    it('refuses an app that does not hash to its registered checksum, keeps nothing, and tries again for the next task', async () => {
      const h = await harness()
      h.blobs.set('bafyapp', bytes('a module a stranger swapped in'))
      await rejectsWith(h.preparer.prepare(task()), 'DUTY_BAD_APP')
      assert.deepEqual(h.released, [], 'a module that failed its check is not kept')
      h.blobs.set('bafyapp', APP)
      const p = await h.preparer.prepare(task({ idx: 1 }))
      assert.deepEqual(p.module, APP)
      assert.equal(h.fetches.filter((f) => f.cid === 'bafyapp').length, 2)
    })

    it('fails the deal when an input cannot be fetched; the next task fetches again', async () => {
      const h = await harness()
      const params = JSON.stringify({ iexec_input_files: ['bafymissing'] })
      await assert.rejects(h.preparer.prepare(task({ params })), /no such content bafymissing/)
      h.blobs.set('bafymissing', bytes('here now'))
      const p = await h.preparer.prepare(task({ params, idx: 1 }))
      assert.deepEqual(await readdir(p.inputDir), ['bafymissing'])
    })

    it('refuses a deal with a dataset when this worker cannot get dataset keys', async () => {
      const h = await harness({ datasetKey: false })
      h.blobs.set('bafyds', bytes('ciphertext'))
      await rejectsWith(h.preparer.prepare(task({ dataset: { address: '0x' + 'e'.repeat(40), cid: 'bafyds', checksum: sha('x') } })), 'DUTY_DATASET_UNSUPPORTED')
    })

    it('decrypts an encrypted dataset with its owner\'s key, checks its checksum, zeroes the key and drops the ciphertext', async () => {
      const h = await harness()
      h.blobs.set('bafyds', bytes('ciphertext'))
      const dataset = { address: '0x' + 'e'.repeat(40), cid: 'bafyds', checksum: sha(h.plaintext.value) }
      const p = await h.preparer.prepare(task({ idx: 3, authorization: '0xauth3', dataset }))
      assert.equal(p.datasetFilename, 'dataset')
      assert.deepEqual(await readFile(join(p.inputDir, 'dataset')), Buffer.from(h.plaintext.value))
      assert.deepEqual(h.keyRequests, [{ dataset: dataset.address, dealid: DEAL, idx: 3, authorization: '0xauth3' }])
      assert.ok(h.keys[0].every((b) => b === 0), 'the key does not outlive the decryption')
      assert.equal(await exists(join(p.root, 'dataset.enc')), false)
      assert.deepEqual(h.retained, [['bafyapp'], ['bafyds']])
    })

    it('refuses a decrypted dataset whose bytes are not its registered checksum (and still zeroes the key)', async () => {
      const h = await harness()
      h.blobs.set('bafyds', bytes('ciphertext'))
      const dataset = { address: '0x' + 'e'.repeat(40), cid: 'bafyds', checksum: sha('what the owner registered') }
      await rejectsWith(h.preparer.prepare(task({ dataset })), 'DUTY_BAD_APP')
      assert.ok(h.keys[0].every((b) => b === 0))
      assert.equal(await exists(join(h.workDir, `deal-${DEAL}`, 'dataset.enc')), false)
    })

    it('places a dataset published in clear without asking for a key, and refuses one that does not hash to its checksum', async () => {
      const h = await harness()
      h.encrypted.value = false
      h.blobs.set('bafyds', bytes('clear dataset'))
      const good = await harness()
      good.encrypted.value = false
      good.blobs.set('bafyds', bytes('clear dataset'))
      await rejectsWith(h.preparer.prepare(task({ dataset: { address: '0x' + 'e'.repeat(40), cid: 'bafyds', checksum: sha('another dataset') } })), 'DUTY_BAD_APP')
      const p = await good.preparer.prepare(task({ dataset: { address: '0x' + 'e'.repeat(40), cid: 'bafyds', checksum: sha('clear dataset') } }))
      assert.equal(await readFile(join(p.inputDir, 'dataset'), 'utf8'), 'clear dataset')
      assert.deepEqual([...h.keyRequests, ...good.keyRequests], [])
    })
  })

  describe('evict', () => {
    it('forgets deals idle past preparedTtlMs and removes their folders; a computing or recent deal stays', async () => {
      const h = await harness()
      const other = '0x' + 'c'.repeat(64)
      const third = '0x' + 'b'.repeat(64)
      const idle = await h.preparer.prepare(task())
      const busy = await h.preparer.prepare(task({ dealid: other }))
      h.clock.advance(OPTIONS.preparedTtlMs + 1)
      const recent = await h.preparer.prepare(task({ dealid: third }))
      await h.preparer.evict(new Set([other]))
      assert.equal(await exists(idle.root), false)
      assert.equal(await exists(busy.root), true)
      assert.equal(await exists(recent.root), true)
      const fetched = h.fetches.length
      assert.equal(await h.preparer.prepare(task({ dealid: other })), busy, 'kept')
      assert.notEqual(await h.preparer.prepare(task()), idle, 'made again')
      assert.equal(h.fetches.length, fetched + 1)
    })
  })

  describe('taskInputs', () => {
    const argsParams = (list: string[]): string => JSON.stringify({ iexec_p2p_task_args: list })

    it('without a sweep, a task runs on the deal\'s shared folder', async () => {
      const h = await harness()
      const r = task()
      const prepared = await h.preparer.prepare(r)
      const got = await h.preparer.taskInputs(r, join(h.workDir, 't0'), parseRequestParams(r.params), prepared)
      assert.deepEqual(got, { inputDir: prepared.inputDir, inputFiles: prepared.inputFiles })
    })

    it('gives each task its own line of arguments', async () => {
      const h = await harness()
      const r = task({ idx: 1, params: argsParams(['a', 'b c']) })
      const prepared = await h.preparer.prepare(r)
      const got = await h.preparer.taskInputs(r, join(h.workDir, 't1'), parseRequestParams(r.params), prepared)
      assert.equal(got.args, 'b c')
      assert.equal(got.inputDir, prepared.inputDir)
    })

    it('refuses lists that are not one entry per task of the deal', async () => {
      const h = await harness()
      h.volume.value = 3
      const r = task({ params: argsParams(['a', 'b']) })
      const prepared = await h.preparer.prepare(r)
      await rejectsWith(h.preparer.taskInputs(r, join(h.workDir, 't'), parseRequestParams(r.params), prepared), 'DUTY_SWEEP_MISMATCH')
      h.volume.value = 2
      const beyond = task({ idx: 2, params: argsParams(['a', 'b']) })
      await rejectsWith(h.preparer.taskInputs(beyond, join(h.workDir, 't'), parseRequestParams(beyond.params), prepared), 'DUTY_SWEEP_MISMATCH')
    })

    it('gives a task with its own inputs a folder of its own: the deal\'s inputs and its files, none of another task\'s', async () => {
      const h = await harness()
      for (const cid of ['bafyshared', 'bafyown00', 'bafyown01']) h.blobs.set(cid, bytes(cid))
      const params = JSON.stringify({ iexec_input_files: ['bafyshared'], iexec_p2p_task_inputs: [['bafyown00', 'bafyshared'], ['bafyown01']] })
      const r = task({ params })
      const prepared = await h.preparer.prepare(r)
      const root = join(h.workDir, 't0')
      const got = await h.preparer.taskInputs(r, root, parseRequestParams(params), prepared)
      assert.equal(got.inputDir, join(root, 'in'))
      assert.deepEqual((await readdir(got.inputDir)).sort(), ['bafyown00', 'bafyshared'])
      assert.deepEqual(got.inputFiles, ['bafyshared', 'bafyown00', 'bafyshared'])
      assert.equal(h.fetches.filter((f) => f.cid === 'bafyshared').length, 1, 'a deal input is linked, not fetched again')
      assert.equal(h.fetches.some((f) => f.cid === 'bafyown01'), false, 'another task\'s input is not fetched')
      assert.deepEqual((await readdir(prepared.inputDir)), ['bafyshared'], 'the shared folder is left alone')
    })

    it('reads a sweep document once per deal, within MAX_SWEEP_DOCUMENT_BYTES, when it hashes to the params\' checksum', async () => {
      const h = await harness()
      const doc = bytes(JSON.stringify({ args: ['x', 'y'] }))
      h.blobs.set('bafysweep', doc)
      const params = JSON.stringify({ iexec_p2p_sweep: { cid: 'bafysweep', checksum: sha(doc) } })
      const prepared = await h.preparer.prepare(task({ params }))
      for (const idx of [0, 1]) {
        const r = task({ idx, params })
        assert.equal((await h.preparer.taskInputs(r, join(h.workDir, `t${idx}`), parseRequestParams(params), prepared)).args, ['x', 'y'][idx])
      }
      const reads = h.fetches.filter((f) => f.cid === 'bafysweep')
      assert.equal(reads.length, 1)
      assert.equal(reads[0].options.maxBytes, MAX_SWEEP_DOCUMENT_BYTES)
    })

    it('refuses a sweep document that does not hash to the params\' checksum, or does not parse', async () => {
      const h = await harness()
      h.blobs.set('bafysweep1', bytes(JSON.stringify({ args: ['x', 'y'] })))
      const forged = JSON.stringify({ iexec_p2p_sweep: { cid: 'bafysweep1', checksum: sha('the document the requester signed') } })
      const prepared = await h.preparer.prepare(task({ params: forged }))
      await rejectsWith(h.preparer.taskInputs(task({ params: forged }), join(h.workDir, 't'), parseRequestParams(forged), prepared), 'DUTY_SWEEP_MISMATCH')
      const other = await harness()
      const junk = bytes('{"args": "not a list"}')
      other.blobs.set('bafysweep2', junk)
      const bad = JSON.stringify({ iexec_p2p_sweep: { cid: 'bafysweep2', checksum: sha(junk) } })
      const p2 = await other.preparer.prepare(task({ params: bad }))
      await rejectsWith(other.preparer.taskInputs(task({ params: bad }), join(other.workDir, 't'), parseRequestParams(bad), p2), 'DUTY_SWEEP_MISMATCH')
    })
  })
})
