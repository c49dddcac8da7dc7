// The result digest a worker commits to (iExec's `resultDigest`, bytes32).
//
// - When the output has a computed.json with a `deterministic-output-path`
//   (iExec's convention, e.g. "/iexec_out/result.txt"), only that path counts:
//   a file is digested as the sha256 of its content, exactly as iExec's worker
//   does; a directory as the tree digest below. Apps put what is deterministic
//   there and keep logs and timings out of consensus.
// - Otherwise the whole output tree counts.
// - When computed.json has `callback-data` (0x-hex bytes, iExec's web3
//   result), the digest is keccak256 of those bytes and nothing else counts,
//   as in iExec: the hub checks the data it passes to the request's callback
//   against the consensus with that rule.
//
// Tree digest: sha256 over the regular files in the order of their relative
// paths ('/'-separated, compared as UTF-8 bytes), each contributing
// u32be(path length) || path || u64be(size) || content. Lengths make the
// encoding unambiguous (no two trees share a byte stream); names count, so a
// renamed file changes the digest (iExec's folder hash hashes contents only).
// Empty directories do not count. Links and special files are refused: they
// would make the digest depend on the host.
import { createHash } from 'node:crypto'
import { keccak256, isHexString } from 'ethers'
import type { Hash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { lstat, readdir, readFile, realpath } from 'node:fs/promises'
import { join, posix, sep } from 'node:path'
import type { TreeEntry } from './archive.js'
import { StorageError } from './errors.js'
import { IEXEC_OUT } from '../../protocols/app-files.js'

/** Name of iExec's result descriptor in the output directory. */
export const COMPUTED_JSON = 'computed.json'

/** A digest and what it covers. */
export interface ResultDigest {
  /** 0x-prefixed sha256, 32 bytes: the value to commit on chain. */
  digest: string
  /** tree: the whole output; file / directory: computed.json's deterministic-output-path; callback: its callback-data. */
  mode: 'tree' | 'file' | 'directory' | 'callback'
  /** The digested path relative to the output dir ('' for the whole output). */
  path: string
  /** computed.json's callback-data (0x-hex), what finalize passes to the request's callback */
  callbackData?: string
}

/** Bound on callback-data: it travels in a transaction's calldata. */
export const MAX_CALLBACK_DATA_BYTES = 16 * 1024

// Bounds the walk: an output with more entries than this is refused rather
// than hashed for minutes.
const MAX_ENTRIES = 100_000

// Files up to this size are read whole: a stream costs several reads and
// callbacks per file, and most outputs are a few small files.
const READ_WHOLE_BYTES = 1 << 20

async function hashFileInto (hash: Hash, file: string, size?: number): Promise<void> {
  if (size !== undefined && size <= READ_WHOLE_BYTES) {
    hash.update(await readFile(file))
    return
  }
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer)
}

/** Regular files under `dir`, as sorted relative '/'-separated paths. */
async function listFiles (dir: string): Promise<string[]> {
  const files: string[] = []
  const stack = ['']
  let seen = 0
  while (stack.length > 0) {
    const rel = stack.pop() as string
    for (const name of await readdir(join(dir, rel))) {
      if (++seen > MAX_ENTRIES) throw new StorageError('WORKER_DIGEST_UNSUPPORTED_ENTRY', `more than ${MAX_ENTRIES} entries in the output`)
      const relPath = rel === '' ? name : `${rel}/${name}`
      const st = await lstat(join(dir, relPath))
      if (st.isDirectory()) stack.push(relPath)
      else if (st.isFile()) files.push(relPath)
      else throw new StorageError('WORKER_DIGEST_UNSUPPORTED_ENTRY', `not a plain file or directory: ${relPath}`, { path: relPath })
    }
  }
  return files.sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')))
}

/** What precedes a file's content in the tree digest: u32be(path length) || path || u64be(size). */
function fileHead (rel: string, size: number): Buffer {
  const name = Buffer.from(rel, 'utf8')
  const head = Buffer.alloc(4 + name.length + 8)
  head.writeUInt32BE(name.length, 0)
  name.copy(head, 4)
  head.writeBigUInt64BE(BigInt(size), 4 + name.length)
  return head
}

/** Tree digest of a directory (see the file comment for the encoding). */
export async function treeDigest (dir: string): Promise<string> {
  const hash = createHash('sha256')
  for (const rel of await listFiles(dir)) {
    const file = join(dir, rel)
    const st = await lstat(file)
    hash.update(fileHead(rel, st.size))
    await hashFileInto(hash, file, st.size)
  }
  return '0x' + hash.digest('hex')
}

