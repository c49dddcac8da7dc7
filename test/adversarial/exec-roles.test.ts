/**
 * The exec protocol bound to roles, on real nodes (libp2p, Helia, WASI) and
 * anvil: an evil node is a real node of the swarm whose channel sends what
 * an attacker would (forged scheduler messages, a replayed proof, garbage),
 * and a malicious scheduler is the deal's real scheduler sending
 * assignments it changed. Each case ends with the honest task completed,
 * the honest parties paid and the hub's RLC conserved to the nRLC.
 */
import assert from 'node:assert/strict'
import { Wallet } from 'ethers'
import { lpStream } from '@libp2p/utils'
import { TaskStatus } from '../../contracts-abi/index.js'
import { signAuthorization, taskId } from '../../protocols/eip712.js'
import { EXEC_PROTOCOL } from '../../protocols/execution.js'
import type { ExecMessage } from '../../protocols/execution.js'
import { isIexecError } from '../../node/common/errors.js'
import { ExecSwarm, RLC, waitFor } from '../integration/execution-harness.js'

/** The code a worker refused a message with (the sender's channel throws EXEC_REFUSED carrying it). */
async function refusal (p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    assert.ok(isIexecError(err, 'EXEC_REFUSED'), `a coded refusal, got ${String(err)}`)
    return String(err.details?.code)
  }
  assert.fail('the message was accepted')
}

