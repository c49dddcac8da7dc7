// Fakes of the narrow interfaces the worker duties' parts are built on (no chain, no libp2p).
import type { TaskStore, WorkerTaskRecord } from '../../../node/worker/duties-book.js'
import { ChainError } from '../../../node/chain/index.js'

export const DEAL = '0x' + 'd'.repeat(64)
export const ME = '0x' + '1'.repeat(40)

/** A task record in state `state` (defaults fill the rest). */
export function rec (over: Partial<WorkerTaskRecord> & { taskid: string }): WorkerTaskRecord {
  return {
    dealid: DEAL,
    idx: 0,
    trust: 1,
    schedulerPeer: 'peerS',
    authorization: '0xauth',
    app: '0x' + 'a'.repeat(40),
    appCid: 'bafyapp',
    appChecksum: '0x00',
    params: '',
    state: 'computed',
    digest: '0x' + '5'.repeat(64),
    ...over
  }
}

/** level, as a Map: every write is counted. */
export class MemoryStore implements TaskStore {
  readonly map = new Map<string, WorkerTaskRecord>()
  puts = 0
  batches = 0
  async load (): Promise<void> {}
  async * entries (): AsyncIterable<{ key: string, value: WorkerTaskRecord }> {
    for (const [key, value] of this.map) yield { key, value }
  }

  async get (key: string): Promise<WorkerTaskRecord | undefined> { return this.map.get(key) }
  async put (key: string, value: WorkerTaskRecord): Promise<void> { this.puts++; this.map.set(key, value) }
  async batch (ops: Array<{ type: 'put', key: string, value: WorkerTaskRecord }>): Promise<void> {
    this.batches++
    for (const op of ops) this.map.set(op.key, op.value)
  }
}

export const revert = (): ChainError => new ChainError('CONTRACT_REVERT', 'reverted', {})

/** Resolves after `ms`. */
export const wait = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Polls `cond` until it holds (bounded). */
export async function until (cond: () => boolean, timeoutMs = 2_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await wait(2)
  }
}
