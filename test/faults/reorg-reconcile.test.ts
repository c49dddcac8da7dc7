/**
 * Scheduler and worker records through a reorg (real nodes in this process,
 * real anvil): blocks the nodes acted on are replaced (evm_revert to a
 * snapshot, then a different block at the same height), the followers
 * rewind and hand the removed events to the scheduler and the worker.
 *
 * anvil drops the transactions of the blocks it reverts (a real node puts
 * them back in its pool): the senders are told to read their nonces again,
 * and the test sends the deal's transaction again where the deal is to be
 * mined again.
 */
import assert from 'node:assert/strict'
import { TaskStatus } from '../../contracts-abi/index.js'
import { taskId } from '../../protocols/eip712.js'
import { ExecSwarm, waitFor } from '../integration/execution-harness.js'

describe('faults: scheduler and worker records reconcile with the chain after a reorg (real nodes, real anvil)', function () {
  this.timeout(240_000)
  let swarm: ExecSwarm | undefined

  after(async () => {
    await swarm?.close()
    swarm = undefined
  })

  /** transactions the nodes' senders are sending or waiting for */
  let inFlight = 0
  const replaceHead = async (snapshot: string): Promise<void> => {
    const s = swarm!
    const provider = s.requester.provider
    // a transaction in flight through the revert would come back at a nonce the new chain has given
    // to another (anvil drops the reverted transactions): the nodes' senders settle first
    await waitFor(() => inFlight === 0, 60_000, 'the nodes\' transactions to settle')
    const head = await provider.getBlockNumber()
    // what the nodes did is taken back from the events their followers handed on: they read up to the head first
    await waitFor(() => s.nodes.every((n) => (n.follower.position?.blockNumber ?? 0) > head), 60_000, 'the followers to read up to the head')
    // the followers wait while the senders learn their nonces again: a worker that heard of the
    // reorg first would send at its old nonce, past a gap anvil's revert made
    for (const n of s.nodes) await n.follower.stop()
    await provider.send('evm_revert', [snapshot])
    for (const c of [s.requester, s.appOwner, ...s.nodes.map((n) => n.client)]) c.sender.resetNonce()
    // a block at the reverted height, with another hash: the followers find the one they read replaced
    await s.appOwner.sender.send({ to: s.appOwner.address, value: 1n })
    // and the new chain past the old head, as a live chain would be soon
    for (let i = 0; i < 64 && await provider.getBlockNumber() <= head; i++) await provider.send('evm_mine', [])
    for (const n of s.nodes) await n.follower.start()
  }

  before(async () => {
    // worker 1 waits a little before running: a snapshot is taken before its commit.
    // Every send of a node counts, the scheduler's too: its hub view binds the sender's send when
    // it is built, so the count goes on before (a stake release whose receipt the scheduler still
    // waits for when anvil drops it would hold its tick until the receipt timeout)
    swarm = await ExecSwarm.create(2, { 1: { delayBeforeRunMs: 1_500 } }, {
      client: (_i, client) => {
        const sender = client.sender
        const send = sender.send.bind(sender)
        sender.send = async (...args: Parameters<typeof send>) => {
          inFlight++
          try {
            return await send(...args)
          } finally {
            inFlight--
          }
        }
      }
    })
  })

  it('a task whose finalize is reorged out is finalized again; a deal reorged out is forgotten, and taken again when mined again', async () => {
    const s = swarm!
    const provider = s.requester.provider

    // 1. the finalize (trust 1: the worker's contributeAndFinalize) is reorged out, the deal stays
    const deal = await s.makeDeal({ trust: 1, workers: [1] })
    const taskid = taskId(deal.dealid, 0).toLowerCase()
    const beforeCommit = await provider.send('evm_snapshot', []) as string
    await s.waitCompleted(deal.dealid, 0, 60_000)
    const [first] = await s.workerClosed(1, deal.dealid, [0], 30_000)
    assert.equal(first?.state, 'done')
    const hub = s.requester.hub!
    await waitFor(async () => (await hub.dealOf(deal.dealid)).schedulerLocked === 0n, 30_000, 'the scheduler\'s stake released')
    const [firstFinalize] = await hub.queryFilter(hub.filters.TaskFinalized(taskid), s.chain.blockNumber)
    await replaceHead(beforeCommit)
    assert.notEqual(await s.taskStatus(deal.dealid, 0), TaskStatus.COMPLETED, 'the reorg took the finalize back')
    // the worker's record goes back to computed and commits again, from the result it kept
    // (nobody else would: the scheduler's record and the worker's said the task was over)
    await s.waitCompleted(deal.dealid, 0, 60_000)
    const finalized = await hub.queryFilter(hub.filters.TaskFinalized(taskid), s.chain.blockNumber)
    assert.equal(finalized.length, 1, 'finalized once on the chain as it is now')
    assert.notEqual(finalized[0].blockHash, firstFinalize.blockHash, 'finalized again, in a block of the new chain')
    await waitFor(async () => (await s.nodes[1].worker.task(taskid))?.state === 'done', 30_000, 'the worker to record the task done again')

    // 2. a deal whose DealCreated is reorged out: every scheduler forgets it; mined again, it runs
    const beforeDeal = await provider.send('evm_snapshot', []) as string
    const second = await s.makeDeal({ trust: 1, workers: [1] })
    const created = await s.requester.hub!.queryFilter(s.requester.hub!.filters.DealCreated(second.dealid), s.chain.blockNumber)
    assert.equal(created.length, 1)
    const raw = await provider.send('eth_getRawTransactionByHash', [created[0].transactionHash]) as string
    await waitFor(async () => (await Promise.all(s.nodes.map(async (n) => await n.scheduler.dealRecord(second.dealid)))).every((r) => r !== undefined), 30_000, 'every scheduler to know the deal')
    await replaceHead(beforeDeal)
    await waitFor(async () => (await Promise.all(s.nodes.map(async (n) => await n.scheduler.dealRecord(second.dealid)))).every((r) => r === undefined), 30_000, 'every scheduler to forget the deal')
    // the same signed transaction mined again: the same deal, taken as new
    await provider.send('eth_sendRawTransaction', [raw])
    await waitFor(async () => (await Promise.all(s.nodes.map(async (n) => await n.scheduler.dealRecord(second.dealid)))).every((r) => r !== undefined), 30_000, 'every scheduler to know the deal again')
    await s.waitCompleted(second.dealid, 0, 90_000)
    const c = await s.conservation()
    assert.equal(c.held, c.accounted, 'RLC conserved to the nRLC')
  })

  it('trust 3: reveals and finalize reorged out: the workers reveal again and the scheduler finalizes again', async () => {
    const s = swarm!
    const provider = s.requester.provider
    const hub = s.requester.hub!
    const deal = await s.makeDeal({ trust: 3, workers: [0, 1] })
    const taskid = taskId(deal.dealid, 0).toLowerCase()
    // blocks by hand from here, so that the snapshot falls between the consensus and the reveals
    await provider.send('evm_setAutomine', [false])
    let consensus: string
    try {
      await waitFor(async () => {
        if ((await hub.queryFilter(hub.filters.TaskContributed(taskid), s.chain.blockNumber)).length >= 2) return true
        const pending = await provider.send('eth_getBlockByNumber', ['pending', false]) as { transactions: string[] }
        if (pending.transactions.length > 0) await provider.send('evm_mine', [])
        return false
      }, 60_000, 'both commits mined', 100)
      consensus = await provider.send('evm_snapshot', []) as string
    } finally {
      await provider.send('evm_setAutomine', [true])
      await provider.send('evm_mine', [])
    }
    await s.waitCompleted(deal.dealid, 0, 60_000)
    // (a worker's record is revealed, or done once the scheduler's finalized message came: both go back)
    await waitFor(async () => (await hub.queryFilter(hub.filters.TaskRevealed(taskid), s.chain.blockNumber)).length === 2, 30_000, 'both reveals mined')
    // the scheduler releases its stake once the deal is done: that transaction goes before the revert too
    await waitFor(async () => (await hub.dealOf(deal.dealid)).schedulerLocked === 0n, 30_000, 'the scheduler\'s stake released')
    const [firstFinalize] = await hub.queryFilter(hub.filters.TaskFinalized(taskid), s.chain.blockNumber)
    await replaceHead(consensus)
    assert.equal((await hub.queryFilter(hub.filters.TaskRevealed(taskid), s.chain.blockNumber)).length, 0, 'the reorg took the reveals back')
    // the workers' records were done: they go back to contributed and reveal again; the scheduler's reopens
    await s.waitCompleted(deal.dealid, 0, 90_000)
    assert.equal((await hub.queryFilter(hub.filters.TaskRevealed(taskid), s.chain.blockNumber)).length, 2, 'both revealed again')
    const finalized = await hub.queryFilter(hub.filters.TaskFinalized(taskid), s.chain.blockNumber)
    assert.equal(finalized.length, 1, 'finalized once on the chain as it is now')
    assert.notEqual(finalized[0].blockHash, firstFinalize.blockHash, 'finalized again, in a block of the new chain')
    const c = await s.conservation()
    assert.equal(c.held, c.accounted, 'RLC conserved to the nRLC')
  })
})
