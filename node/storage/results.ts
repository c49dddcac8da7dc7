import { createReadStream } from 'node:fs'
import { mkdir, open, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { resultHash } from '../../protocols/eip712.js'
import { computeResultDigest } from './digest.js'
import { STDOUT_FILE } from '../../protocols/app-files.js'
import { unpackArchive } from './archive.js'
import { fetchToFile } from './content.js'
import type { ContentHelia } from './content.js'
import type { EciesPrivateKey } from './ecies.js'
import { StorageError } from './errors.js'
import { RESULT_MAGIC, decryptResultToFolder } from './result-cipher.js'

/** What the chain says of a finalized task: the CID the scheduler finalized with and the agreed result hash. */
export interface FinalizedTask {
  resultsCid: string
  /** keccak256(taskid ‖ digest) of the consensus result */
  resultHash: string
  /** the task's deal (its workers hold the result) */
  dealid?: string
}

export interface RetrievedResult {
  taskId: string
  cid: string
  /** the unpacked output folder */
  path: string
  /** the app's stdout, as the worker captured it ('' when the app printed nothing) */
  stdout: string
  encrypted: boolean
  digest: string
}

/**
 * Fetches a finalized task's result archive from the swarm, decrypts it with
 * the requester's key when it was encrypted, unpacks it into `dest` (which is
 * replaced) and checks it against the chain: the digest of what was unpacked
 * must give the task's on-chain result hash, or nothing is kept
 * (RESULT_DIGEST_MISMATCH). A result can be read by anyone who has its CID
 * unless it was encrypted to the requester.
 */
export async function retrieveResult (init: {
  helia: ContentHelia
  taskId: string
  finalized: FinalizedTask
  dest: string
  /** the requester's key, for encrypted results */
  privateKey: EciesPrivateKey
  timeoutMs: number
}): Promise<RetrievedResult> {
  const { taskId, finalized, dest } = init
  const archive = `${dest}.archive`
  await mkdir(join(dest, '..'), { recursive: true })
  await rm(dest, { recursive: true, force: true })
  try {
    await fetchToFile(init.helia, finalized.resultsCid, archive, { signal: AbortSignal.timeout(init.timeoutMs) })
    // an encrypted result starts with its own magic (result-cipher.ts); a plain one is a tar
    const encrypted = await startsWith(archive, RESULT_MAGIC)
    if (encrypted) {
      await decryptResultToFolder(createReadStream(archive), init.privateKey, dest, { taskid: taskId })
    } else {
      await unpackArchive(createReadStream(archive), dest)
    }
    const { digest } = await computeResultDigest(dest)
    // the chain is the source of truth: what we unpacked must be what the workers agreed on
    if (resultHash(taskId, digest).toLowerCase() !== finalized.resultHash.toLowerCase()) {
      throw new StorageError('RESULT_DIGEST_MISMATCH', `the result at ${finalized.resultsCid} does not match task ${taskId}'s on-chain result`, { taskId, cid: finalized.resultsCid })
    }
    let stdout = ''
    try {
      stdout = await readFile(join(dest, STDOUT_FILE), 'utf8')
    } catch {
      // an app may write nothing to stdout
    }
    return { taskId, cid: finalized.resultsCid, path: dest, stdout, encrypted, digest }
  } catch (err) {
    await rm(dest, { recursive: true, force: true })
    throw err
  } finally {
    await rm(archive, { force: true })
  }
}

async function startsWith (file: string, prefix: Uint8Array): Promise<boolean> {
  const fh = await open(file, 'r')
  try {
    const buf = new Uint8Array(prefix.byteLength)
    const { bytesRead } = await fh.read(buf, 0, buf.byteLength, 0)
    return bytesRead === prefix.byteLength && buf.every((b, i) => b === prefix[i])
  } finally {
    await fh.close()
  }
}
