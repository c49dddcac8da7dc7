import assert from 'node:assert/strict'
import { Wallet } from 'ethers'
import type { HDNodeWallet } from 'ethers'
import { hubDomain, signAuthorization, taskId } from '../../../protocols/eip712.js'
import { signExecPeer } from '../../../protocols/execution.js'
import type { AssignMessage } from '../../../protocols/execution.js'
import { isIexecError } from '../../../node/common/errors.js'
import type { DealInfo } from '../../../node/chain/deal.js'
import { AssignmentChecks } from '../../../node/worker/duties-checks.js'
import { dealInfo } from '../scheduler/fakes.js'
import { DEAL } from './duties-fakes.js'

const domain = hubDomain(31337, Wallet.createRandom().address)
const scheduler = Wallet.createRandom()
const newScheduler = Wallet.createRandom()
const stranger = Wallet.createRandom()
const me = Wallet.createRandom()
const requester = Wallet.createRandom()
const APP = '0x' + 'a1'.repeat(20)
const DATASET = '0x' + 'da'.repeat(20)
const APP_CONTENT = { cid: 'bafyapp', checksum: '0x' + 'ab'.repeat(32) }
const DATASET_CONTENT = { cid: 'bafyds', checksum: '0x' + 'cd'.repeat(32) }
const PEER = 'peerS'

/** Asserts `p` rejects with an IexecError of `code` (and `field` in its details, when given). */
async function rejectsWith (p: Promise<unknown>, code: string, field?: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isIexecError(err), String(err))
    assert.equal(err.code, code, err.message)
    if (field !== undefined) assert.equal((err.details as { field?: string }).field, field)
    return true
  })
}

interface Harness {
  checks: AssignmentChecks
  hub: { scheduler: string, trust: bigint, workers: Set<string>, noDeal: boolean }
  /** the deal's DealCreated as the hub emitted it (undefined: none) */
  created: { value: DealInfo | undefined }
  reads: string[]
}

function harness (o: { datasets?: boolean, dealCommitment?: DealInfo } = {}): Harness {
  const reads: string[] = []
  const h: Harness = {
    hub: { scheduler: scheduler.address, trust: 1n, workers: new Set([me.address]), noDeal: false },
    created: { value: dealInfo({ dealid: DEAL, scheduler: scheduler.address, requester: requester.address, app: APP, params: '{}' }) },
    reads,
    checks: undefined as unknown as AssignmentChecks
  }
  h.checks = new AssignmentChecks({
    hub: {
      dealOf: async () => {
        reads.push('dealOf')
        if (h.hub.noDeal) throw new Error('no such deal')
        return { scheduler: h.hub.scheduler, trust: h.hub.trust }
      },
      isDealWorker: async (_dealid, worker) => { reads.push('isDealWorker'); return h.hub.workers.has(worker) },
      appOf: async () => { reads.push('appOf'); return APP_CONTENT },
      datasetOf: async () => { reads.push('datasetOf'); return DATASET_CONTENT },
      categoryOf: async (category) => { reads.push(`categoryOf:${category}`); return { timeRef: 300n, memoryMiB: 512n, diskMiB: 1024n } }
    },
    domain,
    me: me.address,
    datasets: o.datasets ?? true,
    ...(o.dealCommitment !== undefined ? { dealCommitment: async () => o.dealCommitment } : {}),
    dealCreated: async () => { reads.push('dealCreated'); return h.created.value }
  })
  return h
}

/** An assign of tasks `idxs` of DEAL, signed by `by` (the proof for peer PEER, the authorizations for `worker`). */
async function assign (over: Partial<AssignMessage> = {}, o: { by?: HDNodeWallet, proofBy?: HDNodeWallet, worker?: string, idxs?: number[] } = {}): Promise<AssignMessage> {
  const by = o.by ?? scheduler
  const tasks = await Promise.all((o.idxs ?? [0, 1]).map(async (idx) => ({
    idx,
    authorization: await signAuthorization(by, domain, { worker: o.worker ?? me.address, taskid: taskId(DEAL, idx) })
  })))
  return {
    type: 'assign',
    proof: await signExecPeer(o.proofBy ?? by, domain, PEER),
    dealid: DEAL,
    tasks,
    trust: 1,
    app: APP,
    appContent: APP_CONTENT,
    params: '{}',
    deadline: 2_000,
    ...over
  }
}

const count = (h: Harness, read: string): number => h.reads.filter((r) => r === read).length

