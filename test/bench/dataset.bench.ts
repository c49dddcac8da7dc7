// A big dataset end to end, as the node handles it: the owner encrypts a
// file with the chunked AES-256-GCM cipher to a temp file and adds it to
// its Helia (level blockstore on disk) and pins it, as `dataset publish`
// does; a second node fetches it over bitswap to a file with the worker's
// bounds and decrypts it, as the worker does. Per phase: throughput and the
// peak growth of the process's RSS over the phase's start (sampled every
// 50 ms), to show that memory stays bounded whatever the dataset's size.
//
//   BENCH_DATASET_MB=1024 npm run bench -- dataset     (MiB; default 1024)
//
// Both nodes live in this process: the fetch phase's RSS counts the serving
// side too. The data is a deterministic AES-CTR keystream, so runs compare.
import { createCipheriv } from 'node:crypto'
import { createWriteStream, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createNetwork } from '../../node/network/index.js'
import type { Network } from '../../node/network/index.js'
import { addFile, decryptDataset, encryptDataset, fetchToFile, generateContentKey } from '../../node/storage/index.js'
import { defaultWorkerDutiesOptions } from '../../node/worker/duties-options.js'
import { printTable, writeResults } from './harness.js'

const MiB = 1024 * 1024
const SAMPLE_MS = 50

interface Row extends Record<string, string | number> {
  phase: string
  MiB: number
  seconds: number
  'MiB/s': number
  rssAtStartMiB: number
  peakRssGrowthMiB: number
  peakAnonGrowthMiB: number
}

/**
 * The anonymous part of the RSS (heap, buffers, malloc: what memory
 * pressure is made of), from /proc/self/status; undefined off Linux. The
 * rest is file-backed: LevelDB reads its tables through mmap, and the pages
 * it touches count in the RSS though the kernel can drop them at will.
 */
function rssAnon (): number | undefined {
  try {
    const m = /RssAnon:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'latin1'))
    return m === null ? undefined : Number(m[1]) * 1024
  } catch {
    return undefined
  }
}

/** Samples the RSS every SAMPLE_MS while a phase runs; reports its peak over the phase's start. */
async function measured (phase: string, bytes: number, fn: () => Promise<void>): Promise<Row> {
  const start = process.memoryUsage.rss()
  const anonStart = rssAnon() ?? Number.NaN
  let peak = start
  let anonPeak = anonStart
  const sample = (): void => {
    peak = Math.max(peak, process.memoryUsage.rss())
    anonPeak = Math.max(anonPeak, rssAnon() ?? Number.NaN)
  }
  const timer = setInterval(sample, SAMPLE_MS)
  const t0 = performance.now()
  try {
    await fn()
  } finally {
    clearInterval(timer)
  }
  sample()
  const seconds = (performance.now() - t0) / 1000
  return {
    phase,
    MiB: bytes / MiB,
    seconds,
    'MiB/s': bytes / MiB / seconds,
    rssAtStartMiB: start / MiB,
    peakRssGrowthMiB: (peak - start) / MiB,
    peakAnonGrowthMiB: (anonPeak - anonStart) / MiB
  }
}

/** `bytes` of AES-CTR keystream (fixed key and IV), streamed to `path` 1 MiB at a time. */
async function writeDeterministic (path: string, bytes: number): Promise<void> {
  const prng = createCipheriv('aes-128-ctr', Buffer.alloc(16, 0x5a), Buffer.alloc(16, 0))
  const zeros = Buffer.alloc(MiB)
  async function * chunks (): AsyncGenerator<Buffer> {
    for (let left = bytes; left > 0; left -= MiB) yield prng.update(left >= MiB ? zeros : zeros.subarray(0, left))
  }
  await pipeline(Readable.from(chunks()), createWriteStream(path))
}

async function startNode (root: string, name: string, bootstrap: string[]): Promise<Network> {
  const net = await createNetwork({
    privateKey: await generateKeyPair('Ed25519'),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap,
    swarmId: 'bench-dataset',
    // on disk, as a node's data dir has it: an in-memory blockstore would hold the dataset in RSS
    blocksPath: join(root, name, 'blocks')
  })
  await net.start()
  await net.bootstrapSettled()
  return net
}

