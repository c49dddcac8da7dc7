import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile, access } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { packFolder, packTree, readTreeSync, unpackArchive } from '../../../node/storage/archive.js'
import { isIexecError } from '../../../node/common/errors.js'

async function collect (source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const c of source) parts.push(c)
  return Buffer.concat(parts)
}
async function * once (bytes: Uint8Array): AsyncGenerator<Uint8Array> { yield bytes }

async function expectCode (p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isIexecError(err, code), `expected ${code}, got ${String(err)}`)
    return true
  })
}

/** A raw ustar entry with any name and type, to build hostile archives by hand. */
function rawEntry (name: string, type: string, body: Uint8Array = new Uint8Array(0), linkname = ''): Buffer {
  const h = Buffer.alloc(512)
  h.write(name, 0, 100, 'utf8')
  h.write('0000644\0', 100)
  h.write('0000000\0', 108)
  h.write('0000000\0', 116)
  h.write(body.byteLength.toString(8).padStart(11, '0') + '\0', 124)
  h.write('00000000000\0', 136)
  h.write(type, 156)
  h.write(linkname, 157, 100, 'utf8')
  h.write('ustar\0', 257)
  h.write('00', 263)
  h.fill(0x20, 148, 156)
  let sum = 0
  for (const b of h) sum += b
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148)
  const pad = Buffer.alloc((512 - (body.byteLength % 512)) % 512)
  return Buffer.concat([h, body, pad])
}
const END = Buffer.alloc(1024)