/** Tree digest of the files under `prefix` ('' for all) of a tree read into memory. */
function treeDigestOfEntries (entries: TreeEntry[], prefix: string): string {
  const under = prefix === '' ? '' : prefix + '/'
  const files: Array<{ rel: string, content: Uint8Array }> = []
  for (const e of entries) {
    if (e.kind !== 'file' || !e.path.startsWith(under)) continue
    if (e.content === undefined) throw new StorageError('WORKER_DIGEST_UNSUPPORTED_ENTRY', `${e.path}: its content was not read`, { path: e.path })
    files.push({ rel: e.path.slice(under.length), content: e.content })
  }
  files.sort((a, b) => Buffer.compare(Buffer.from(a.rel, 'utf8'), Buffer.from(b.rel, 'utf8')))
  const hash = createHash('sha256')
  for (const f of files) {
    hash.update(fileHead(f.rel, f.content.byteLength))
    hash.update(f.content)
  }
  return '0x' + hash.digest('hex')
}

/** sha256 of one file's content, 0x-prefixed (iExec's digest of a deterministic file). */
export async function fileDigest (file: string): Promise<string> {
  const hash = createHash('sha256')
  await hashFileInto(hash, file)
  return '0x' + hash.digest('hex')
}

/**
 * Maps computed.json's deterministic-output-path to a path relative to the
 * output dir. Accepts "/iexec_out/..." (what apps write, as in iExec) and
 * relative paths; refuses anything that leaves the output dir.
 */
export function resolveDeterministicPath (value: string): string {
  let rel: string
  if (value === IEXEC_OUT || value.startsWith(IEXEC_OUT + '/')) rel = value.slice(IEXEC_OUT.length)
  else if (value.startsWith('/')) throw new StorageError('WORKER_DIGEST_PATH_ESCAPE', `deterministic-output-path outside ${IEXEC_OUT}: ${value}`, { path: value })
  else rel = value
  if (rel.includes('\0')) throw new StorageError('WORKER_DIGEST_PATH_ESCAPE', 'deterministic-output-path holds a NUL byte')
  const norm = posix.normalize('/' + rel).slice(1).replace(/\/$/, '')
  // normalize('/' + x) clamps leading '..' to the root, so compare segments
  // of the raw value to catch an escape that normalize would hide.
  let depth = 0
  for (const part of rel.split('/')) {
    if (part === '' || part === '.') continue
    depth += part === '..' ? -1 : 1
    if (depth < 0) throw new StorageError('WORKER_DIGEST_PATH_ESCAPE', `deterministic-output-path leaves the output: ${value}`, { path: value })
  }
  return norm
}

/**
 * The result digest of an output directory: over computed.json's
 * deterministic-output-path when there is one, over the whole tree otherwise.
 *
 * @example
 * ```ts
 * const { digest } = await computeResultDigest(outputDir) // '0x…' (bytes32)
 * ```
 */