export async function run (): Promise<void> {
  const sizeMiB = Number(process.env.BENCH_DATASET_MB ?? '1024')
  if (!(Number.isInteger(sizeMiB) && sizeMiB > 0)) throw new Error(`BENCH_DATASET_MB must be a positive integer (MiB), got ${process.env.BENCH_DATASET_MB ?? ''}`)
  const bytes = sizeMiB * MiB
  const root = await mkdtemp(join(tmpdir(), 'iexec-dataset-bench-'))
  const nets: Network[] = []
  try {
    await mkdir(join(root, 'owner'))
    await mkdir(join(root, 'worker'))
    const plain = join(root, 'owner', 'dataset.bin')
    await writeDeterministic(plain, bytes)
    const owner = await startNode(root, 'owner', [])
    nets.push(owner)
    const worker = await startNode(root, 'worker', [owner.multiaddrs()[0]])
    nets.push(worker)

    const rows: Row[] = []
    const key = generateContentKey()
    // the owner's side: what POST /v1/datasets does before it registers the dataset
    const enc = join(root, 'owner', 'dataset.enc')
    let checksum = ''
    rows.push(await measured('publish: encrypt to temp file', bytes, async () => {
      checksum = (await encryptDataset(plain, enc, key)).checksum
    }))
    await rm(plain)
    const encBytes = (await stat(enc)).size
    let cid = ''
    rows.push(await measured('publish: add + pin in Helia', encBytes, async () => {
      const added = await addFile(owner.helia, enc)
      cid = added.cid.toString()
      for await (const _ of owner.helia.pins.add(added.cid, { signal: AbortSignal.timeout(600_000) })) { /* walks local blocks */ }
    }))
    await rm(enc)

    // the worker's side: compute()'s fetch, with the worker's own bounds, then the decryption
    const o = defaultWorkerDutiesOptions
    const fetched = join(root, 'worker', 'dataset.enc')
    rows.push(await measured('use: bitswap fetch to file', encBytes, async () => {
      await fetchToFile(worker.helia, cid, fetched, {
        maxBytes: o.maxInputBytes, timeoutMs: o.fetchTimeoutMs, minBytesPerSecond: o.fetchMinBytesPerSecond, stallTimeoutMs: o.fetchStallTimeoutMs
      })
    }))
    const out = join(root, 'worker', 'dataset')
    let decrypted = ''
    rows.push(await measured('use: decrypt to file', bytes, async () => {
      decrypted = (await decryptDataset(fetched, out, key)).checksum
    }))
    if (decrypted !== checksum) throw new Error(`the decrypted dataset hashes to ${decrypted}, the published plaintext to ${checksum}`)
    await rm(fetched)
    await rm(out)

    printTable(`dataset of ${sizeMiB} MiB: publish (owner) and use (worker) on two nodes of one process; RSS sampled every ${SAMPLE_MS} ms`, rows)
    // bounded means independent of the size: judged on the anonymous RSS (what memory pressure is
    // made of) where Linux reports it, else on the whole RSS
    const anonKnown = rows.every((r) => Number.isFinite(r.peakAnonGrowthMiB))
    const peak = Math.max(...rows.map((r) => anonKnown ? r.peakAnonGrowthMiB : r.peakRssGrowthMiB))
    const peakRss = Math.max(...rows.map((r) => r.peakRssGrowthMiB))
    const boundMiB = 256
    const bounded = peak < boundMiB
    process.stdout.write(`peak ${anonKnown ? 'anonymous ' : ''}RSS growth over any phase ${peak.toFixed(1)} MiB (${(100 * peak / sizeMiB).toFixed(1)} % of the dataset; whole RSS, with LevelDB's mmapped tables, ${peakRss.toFixed(1)} MiB): ${bounded ? 'bounded' : `NOT bounded (>= ${boundMiB} MiB)`}\n`)
    await writeResults('dataset', { sizeMiB, ciphertextBytes: encBytes, sampleMs: SAMPLE_MS, peakGrowthMiB: peak, judgedOn: anonKnown ? 'RssAnon' : 'rss', peakRssGrowthMiB: peakRss, boundMiB, bounded, checksum, rows })
    if (!bounded) throw new Error(`memory grew by ${peak.toFixed(1)} MiB during a phase (bound ${boundMiB} MiB)`)
  } finally {
    for (const n of nets.reverse()) await n.stop().catch(() => {})
    await rm(root, { recursive: true, force: true })
  }
}