async function tree (dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`
      if (e.isDirectory()) { out[r + '/'] = 'dir'; await walk(join(d, e.name), r) } else out[r] = createHash('sha256').update(await readFile(join(d, e.name))).digest('hex')
    }
  }
  await walk(dir, '')
  return out
}

describe('storage: deterministic ustar archive', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'iexec-archive-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  async function sampleFolder (root: string, order: 'ab' | 'ba'): Promise<void> {
    await mkdir(join(root, 'sub', 'deep'), { recursive: true })
    await mkdir(join(root, 'empty'), { recursive: true })
    const files: Array<[string, Uint8Array]> = [
      ['a.txt', Buffer.from('hello\n')],
      ['sub/b.bin', Buffer.alloc(70_000, 7)],
      ['sub/deep/c', Buffer.alloc(0)],
      ['ünïcode name.txt', Buffer.from('x')],
      [`${'d'.repeat(90)}/${'e'.repeat(90)}.txt`, Buffer.from('long path')]
    ]
    if (order === 'ba') files.reverse()
    for (const [p, body] of files) {
      await mkdir(join(root, p, '..'), { recursive: true })
      await writeFile(join(root, p), body)
    }
  }

  it('packs the same folder to the same bytes whatever the creation order and times', async () => {
    await sampleFolder(join(dir, 'one'), 'ab')
    await sampleFolder(join(dir, 'two'), 'ba')
    const one = await collect(packFolder(join(dir, 'one')))
    const two = await collect(packFolder(join(dir, 'two')))
    assert.equal(one.byteLength % 512, 0)
    assert.deepEqual(one, two)
  })

  it('round-trips through its own reader and through GNU tar', async () => {
    await sampleFolder(join(dir, 'src'), 'ab')
    const bytes = await collect(packFolder(join(dir, 'src')))
    const res = await unpackArchive(once(bytes), join(dir, 'out'))
    assert.equal(res.files, 5)
    assert.deepEqual(await tree(join(dir, 'out')), await tree(join(dir, 'src')))
    // interoperability: the system tar reads it
    await writeFile(join(dir, 'a.tar'), bytes)
    await mkdir(join(dir, 'gnu'))
    const r = spawnSync('tar', ['-xf', join(dir, 'a.tar'), '-C', join(dir, 'gnu')], { encoding: 'utf8', timeout: 20_000 })
    assert.equal(r.status, 0, r.stderr)
    assert.deepEqual(await tree(join(dir, 'gnu')), await tree(join(dir, 'src')))
  })

  it('reads an archive made by GNU tar (ustar format)', async () => {
    await sampleFolder(join(dir, 'src'), 'ab')
    const r = spawnSync('tar', ['--format=ustar', '-cf', join(dir, 'g.tar'), '-C', join(dir, 'src'), '.'], { encoding: 'utf8', timeout: 20_000 })
    assert.equal(r.status, 0, r.stderr)
    await unpackArchive(once(await readFile(join(dir, 'g.tar'))), join(dir, 'out'))
    assert.deepEqual(await tree(join(dir, 'out')), await tree(join(dir, 'src')))
  })

  it('refuses to pack a symlink', async () => {
    await mkdir(join(dir, 'src'))
    await writeFile(join(dir, 'src', 'f'), 'x')
    await symlink('/etc/passwd', join(dir, 'src', 'link'))
    await expectCode(collect(packFolder(join(dir, 'src'))), 'STORAGE_ARCHIVE_UNSUPPORTED_ENTRY')
  })

  it('refuses path escapes: .., absolute paths, and nothing is written outside', async () => {
    const body = Buffer.from('pwned')
    for (const name of ['../escape.txt', 'a/../../escape.txt', '/tmp/escape-abs.txt', './..', '..']) {
      const out = join(dir, `out-${Math.random().toString(16).slice(2)}`)
      await expectCode(unpackArchive(once(Buffer.concat([rawEntry(name, '0', body), END])), out), 'STORAGE_ARCHIVE_PATH_ESCAPE')
    }
    await assert.rejects(access(join(dir, 'escape.txt')))
    await assert.rejects(access('/tmp/escape-abs.txt'))
  })

  it('refuses symlink, hard link and device entries', async () => {
    for (const type of ['1', '2', '3', '4', '6', 'x']) {
      const out = join(dir, `out-${type}`)
      await expectCode(unpackArchive(once(Buffer.concat([rawEntry('link', type, new Uint8Array(0), '/etc/passwd'), END])), out), 'STORAGE_ARCHIVE_UNSUPPORTED_ENTRY')
    }
    // a symlink archived by GNU tar is refused the same way
    await mkdir(join(dir, 'src'))
    await symlink('/etc', join(dir, 'src', 'l'))
    const r = spawnSync('tar', ['--format=ustar', '-cf', join(dir, 'l.tar'), '-C', join(dir, 'src'), '.'], { timeout: 20_000 })
    assert.equal(r.status, 0)
    await expectCode(unpackArchive(once(await readFile(join(dir, 'l.tar'))), join(dir, 'out-gnu')), 'STORAGE_ARCHIVE_UNSUPPORTED_ENTRY')
  })

  it('refuses duplicates, corrupt headers, truncation, oversize and a non-empty target', async () => {
    const f = rawEntry('f.txt', '0', Buffer.from('abc'))
    await expectCode(unpackArchive(once(Buffer.concat([f, f, END])), join(dir, 'dup')), 'STORAGE_ARCHIVE_TARGET_EXISTS')
    const bad = Buffer.from(f); bad[0] ^= 1
    await expectCode(unpackArchive(once(Buffer.concat([bad, END])), join(dir, 'sum')), 'STORAGE_ARCHIVE_CORRUPT')
    await expectCode(unpackArchive(once(f.subarray(0, 600)), join(dir, 'cut')), 'STORAGE_ARCHIVE_CORRUPT')
    await expectCode(unpackArchive(once(f), join(dir, 'noend')), 'STORAGE_ARCHIVE_CORRUPT')
    const big = rawEntry('big', '0', randomBytes(5000))
    await expectCode(unpackArchive(once(Buffer.concat([big, END])), join(dir, 'big'), { maxBytes: 4096 }), 'STORAGE_ARCHIVE_TOO_LARGE')
    await expectCode(unpackArchive(once(Buffer.concat([f, rawEntry('g', '0'), END])), join(dir, 'many'), { maxEntries: 1 }), 'STORAGE_ARCHIVE_TOO_LARGE')
    await mkdir(join(dir, 'full'))
    await writeFile(join(dir, 'full', 'x'), 'x')
    await expectCode(unpackArchive(once(Buffer.concat([f, END])), join(dir, 'full')), 'STORAGE_ARCHIVE_TARGET_EXISTS')
  })

  it('packs a tree read into memory to the same bytes as the folder on disk', async () => {
    const src = join(dir, 'src')
    const long = `${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(80)}.txt`
    for (const [path, content] of [['b.txt', 'bee'], ['a/z.txt', 'zed'], ['a.txt', ''], ['é.txt', 'accent'], [long, 'long name'], ['big.bin', randomBytes(70_000).toString('latin1')]]) {
      await mkdir(join(src, path, '..'), { recursive: true })
      await writeFile(join(src, path), content, 'latin1')
    }
    await mkdir(join(src, 'empty', 'deeper'), { recursive: true })
    const read = readTreeSync(src, 1 << 20)
    assert.equal(read.odd, undefined)
    assert.ok(read.entries !== undefined)
    assert.equal(read.bytes, 3 + 3 + 0 + 6 + 9 + 70_000)
    assert.deepEqual(Buffer.from(packTree(read.entries)), await collect(packFolder(src)))
    assert.deepEqual(Buffer.from(packTree([...read.entries].reverse())), await collect(packFolder(src)), 'the order given does not matter')
    assert.deepEqual(Buffer.from(packTree([])), await collect(packFolder(await mkdtemp(join(dir, 'none-')))), 'an empty folder')
  })

  it('reads a tree whole only within its byte bound, and reports a link without reading anything', async () => {
    const src = join(dir, 'src')
    await mkdir(join(src, 'sub'), { recursive: true })
    await writeFile(join(src, 'sub', 'f'), 'x'.repeat(100))
    assert.deepEqual(readTreeSync(src, 99), { bytes: 100 }, 'over the bound: measured, not read')
    assert.equal(readTreeSync(src, 100).entries?.find((e) => e.path === 'sub/f')?.content?.byteLength, 100)
    await symlink('/etc/hostname', join(src, 'sub', 'link'))
    const linked = readTreeSync(src, 1 << 20)
    assert.equal(linked.odd, 'sub/link')
    assert.equal(linked.entries, undefined)
    assert.match(readTreeSync(src, 1 << 20, 1).odd ?? '', /more than 1 entries/)
    assert.throws(() => packTree([{ path: 'f', kind: 'file', size: 3 }]), (err: unknown) => isIexecError(err, 'STORAGE_INVALID_ARGUMENT'), 'a file entry without its bytes')
  })
})
