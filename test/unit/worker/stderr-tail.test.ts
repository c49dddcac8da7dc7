import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stderrTail } from '../../../node/worker/duties.js'
import { MAX_STDERR_TAIL_BYTES } from '../../../protocols/failure-report.js'

describe('worker: the stderr tail a failure report carries', () => {
  let dir = ''
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'iexec-tail-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('is the last MAX_STDERR_TAIL_BYTES of stderr with the whole size; all of a short one; nothing when the file is gone', async () => {
    const long = join(dir, 'long.txt')
    const text = Array.from({ length: 2000 }, (_, i) => `line ${i}\n`).join('')
    await writeFile(long, text)
    const t = await stderrTail(long)
    assert.equal(t.bytes, Buffer.byteLength(text))
    assert.equal(t.tail.byteLength, MAX_STDERR_TAIL_BYTES)
    assert.equal(Buffer.from(t.tail).toString(), text.slice(-MAX_STDERR_TAIL_BYTES), 'the end, where the crash is')
    const short = join(dir, 'short.txt')
    await writeFile(short, 'boom\n')
    assert.deepEqual(await stderrTail(short), { tail: new Uint8Array(Buffer.from('boom\n')), bytes: 5 })
    assert.deepEqual(await stderrTail(join(dir, 'missing.txt')), { tail: new Uint8Array(0), bytes: 0 })
  })
})
