/**
 * A run's bounds are its deal's category's, as the hub defines it: the
 * hub owner creates a category with a 2 s time reference and one with
 * 32 MiB of memory; a clang-built app that sleeps an hour is killed at 2 s
 * (not at another category's 60 s), and one that allocates until malloc
 * fails is stopped at 32 MiB. Real nodes, a real anvil, the real executor.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { mkdtemp, rm } from 'node:fs/promises'
import { buildCApp } from '../../examples/build-c-apps.js'
import { createChainClient } from '../../node/chain/index.js'
import { taskId } from '../../protocols/eip712.js'
import { TaskStatus } from '../../contracts-abi/index.js'
import { ExecSwarm, waitFor } from './execution-harness.js'

describe('categories set the run limits the worker enforces', function () {
  this.timeout(180_000)
  let swarm: ExecSwarm
  let apps: string
  let tiny: number
  let lowMemory: number

  before(async () => {
    apps = await mkdtemp(join(tmpdir(), 'iexec-category-apps-'))
    swarm = await ExecSwarm.create(2)
    // the hub owner (the deployer) creates the categories
    const owner = await createChainClient({ rpcUrl: swarm.anvil.rpcUrl, privateKey: swarm.anvil.privateKeys[0], hub: swarm.chain.hub, rlc: swarm.chain.rlc })
    try {
      const hub = owner.hub!
      tiny = Number(await hub.categoryCount())
      await owner.sender.send(hub.createCategory.populateTransaction('TINY', 2, 256, 64))
      lowMemory = tiny + 1
      await owner.sender.send(hub.createCategory.populateTransaction('LOWMEM', 60, 32, 64))
    } finally {
      await owner.close()
    }
  })
  after(async () => {
    await swarm?.close()
    if (apps !== undefined) await rm(apps, { recursive: true, force: true })
  })

  async function failureOf (app: string, category: number, args: string): Promise<{ error: string, code?: string }> {
    const deal = await swarm.makeDeal({ trust: 1, app, workers: [1], category, params: JSON.stringify({ iexec_args: args }) })
    const taskid = taskId(deal.dealid, 0)
    let error = ''
    let code: string | undefined
    await waitFor(async () => {
      const held = await swarm.nodes[1].worker.task(taskid)
      if (held?.state !== 'failed') return false
      error = held.error ?? ''
      code = held.errorCode
      return true
    }, 60_000, `the worker records the task of category ${category} failed`)
    assert.equal(await swarm.taskStatus(deal.dealid, 0), TaskStatus.UNSET, 'nothing was contributed')
    return { error, ...(code !== undefined ? { code } : {}) }
  }

  it('a 2 s category kills an app sleeping for an hour at 2 s', async () => {
    const sleep = await swarm.registerModule('sleep', new Uint8Array(await readFile(await buildCApp('sleep', join(apps, 'sleep.wasm')))))
    const t0 = Date.now()
    const { error } = await failureOf(sleep, tiny, '3600')
    assert.match(error, /TIMEOUT/)
    assert.match(error, /time bound of 2000 ms/, 'the category\'s time reference is the bound')
    assert.ok(Date.now() - t0 < 50_000, 'killed long before the XS category\'s 60 s')
  })

  it('a 32 MiB category stops an app that allocates until malloc fails', async () => {
    const hog = await swarm.registerModule('hog', new Uint8Array(await readFile(await buildCApp('hog', join(apps, 'hog.wasm')))))
    const { error } = await failureOf(hog, lowMemory, '')
    assert.match(error, /MEMORY_EXCEEDED/)
    assert.match(error, new RegExp(`${32 * 1024 * 1024}-byte bound`), 'the category\'s memory is the bound')
  })
})