describe('adversarial: the exec protocol bound to roles (4 real nodes, anvil)', function () {
  this.timeout(240_000)
  let s: ExecSwarm | undefined

  afterEach(async () => {
    await s?.close()
    s = undefined
  })

  it('a non-scheduler peer\'s assign, upload-request and finalized are refused and counted; a co-worker and an early scheduler get no result before consensus; the honest task completes', async () => {
    // distinct delays: whichever two workers the scheduler picks, one has contributed long before the other
    s = await ExecSwarm.create(4, { 1: { delayBeforeRunMs: 8_000 }, 2: { delayBeforeRunMs: 16_000 } })
    const sw = s
    const held0 = await sw.conservation()
    assert.equal(held0.held, held0.accounted)
    const deal = await sw.makeDeal({ trust: 3, workers: [0, 1, 2] })
    const taskid = taskId(deal.dealid, 0)
    const sched = sw.nodeIndexOf(deal.scheduler)

    // P: a worker whose commit is on the hub while the task still waits for consensus
    let probe = -1
    await waitFor(async () => {
      for (const i of [0, 1, 2]) {
        if ((await sw.nodes[i].worker.task(taskid))?.state === 'contributed' && await sw.taskStatus(deal.dealid, 0) === TaskStatus.ACTIVE) {
          probe = i
          return true
        }
      }
      return false
    }, 90_000, 'a worker contributed before consensus', 100)
    // E: a co-worker of the deal that is neither the probed worker nor the scheduler
    const evil = [0, 1, 2, 3].find((i) => i !== probe && i !== sched) as number
    const P = sw.nodes[probe]
    const E = sw.nodes[evil]
    const send = async (m: ExecMessage): Promise<unknown> => await E.channel.send(P.node.peerId, m)
    const evilProof = await sw.proofOf(evil)
    const schedProof = await sw.proofOf(sched)

    // the result before consensus: to a co-worker with its own proof, or with the scheduler's proof replayed
    assert.equal(await refusal(send({ type: 'upload-request', taskid, proof: evilProof })), 'DUTY_NOT_SCHEDULER')
    assert.equal(await refusal(send({ type: 'upload-request', taskid, proof: schedProof })), 'DUTY_NOT_SCHEDULER')
    // a forged finalized: the worker keeps its committed task (it still owes its reveal)
    assert.equal(await refusal(send({ type: 'finalized', taskid, txHash: '0x' + '11'.repeat(32), cid: 'bafkreidwcmhwohc4ia6s7nkx4f2eehx2dbz5bx5uqvgkfruzheookup4ym', proof: evilProof })), 'DUTY_NOT_SCHEDULER')
    assert.equal(await refusal(send({ type: 'reveal-request', taskid, proof: schedProof })), 'DUTY_NOT_SCHEDULER')
    // a forged assign: the evil node's own authorization and proof
    const authorization = await signAuthorization(E.node.wallet, sw.domain, { worker: P.node.address, taskid })
    const asset = await sw.requester.hub!.appOf(sw.app)
    assert.equal(await refusal(send({
      type: 'assign', proof: evilProof, dealid: deal.dealid, tasks: [{ idx: 0, authorization }], trust: 3, app: sw.app,
      appContent: { cid: asset.cid, checksum: asset.checksum }, params: JSON.stringify({ iexec_input_files: [sw.inputCid] }), deadline: 2 ** 32
    })), 'DUTY_NOT_SCHEDULER')
    // garbage on the wire: no answer, the stream is closed, the sender counted
    const stream = await E.node.network.dialProtocol(P.node.peerId, EXEC_PROTOCOL)
    const lp = lpStream(stream)
    await lp.write(new TextEncoder().encode('{"type":"upload-request","taskid":"0x12"}'))
    await assert.rejects(lp.read({ signal: AbortSignal.timeout(10_000) }))

    // the real scheduler too gets nothing before consensus, and its finalized is believed only from the hub
    if (sched !== probe) {
      assert.equal(await refusal(sw.nodes[sched].channel.send(P.node.peerId, { type: 'upload-request', taskid, proof: schedProof })), 'DUTY_RESULT_NOT_DUE')
      await sw.nodes[sched].channel.send(P.node.peerId, { type: 'finalized', taskid, txHash: '0x' + '11'.repeat(32), cid: 'bafkreidwcmhwohc4ia6s7nkx4f2eehx2dbz5bx5uqvgkfruzheookup4ym', proof: schedProof })
    }
    assert.equal((await P.worker.task(taskid))?.state, 'contributed', 'the worker still holds its committed task')

    const against = sw.offences.filter((o) => o.node === probe && o.peer === E.node.peerId).map((o) => o.code)
    assert.deepEqual(against.sort(), ['DUTY_NOT_SCHEDULER', 'DUTY_NOT_SCHEDULER', 'DUTY_NOT_SCHEDULER', 'DUTY_NOT_SCHEDULER', 'DUTY_NOT_SCHEDULER', 'EXEC_WIRE_INVALID'], 'each forged or malformed message counts toward the evil peer\'s ban')
    assert.equal(sw.offences.filter((o) => o.peer === sw.nodes[sched].node.peerId).length, 0, 'the honest scheduler is never counted')

    // the honest task goes on: consensus, reveal, upload to the scheduler, finalize
    await sw.waitCompleted(deal.dealid, 0, 120_000)
    assert.equal(await sw.resultText(await sw.resultsCid(deal.dealid, 0), 3), sw.expectedOutput())
    const contributors = (await sw.requester.hub!.contributorsOf(taskid)).map((a) => a.toLowerCase())
    assert.ok(contributors.includes(P.node.address.toLowerCase()))
    assert.equal(Number((await sw.requester.hub!.contributionOf(taskid, P.node.address)).status), 2, 'the probed worker proved its contribution (revealed)')
    const held1 = await sw.conservation()
    assert.equal(held1.held, held1.accounted, 'RLC held by the hub equals balances + frozen + stakes + kitty')
    assert.equal(held1.held, held0.held, 'no RLC entered or left the hub')
    assert.equal((await sw.requester.hub!.accountOf(sw.requester.address))[1], 0n, 'nothing of the requester stays frozen')
  })

  it('a malicious scheduler swapping the app, the params or the result key is refused by the worker with DUTY_ASSIGNMENT_MISMATCH; the honest task completes, encrypted to the requester', async () => {
    s = await ExecSwarm.create(3)
    const sw = s
    const held0 = await sw.conservation()
    const requesterBefore = (await sw.requester.hub!.accountOf(sw.requester.address))[0]
    const other = await sw.registerApp('primes')
    const params = JSON.stringify({ iexec_input_files: [sw.inputCid], iexec_result_encryption: true })
    const deal = await sw.makeDeal({ trust: 1, workers: [0, 1], params })
    const sched = sw.nodeIndexOf(deal.scheduler)
    // a worker of the deal other than the scheduler (its messages cross the network)
    const target = [0, 1].find((i) => i !== sched) as number
    const requesterKey = sw.requesterWallet().signingKey.compressedPublicKey
    const otherAsset = await sw.requester.hub!.appOf(other)
    const swapped = async (change: Parameters<ExecSwarm['assign']>[6]): Promise<string> => await refusal(sw.assign(sched, target, deal.dealid, 0, 1, params, change))
    assert.equal(await swapped((m) => ({ ...m, app: other, appContent: { cid: otherAsset.cid, checksum: otherAsset.checksum }, resultEncryptionKey: requesterKey })), 'DUTY_ASSIGNMENT_MISMATCH')
    assert.equal(await swapped((m) => ({ ...m, params: JSON.stringify({ iexec_input_files: [sw.inputCid], iexec_result_encryption: true, iexec_args: 'x' }), resultEncryptionKey: requesterKey })), 'DUTY_ASSIGNMENT_MISMATCH')
    assert.equal(await swapped((m) => ({ ...m, params: JSON.stringify({ iexec_input_files: [sw.inputCid] }) })), 'DUTY_ASSIGNMENT_MISMATCH')
    assert.equal(await swapped((m) => m), 'DUTY_ASSIGNMENT_MISMATCH', 'the result key stripped')
    assert.equal(await swapped((m) => ({ ...m, resultEncryptionKey: Wallet.createRandom().signingKey.compressedPublicKey })), 'DUTY_ASSIGNMENT_MISMATCH')
    assert.equal(sw.offences.filter((o) => o.node === target && o.peer === sw.nodes[sched].node.peerId && o.code === 'DUTY_ASSIGNMENT_MISMATCH').length, 5, 'each swap counts toward the scheduler\'s ban')

    await sw.waitCompleted(deal.dealid, 0, 90_000)
    const cid = await sw.resultsCid(deal.dealid, 0)
    assert.equal(await sw.decryptedResultText(cid, taskId(deal.dealid, 0), 2), sw.expectedOutput())
    const held1 = await sw.conservation()
    assert.equal(held1.held, held1.accounted)
    assert.equal(held1.held, held0.held)
    assert.equal(requesterBefore - (await sw.requester.hub!.accountOf(sw.requester.address))[0], 2n * RLC + deal.workerPrice, 'the requester paid the app and one task, nothing more')
    assert.equal((await sw.requester.hub!.accountOf(sw.requester.address))[1], 0n, 'nothing of the requester stays frozen')
  })
})
