import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DbController, Repository, bytesCodec } from '../../../node/db/index.js'
import { LevelCursorStore } from '../../../node/chain/level-cursor-store.js'
import { EventFollower } from '../../../node/chain/event-follower.js'
import { isChainError } from '../../../node/chain/errors.js'
import type { LogSource } from '../../../node/chain/event-follower.js'

describe('event cursor in the level store', () => {
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()?.()
  })

  it('a corrupt or truncated stored cursor fails the follower\'s start with CURSOR_STORE_FAILED, never a silent restart from scratch', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'iexec-cursor-'))
    cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
    const db = new DbController({ path: join(dir, 'db') })
    await db.open()
    cleanup.push(async () => { await db.close() })
    const store = new LevelCursorStore(db, 'hub')
    const hash = '0x' + 'ab'.repeat(32)
    await store.save({ blockNumber: 10, logIndex: 2, checkBlock: 9, checkHash: hash, recent: [{ block: 8, hash }, { block: 9, hash }] })
    assert.deepEqual(await store.load(), { blockNumber: 10, logIndex: 2, checkBlock: 9, checkHash: hash, recent: [{ block: 8, hash }, { block: 9, hash }] })
    // the same record, written as raw bytes the way a crash or an editor could leave it
    const raw = new Repository(db, 'chain-cursor', bytesCodec)
    const good = new TextEncoder().encode(JSON.stringify({ blockNumber: 10, logIndex: 2 }))
    const bad: Array<[string, Uint8Array]> = [
      ['truncated', good.slice(0, good.length - 3)],
      ['not utf-8', new Uint8Array([0xff, 0xfe, 0x00])],
      ['negative block', new TextEncoder().encode('{"blockNumber":-1,"logIndex":0}')],
      ['bad recent hash', new TextEncoder().encode(JSON.stringify({ blockNumber: 1, logIndex: 0, recent: [{ block: 1, hash: '0x12' }] }))]
    ]
    // a follower that must never reach the chain: the cursor is refused first
    const source = { provider: undefined, rpcUrl: 'http://127.0.0.1:9' } as unknown as LogSource
    for (const [what, bytes] of bad) {
      await raw.put('hub', bytes)
      await assert.rejects(store.load(), (e: unknown) => isChainError(e, 'CURSOR_STORE_FAILED'), what)
      const follower = new EventFollower(source, { address: '0x' + '11'.repeat(20), cursorStore: store, handler: async () => {} })
      await assert.rejects(follower.start(), (e: unknown) => isChainError(e, 'CURSOR_STORE_FAILED'), what)
    }
  })
})
