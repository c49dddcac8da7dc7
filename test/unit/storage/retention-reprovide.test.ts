// BlockRetention's provides, on their own: a content many tasks use is
// provided once per reprovide period, not once per task; a failed provide is
// tried again at the next use. The Helia part is a map (a unit test of one
// module; the real DHT is in test/integration/datasets.test.ts).
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import * as raw from 'multiformats/codecs/raw'
import { DbController } from '../../../node/db/index.js'
import { BlockRetention } from '../../../node/storage/retention.js'
import type { RetentionHelia } from '../../../node/storage/retention.js'
import { waitFor } from '../../helpers/wait.js'

async function cidOf (text: string): Promise<CID> {
  return CID.create(1, raw.code, await sha256.digest(new TextEncoder().encode(text)))
}

describe('storage: retention provides a content once per reprovide period', () => {
  let dir: string
  let db: DbController
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-retention-'))
    db = new DbController({ path: join(dir, 'db') })
    await db.open()
  })
  afterEach(async () => {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('200 uses of one app: one provide, then one more after the period; a failed provide is retried', async () => {
    const app = await cidOf('the app module')
    const held = new Set<string>([app.toString()])
    const pinned = new Set<string>()
    const helia: RetentionHelia = {
      blockstore: { has: (c) => held.has(c.toString()), delete: (c) => { held.delete(c.toString()) } },
      pins: {
        add: async function * (c) { pinned.add(c.toString()); yield c },
        rm: async function * (c) { pinned.delete(c.toString()); yield c },
        isPinned: async (c) => pinned.has(c.toString())
      }
    }
    let now = 1_000_000
    let fail = true
    const provides: string[] = []
    const retention = new BlockRetention({
      helia,
      db,
      provide: async (c) => {
        provides.push(c.toString())
        if (fail) throw new Error('no DHT peer')
      },
      reprovideMs: 60_000,
      now: () => now
    })
    // the first use finds the app not held: it is fetched, retained and provided (that provide fails)
    held.delete(app.toString())
    let keep = await retention.prepare([app.toString()])
    held.add(app.toString())
    await keep()
    await waitFor(() => provides.length === 1, 5_000, 'the first provide')
    fail = false
    // the next 199 uses: the failed provide is tried once more, then no more within the period
    for (let i = 0; i < 199; i++) {
      keep = await retention.prepare([app.toString()])
      await keep()
      await new Promise((resolve) => setImmediate(resolve))
    }
    assert.equal(provides.length, 2, `one failed and one successful provide, not one per task (${provides.length})`)
    assert.equal((await retention.list()).length, 1, 'one retention record')
    now += 60_001
    keep = await retention.prepare([app.toString()])
    await keep()
    await waitFor(() => provides.length === 3, 5_000, 'the provide after the period')
  })
})