export async function computeResultDigest (outputDir: string): Promise<ResultDigest> {
  let descriptor: string | undefined
  try {
    descriptor = await readFile(join(outputDir, COMPUTED_JSON), 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EISDIR') throw new StorageError('WORKER_DIGEST_BAD_COMPUTED', `${COMPUTED_JSON} is a folder`)
    if (code !== 'ENOENT') throw err
  }
  if (descriptor !== undefined) {
    const callbackData = callbackDataOf(descriptor)
    if (callbackData !== undefined) return { digest: keccak256(callbackData), mode: 'callback', path: '', callbackData }
    const value = deterministicPathOf(descriptor)
    if (value !== undefined) {
      const rel = resolveDeterministicPath(value)
      const target = rel === '' ? outputDir : join(outputDir, ...rel.split('/'))
      const st = await lstat(target).catch(() => undefined)
      if (st === undefined) throw new StorageError('WORKER_DIGEST_PATH_MISSING', `deterministic-output-path does not exist: ${value}`, { path: value })
      // A link (or a link among its parents) could lead outside the output.
      if (st.isSymbolicLink()) throw new StorageError('WORKER_DIGEST_PATH_ESCAPE', `deterministic-output-path is a link: ${value}`, { path: value })
      const [realRoot, realTarget] = await Promise.all([realpath(outputDir), realpath(target)])
      if (realTarget !== realRoot && !realTarget.startsWith(realRoot + sep)) {
        throw new StorageError('WORKER_DIGEST_PATH_ESCAPE', `deterministic-output-path goes through a link: ${value}`, { path: value })
      }
      if (st.isFile()) return { digest: await fileDigest(target), mode: 'file', path: rel }
      if (st.isDirectory()) return { digest: await treeDigest(target), mode: 'directory', path: rel }
      throw new StorageError('WORKER_DIGEST_UNSUPPORTED_ENTRY', `deterministic-output-path is not a file or directory: ${value}`, { path: value })
    }
  }
  return { digest: await treeDigest(outputDir), mode: 'tree', path: '' }
}

/** computed.json's callback-data, lower-case 0x-hex (undefined when it has none). */
export function callbackDataOf (descriptor: string): string | undefined {
  const value = parseDescriptor(descriptor)['callback-data']
  if (value === undefined) return undefined
  if (typeof value !== 'string' || !isHexString(value) || value.length % 2 !== 0) {
    throw new StorageError('WORKER_DIGEST_BAD_COMPUTED', 'callback-data must be a 0x-prefixed hex string of whole bytes')
  }
  if ((value.length - 2) / 2 > MAX_CALLBACK_DATA_BYTES) {
    throw new StorageError('WORKER_DIGEST_BAD_COMPUTED', `callback-data is over ${MAX_CALLBACK_DATA_BYTES} bytes`)
  }
  return value.toLowerCase()
}

/** computed.json's deterministic-output-path, as written (undefined when it names none). */
function deterministicPathOf (descriptor: string): string | undefined {
  const value = parseDescriptor(descriptor)['deterministic-output-path']
  if (value !== undefined && typeof value !== 'string') throw new StorageError('WORKER_DIGEST_BAD_COMPUTED', 'deterministic-output-path must be a string')
  return value
}

function parseDescriptor (descriptor: string): Record<string, unknown> {
  let parsed: unknown
  try {
    parsed = JSON.parse(descriptor)
  } catch (err) {
    throw new StorageError('WORKER_DIGEST_BAD_COMPUTED', `${COMPUTED_JSON} is not valid JSON`, undefined, { cause: err })
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new StorageError('WORKER_DIGEST_BAD_COMPUTED', `${COMPUTED_JSON} must hold a JSON object`)
  }
  return parsed as Record<string, unknown>
}

/**
 * computeResultDigest of an output already read into memory (the
 * executor's ExecResult.output, readTreeSync's entries: plain files and
 * folders only): the same digest, with no read of the disk.
 */
export function resultDigestOfTree (entries: TreeEntry[]): ResultDigest {
  const computed = entries.find((e) => e.path === COMPUTED_JSON)
  if (computed?.kind === 'dir') throw new StorageError('WORKER_DIGEST_BAD_COMPUTED', `${COMPUTED_JSON} is a folder`)
  if (computed !== undefined && computed.content === undefined) throw new StorageError('WORKER_DIGEST_UNSUPPORTED_ENTRY', `${COMPUTED_JSON}: its content was not read`)
  const text = computed?.content !== undefined ? Buffer.from(computed.content).toString('utf8') : undefined
  const callbackData = text !== undefined ? callbackDataOf(text) : undefined
  if (callbackData !== undefined) return { digest: keccak256(callbackData), mode: 'callback', path: '', callbackData }
  const value = text !== undefined ? deterministicPathOf(text) : undefined
  if (value === undefined) return { digest: treeDigestOfEntries(entries, ''), mode: 'tree', path: '' }
  const rel = resolveDeterministicPath(value)
  if (rel === '') return { digest: treeDigestOfEntries(entries, ''), mode: 'directory', path: rel }
  const target = entries.find((e) => e.path === rel)
  if (target === undefined) throw new StorageError('WORKER_DIGEST_PATH_MISSING', `deterministic-output-path does not exist: ${value}`, { path: value })
  if (target.kind === 'dir') return { digest: treeDigestOfEntries(entries, rel), mode: 'directory', path: rel }
  if (target.content === undefined) throw new StorageError('WORKER_DIGEST_UNSUPPORTED_ENTRY', `${rel}: its content was not read`, { path: rel })
  return { digest: '0x' + createHash('sha256').update(target.content).digest('hex'), mode: 'file', path: rel }
}