describe('worker duties: the assignment checks', () => {
  describe('checkAssign', () => {
    it('accepts what the deal\'s scheduler assigns as the requester signed it, and answers the tasks with their ids', async () => {
      const h = harness()
      const tasks = await h.checks.checkAssign(await assign(), PEER)
      assert.deepEqual(tasks.map((t) => [t.idx, t.taskid]), [[0, taskId(DEAL, 0).toLowerCase()], [1, taskId(DEAL, 1).toLowerCase()]])
      assert.ok(tasks.every((t) => t.authorization.startsWith('0x')))
    })

    it('reads the deal\'s commitment, membership and app once for later assigns', async () => {
      const h = harness()
      await h.checks.checkAssign(await assign(), PEER)
      await h.checks.checkAssign(await assign({}, { idxs: [2] }), PEER)
      assert.deepEqual([count(h, 'dealCreated'), count(h, 'isDealWorker'), count(h, 'appOf'), count(h, 'dealOf')], [1, 1, 1, 1])
    })

    it('refuses a sender that is not the deal\'s scheduler before reading anything of its message', async () => {
      const h = harness()
      await rejectsWith(h.checks.checkAssign(await assign({}, { by: stranger }), PEER), 'DUTY_NOT_SCHEDULER')
      // the scheduler's proof, replayed by another peer
      await rejectsWith(h.checks.checkAssign(await assign(), 'peerStranger'), 'DUTY_NOT_SCHEDULER')
      await rejectsWith(h.checks.checkAssign(await assign({ proof: '0x1234' }), PEER), 'DUTY_NOT_SCHEDULER')
      assert.equal(count(h, 'dealCreated'), 0)
      assert.equal(count(h, 'isDealWorker'), 0)
    })

    it('follows a reelection: the deal is read again when another signer speaks, and the old scheduler is refused', async () => {
      const h = harness()
      await h.checks.checkAssign(await assign(), PEER)
      h.hub.scheduler = newScheduler.address
      await h.checks.checkAssign(await assign({}, { by: newScheduler }), PEER)
      assert.equal(count(h, 'dealOf'), 2)
      await rejectsWith(h.checks.checkAssign(await assign(), PEER), 'DUTY_NOT_SCHEDULER')
    })

    it('refuses authorizations not signed by the deal\'s scheduler, made for another worker, or that do not recover', async () => {
      const h = harness()
      await rejectsWith(h.checks.checkAssign(await assign({}, { by: stranger, proofBy: scheduler }), PEER), 'DUTY_NOT_AUTHORIZED')
      await rejectsWith(h.checks.checkAssign(await assign({}, { worker: stranger.address }), PEER), 'DUTY_NOT_AUTHORIZED')
      const m = await assign()
      await rejectsWith(h.checks.checkAssign({ ...m, tasks: [{ idx: 0, authorization: '0xdead' }] }, PEER), 'DUTY_NOT_AUTHORIZED')
      // an authorization of task 0 passed off as task 1's
      await rejectsWith(h.checks.checkAssign({ ...m, tasks: [{ idx: 1, authorization: m.tasks[0].authorization }] }, PEER), 'DUTY_NOT_AUTHORIZED')
    })

    it('refuses a trust other than the deal\'s, a deal the hub does not know, and a deal this node is not a worker of', async () => {
      const h = harness()
      await rejectsWith(h.checks.checkAssign(await assign({ trust: 3 }), PEER), 'DUTY_BAD_TASK')
      h.hub.workers.clear()
      await rejectsWith(h.checks.checkAssign(await assign(), PEER), 'DUTY_NOT_A_WORKER')
      const gone = harness()
      gone.hub.noDeal = true
      await rejectsWith(gone.checks.checkAssign(await assign(), PEER), 'DUTY_BAD_TASK')
      const noEvent = harness()
      noEvent.created.value = undefined
      await rejectsWith(noEvent.checks.checkAssign(await assign(), PEER), 'DUTY_BAD_TASK')
    })

    it('refuses an app, dataset or params other than the ones the requester signed', async () => {
      const h = harness()
      await rejectsWith(h.checks.checkAssign(await assign({ app: '0x' + 'ee'.repeat(20) }), PEER), 'DUTY_ASSIGNMENT_MISMATCH', 'app')
      await rejectsWith(h.checks.checkAssign(await assign({ params: '{"iexec_args":"--steal"}' }), PEER), 'DUTY_ASSIGNMENT_MISMATCH', 'params')
      await rejectsWith(h.checks.checkAssign(await assign({ dataset: { address: DATASET, ...DATASET_CONTENT } }), PEER), 'DUTY_ASSIGNMENT_MISMATCH', 'dataset')
      assert.equal(count(h, 'isDealWorker'), 0, 'refused before anything else is read')
    })

    it('refuses app content other than the hub\'s registry (CID or checksum)', async () => {
      const h = harness()
      await rejectsWith(h.checks.checkAssign(await assign({ appContent: { ...APP_CONTENT, cid: 'bafyevil' } }), PEER), 'DUTY_BAD_APP')
      await rejectsWith(h.checks.checkAssign(await assign({ appContent: { ...APP_CONTENT, checksum: '0x' + '00'.repeat(32) } }), PEER), 'DUTY_BAD_APP')
      // the checksum's case does not matter
      await h.checks.checkAssign(await assign({ appContent: { ...APP_CONTENT, checksum: APP_CONTENT.checksum.toUpperCase().replace('0X', '0x') } }), PEER)
    })

    it('checks a dataset against the registry, and refuses one when this worker cannot get keys', async () => {
      const withDataset = (): Harness => {
        const h = harness()
        h.created.value = { ...h.created.value!, dataset: DATASET }
        return h
      }
      const ok = withDataset()
      await ok.checks.checkAssign(await assign({ dataset: { address: DATASET, ...DATASET_CONTENT } }), PEER)
      await rejectsWith(ok.checks.checkAssign(await assign({ dataset: { address: DATASET, ...DATASET_CONTENT, cid: 'bafyother' } }), PEER), 'DUTY_BAD_APP')
      await rejectsWith(ok.checks.checkAssign(await assign(), PEER), 'DUTY_ASSIGNMENT_MISMATCH', 'dataset')
      const noKeys = harness({ datasets: false })
      noKeys.created.value = { ...noKeys.created.value!, dataset: DATASET }
      await rejectsWith(noKeys.checks.checkAssign(await assign({ dataset: { address: DATASET, ...DATASET_CONTENT } }), PEER), 'DUTY_DATASET_UNSUPPORTED')
    })

    it('takes a result key only when the params ask for encryption, and only the requester\'s own', async () => {
      const params = JSON.stringify({ iexec_result_encryption: true })
      const encrypted = (): Harness => {
        const h = harness()
        h.created.value = { ...h.created.value!, params }
        return h
      }
      const key = requester.signingKey.compressedPublicKey
      await encrypted().checks.checkAssign(await assign({ params, resultEncryptionKey: key }), PEER)
      await rejectsWith(encrypted().checks.checkAssign(await assign({ params }), PEER), 'DUTY_ASSIGNMENT_MISMATCH', 'result key')
      await rejectsWith(encrypted().checks.checkAssign(await assign({ params, resultEncryptionKey: stranger.signingKey.compressedPublicKey }), PEER), 'DUTY_ASSIGNMENT_MISMATCH', 'result key')
      await rejectsWith(encrypted().checks.checkAssign(await assign({ params, resultEncryptionKey: '0x02' + '00'.repeat(32) }), PEER), 'DUTY_ASSIGNMENT_MISMATCH', 'result key')
      // a key slipped into an assignment whose requester asked for a clear result
      await rejectsWith(harness().checks.checkAssign(await assign({ resultEncryptionKey: key }), PEER), 'DUTY_ASSIGNMENT_MISMATCH', 'result key')
      // the params name the key: another key of the requester's is not it
      const named = JSON.stringify({ iexec_result_encryption: true, iexec_p2p_result_key: key })
      const h = harness()
      h.created.value = { ...h.created.value!, params: named }
      await h.checks.checkAssign(await assign({ params: named, resultEncryptionKey: key }), PEER)
    })

    it('refuses a deal whose signed params do not parse', async () => {
      const h = harness()
      h.created.value = { ...h.created.value!, params: 'not json' }
      await rejectsWith(h.checks.checkAssign(await assign({ params: 'not json' }), PEER), 'DUTY_BAD_TASK')
    })
  })

  describe('commitment and category', () => {
    it('prefers the deal as the node already learned it to a log read', async () => {
      const known = dealInfo({ dealid: DEAL, scheduler: scheduler.address, requester: requester.address, app: APP, params: '{}', category: 4 })
      const h = harness({ dealCommitment: known })
      assert.equal(await h.checks.commitment(DEAL), known)
      assert.equal(count(h, 'dealCreated'), 0)
    })

    it('reads a category\'s bounds once, as numbers', async () => {
      const h = harness()
      h.created.value = { ...h.created.value!, category: 2 }
      const a = await h.checks.categoryLimits(DEAL)
      const b = await h.checks.categoryLimits(DEAL)
      assert.deepEqual(a, { timeRef: 300, memoryMiB: 512, diskMiB: 1024 })
      assert.deepEqual(b, a)
      assert.deepEqual(h.reads.filter((r) => r.startsWith('categoryOf')), ['categoryOf:2'])
      assert.equal(count(h, 'dealCreated'), 1)
    })

    it('does not keep a failed DealCreated read: the next asks again', async () => {
      const h = harness()
      const created = h.created.value
      h.created.value = undefined
      await rejectsWith(h.checks.commitment(DEAL), 'DUTY_BAD_TASK')
      h.created.value = created
      assert.equal((await h.checks.commitment(DEAL)).app, APP)
      assert.equal(count(h, 'dealCreated'), 2)
    })
  })
})
