import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { computeResultDigest, fileDigest, resolveDeterministicPath, resultDigestOfTree, treeDigest } from '../../../node/storage/digest.js'
import { readTreeSync } from '../../../node/storage/archive.js'
import { isIexecError } from '../../../node/common/errors.js'

// The tree encoding, written out independently from the implementation:
// for each file in byte order of its path: u32be(len) path u64be(size) content.
function expectedTree (files: Array<[string, string]>): string {
  const sorted = [...files].sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])))
  const h = createHash('sha256')
  for (const [path, content] of sorted) {
    const p = Buffer.from(path, 'utf8')
    const c = Buffer.from(content, 'utf8')
    const len = Buffer.alloc(4); len.writeUInt32BE(p.length)
    const size = Buffer.alloc(8); size.writeBigUInt64BE(BigInt(c.length))
    h.update(Buffer.concat([len, p, size, c]))
  }
  return '0x' + h.digest('hex')
}

const sha256 = (s: string): string => '0x' + createHash('sha256').update(s).digest('hex')

describe('storage/digest', () => {
  let root: string
  let n = 0
  beforeEach(async () => { root = await mkdtemp(join(tmpdir(), 'iexec-digest-test-')) })
  afterEach(async () => { await rm(root, { recursive: true, force: true }) })

  async function tree (files: Array<[string, string]>, dirs: string[] = []): Promise<string> {
    const dir = join(root, `t${++n}`)
    await mkdir(dir)
    for (const d of dirs) await mkdir(join(dir, d), { recursive: true })
    for (const [path, content] of files) {
      await mkdir(join(dir, path, '..'), { recursive: true })
      await writeFile(join(dir, path), content)
    }
    return dir
  }

  async function expectCode (p: Promise<unknown>, code: string): Promise<void> {
    await assert.rejects(p, (err: unknown) => isIexecError(err, code))
  }

  it('hashes the tree in canonical order: sorted paths, each with its size and content', async () => {
    const files: Array<[string, string]> = [['b.txt', 'bee'], ['a/z.txt', 'zed'], ['a.txt', 'ay'], ['é.txt', 'accent'], ['A.txt', 'upper']]
    const d1 = await tree(files)
    const d2 = await tree([...files].reverse())
    const digest = await treeDigest(d1)
    assert.match(digest, /^0x[0-9a-f]{64}$/)
    assert.equal(digest, expectedTree(files))
    assert.equal(await treeDigest(d2), digest, 'creation order does not matter')
    const r = await computeResultDigest(d1)
    assert.deepEqual(r, { digest, mode: 'tree', path: '' })
  })

  it('changes with a name, a content or a move of bytes between name and content', async () => {
    const base = await treeDigest(await tree([['a', 'bc']]))
    assert.notEqual(await treeDigest(await tree([['ab', 'c']])), base)
    assert.notEqual(await treeDigest(await tree([['x', 'bc']])), base)
    assert.notEqual(await treeDigest(await tree([['a', 'bd']])), base)
    assert.notEqual(await treeDigest(await tree([['a', 'bc'], ['e', '']])), base, 'an empty file counts')
  })

  it('ignores empty directories and gives the sha256 of nothing for an empty output', async () => {
    assert.equal(await treeDigest(await tree([['f', 'x']], ['empty', 'deep/er'])), await treeDigest(await tree([['f', 'x']])))
    assert.equal(await treeDigest(await tree([])), sha256(''))
  })

  it('uses computed.json deterministic-output-path for a file, as iExec: sha256 of its content', async () => {
    const computed = JSON.stringify({ 'deterministic-output-path': '/iexec_out/result.txt' })
    const d1 = await tree([['result.txt', 'the answer'], ['stdout.txt', 'run 1 took 5 ms'], ['computed.json', computed]])
    const d2 = await tree([['result.txt', 'the answer'], ['stdout.txt', 'run 2 took 7 ms'], ['computed.json', computed]])
    const r1 = await computeResultDigest(d1)
    assert.deepEqual(r1, { digest: sha256('the answer'), mode: 'file', path: 'result.txt' })
    assert.equal((await computeResultDigest(d2)).digest, r1.digest, 'files outside the deterministic path do not count')
    assert.equal(await fileDigest(join(d1, 'result.txt')), r1.digest)
  })

  it('uses the tree digest for a deterministic directory, and accepts relative paths', async () => {
    const d = await tree([['out/a', '1'], ['out/b/c', '2'], ['log.txt', 'noise'], ['computed.json', JSON.stringify({ 'deterministic-output-path': 'out/' })]])
    const r = await computeResultDigest(d)
    assert.equal(r.mode, 'directory')
    assert.equal(r.path, 'out')
    assert.equal(r.digest, expectedTree([['a', '1'], ['b/c', '2']]))
  })

  it('falls back to the whole tree when computed.json has no deterministic-output-path', async () => {
    const files: Array<[string, string]> = [['computed.json', '{"other":1}'], ['r', 'x']]
    assert.deepEqual(await computeResultDigest(await tree(files)), { digest: expectedTree(files), mode: 'tree', path: '' })
  })

  it('refuses deterministic paths that leave the output', async () => {
    for (const bad of ['/etc/passwd', '/iexec_out/../etc/passwd', '../x', 'a/../../x', '/iexec_outx/y']) {
      assert.throws(() => resolveDeterministicPath(bad), (err: unknown) => isIexecError(err, 'WORKER_DIGEST_PATH_ESCAPE'), bad)
    }
    assert.equal(resolveDeterministicPath('/iexec_out/a/./b/../c.txt'), 'a/c.txt')
    assert.equal(resolveDeterministicPath('/iexec_out'), '')
    const d = await tree([['computed.json', JSON.stringify({ 'deterministic-output-path': '/iexec_out/../../etc/passwd' })]])
    await expectCode(computeResultDigest(d), 'WORKER_DIGEST_PATH_ESCAPE')
  })

  it('refuses a deterministic path that is a link or goes through one', async () => {
    const outside = await tree([['secret', 'host file']])
    const d = await tree([['computed.json', JSON.stringify({ 'deterministic-output-path': '/iexec_out/link' })]])
    await symlink(join(outside, 'secret'), join(d, 'link'))
    await expectCode(computeResultDigest(d), 'WORKER_DIGEST_PATH_ESCAPE')
    const d2 = await tree([['computed.json', JSON.stringify({ 'deterministic-output-path': '/iexec_out/dir/secret' })]])
    await symlink(outside, join(d2, 'dir'))
    await expectCode(computeResultDigest(d2), 'WORKER_DIGEST_PATH_ESCAPE')
  })

  it('refuses links in a digested tree', async () => {
    const d = await tree([['a', 'x']])
    await symlink('/etc/hostname', join(d, 'l'))
    await expectCode(treeDigest(d), 'WORKER_DIGEST_UNSUPPORTED_ENTRY')
  })

  it('reports a bad or dangling computed.json with typed errors', async () => {
    await expectCode(computeResultDigest(await tree([['computed.json', '{not json']])), 'WORKER_DIGEST_BAD_COMPUTED')
    await expectCode(computeResultDigest(await tree([['computed.json', '[1]']])), 'WORKER_DIGEST_BAD_COMPUTED')
    await expectCode(computeResultDigest(await tree([['computed.json', '{"deterministic-output-path":42}']])), 'WORKER_DIGEST_BAD_COMPUTED')
    await expectCode(computeResultDigest(await tree([['computed.json', '{"deterministic-output-path":"/iexec_out/none"}']])), 'WORKER_DIGEST_PATH_MISSING')
  })

  // the worker digests what the executor read back into memory: it must be the digest of the disk, case by case
  it('gives the same digest from a tree read into memory as from the disk, and the same errors', async () => {
    const cases: Array<{ files: Array<[string, string]>, dirs?: string[] }> = [
      { files: [] },
      { files: [['b.txt', 'bee'], ['a/z.txt', 'zed'], ['a.txt', 'ay'], ['é.txt', 'accent'], ['e', '']], dirs: ['empty/deeper'] },
      { files: [['result.txt', 'the answer'], ['stdout.txt', 'noise'], ['computed.json', JSON.stringify({ 'deterministic-output-path': '/iexec_out/result.txt' })]] },
      { files: [['out/a', '1'], ['out/b/c', '2'], ['outside', '3'], ['computed.json', JSON.stringify({ 'deterministic-output-path': 'out/' })]] },
      { files: [['x', '1'], ['computed.json', JSON.stringify({ 'deterministic-output-path': '/iexec_out' })]] },
      { files: [['computed.json', '{"other":1}'], ['r', 'x']] }
    ]
    for (const c of cases) {
      const d = await tree(c.files, c.dirs)
      const read = readTreeSync(d, 1 << 20)
      assert.ok(read.entries !== undefined)
      assert.deepEqual(resultDigestOfTree(read.entries), await computeResultDigest(d), JSON.stringify(c.files))
    }
    const failing: Array<[Array<[string, string]>, string]> = [
      [[['computed.json', '{not json']], 'WORKER_DIGEST_BAD_COMPUTED'],
      [[['computed.json', '{"deterministic-output-path":42}']], 'WORKER_DIGEST_BAD_COMPUTED'],
      [[['computed.json', '{"deterministic-output-path":"/iexec_out/none"}']], 'WORKER_DIGEST_PATH_MISSING'],
      [[['computed.json', '{"deterministic-output-path":"/iexec_out/a.txt/b"}'], ['a.txt', 'x']], 'WORKER_DIGEST_PATH_MISSING'],
      [[['computed.json', '{"deterministic-output-path":"../x"}']], 'WORKER_DIGEST_PATH_ESCAPE']
    ]
    for (const [files, code] of failing) {
      const d = await tree(files)
      await expectCode(computeResultDigest(d), code)
      const { entries } = readTreeSync(d, 1 << 20)
      assert.throws(() => resultDigestOfTree(entries ?? []), (err: unknown) => isIexecError(err, code), `${JSON.stringify(files)}: ${code}`)
    }
    const folder = await tree([['x', '1']], ['computed.json'])
    await expectCode(computeResultDigest(folder), 'WORKER_DIGEST_BAD_COMPUTED')
    assert.throws(() => resultDigestOfTree(readTreeSync(folder, 1 << 20).entries ?? []), (err: unknown) => isIexecError(err, 'WORKER_DIGEST_BAD_COMPUTED'))
  })
})
