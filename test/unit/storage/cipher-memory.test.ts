import assert from 'node:assert/strict'
import { createHash, createCipheriv } from 'node:crypto'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { decryptStream, encryptStream, generateContentKey } from '../../../node/storage/chunked-cipher.js'

const MiB = 1024 * 1024
const MARKER = Buffer.from('PLAINTEXT-MARKER-77e1d0c3')

/** 64 MiB of deterministic pseudo-random bytes in 1 MiB pieces, a marker in each piece; never all in memory. */
async function * bigSource (totalMiB: number, hash: ReturnType<typeof createHash>): AsyncGenerator<Uint8Array> {
  const prng = createCipheriv('aes-128-ctr', Buffer.alloc(16, 1), Buffer.alloc(16, 0))
  for (let i = 0; i < totalMiB; i++) {
    const piece = prng.update(Buffer.alloc(MiB))
    MARKER.copy(piece, (i * 7919) % (MiB - MARKER.byteLength))
    hash.update(piece)
    yield piece
  }
}

// a real collection before each sample measures what the stream keeps alive, not garbage the GC has not reached yet
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

async function usage (): Promise<number> {
  // buffers' backing stores are released after the collection's weak callbacks run: one turn of the
  // event loop between two collections lets them go (measured: otherwise up to 17 MiB of dead buffers show)
  gc()
  await new Promise((resolve) => setImmediate(resolve))
  gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

describe('storage: chunked cipher memory bound', function () {
  this.timeout(120_000)

  it('encrypts and decrypts a 64 MiB stream with memory growth far below its size; the ciphertext hides the marker', async () => {
    const key = generateContentKey()
    const inHash = createHash('sha256')
    const outHash = createHash('sha256')
    let cipherBytes = 0
    let markerInCiphertext = false
    let tail = Buffer.alloc(0)
    // the ciphertext is scanned for the marker as it flows, with an overlap so a marker across chunk edges is seen
    async function * scan (source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
      for await (const c of source) {
        cipherBytes += c.byteLength
        const window = Buffer.concat([tail, c])
        if (window.indexOf(MARKER) >= 0) markerInCiphertext = true
        tail = window.subarray(Math.max(0, window.byteLength - MARKER.byteLength + 1))
        yield c
      }
    }
    const before = await usage()
    const rssBefore = process.memoryUsage().rss
    let peak = before
    let peakRss = rssBefore
    let plainBytes = 0
    const started = Date.now()
    for await (const chunk of decryptStream(scan(encryptStream(bigSource(64, inHash), key)), key)) {
      outHash.update(chunk)
      plainBytes += chunk.byteLength
      if (plainBytes % (4 * MiB) < chunk.byteLength) {
        peak = Math.max(peak, await usage())
        peakRss = Math.max(peakRss, process.memoryUsage().rss)
      }
    }
    const ms = Date.now() - started
    assert.equal(plainBytes, 64 * MiB)
    assert.equal(outHash.digest('hex'), inHash.digest('hex'), 'round trip is exact')
    assert.equal(markerInCiphertext, false, 'the plaintext marker does not appear in the ciphertext')
    assert.ok(cipherBytes > plainBytes)
    const growth = peak - before
    const rssGrowth = peakRss - rssBefore
    // a process holding the stream would keep >= 64 MiB alive; the pipeline holds one 1 MiB source
    // piece and a few 64 KiB chunks
    assert.ok(growth < 6 * MiB, `live heap+buffers grew by ${(growth / MiB).toFixed(1)} MiB`)
    assert.ok(rssGrowth < 48 * MiB, `RSS grew by ${(rssGrowth / MiB).toFixed(1)} MiB`)
    process.stdout.write(`      64 MiB encrypt+decrypt in ${ms} ms (${(128 * 1000 / ms).toFixed(0)} MiB/s of crypto), live heap+buffers growth ${(growth / MiB).toFixed(1)} MiB, RSS growth ${(rssGrowth / MiB).toFixed(1)} MiB\n`)
  })
})
