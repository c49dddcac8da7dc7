import { mkdir, readFile } from 'node:fs/promises'
import { writeFileDurable } from '../common/durable-file.js'
import { dirname } from 'node:path'
import { ChainError } from './errors.js'

/**
 * Where the event follower stands. Every log before (`blockNumber`,
 * `logIndex`) has been handled; reading resumes at that position.
 * `checkBlock`/`checkHash` name the last block read from, to detect that it
 * was replaced (a reorg deeper than the confirmations).
 */
export interface Cursor {
  blockNumber: number
  logIndex: number
  checkBlock?: number
  checkHash?: string
  /**
   * Earlier blocks read from, oldest first (bounded): where a rewind looks
   * for the common ancestor when `checkBlock` was replaced.
   */
  recent?: Array<{ block: number, hash: string }>
}

/** Most `recent` entries a cursor keeps. */
export const CURSOR_RECENT_MAX = 32

/** Persistence of one follower's cursor. The node wires a level-backed one; tests and tools use the JSON file. */
export interface CursorStore {
  load: () => Promise<Cursor | undefined>
  save: (cursor: Cursor) => Promise<void>
}

/** A stored cursor, checked field by field (a truncated or edited file must not move the follower). */
export function isCursor (v: unknown): v is Cursor {
  if (typeof v !== 'object' || v === null) return false
  const c = v as Record<string, unknown>
  const nat = (x: unknown): boolean => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
  const hash = (x: unknown): boolean => typeof x === 'string' && /^0x[0-9a-fA-F]{64}$/.test(x)
  return nat(c.blockNumber) && nat(c.logIndex) &&
    (c.checkBlock === undefined || nat(c.checkBlock)) &&
    (c.checkHash === undefined || hash(c.checkHash)) &&
    (c.recent === undefined || (Array.isArray(c.recent) && c.recent.length <= CURSOR_RECENT_MAX &&
      c.recent.every((r: unknown) => typeof r === 'object' && r !== null && nat((r as Record<string, unknown>).block) && hash((r as Record<string, unknown>).hash))))
}

/**
 * A cursor in a JSON file. Writes go to a temporary file, fsynced, renamed over
 * the old one, so a crash mid-write leaves the previous cursor, never half a file.
 */
export class JsonFileCursorStore implements CursorStore {
  constructor (readonly path: string) {}

  async load (): Promise<Cursor | undefined> {
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined
      throw new ChainError('CURSOR_STORE_FAILED', `cannot read cursor file ${this.path}`, { path: this.path }, { cause: err })
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (err) {
      throw new ChainError('CURSOR_STORE_FAILED', `cursor file ${this.path} is not JSON`, { path: this.path }, { cause: err })
    }
    if (!isCursor(parsed)) throw new ChainError('CURSOR_STORE_FAILED', `cursor file ${this.path} has no valid cursor`, { path: this.path })
    return parsed
  }

  async save (cursor: Cursor): Promise<void> {
    const tmp = `${this.path}.${process.pid}.tmp`
    try {
      await mkdir(dirname(this.path), { recursive: true })
      await writeFileDurable(this.path, JSON.stringify(cursor) + '\n', { tmp, mode: 0o644 })
    } catch (err) {
      throw new ChainError('CURSOR_STORE_FAILED', `cannot write cursor file ${this.path}`, { path: this.path }, { cause: err })
    }
  }
}

/** A cursor kept in memory only (lost on restart): for tools that always start from a given block. */
export class MemoryCursorStore implements CursorStore {
  private cursor: Cursor | undefined
  async load (): Promise<Cursor | undefined> { return this.cursor === undefined ? undefined : { ...this.cursor } }
  async save (cursor: Cursor): Promise<void> { this.cursor = { ...cursor } }
}
