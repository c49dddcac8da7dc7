import { computeAddress } from 'ethers'
import { recoverAuthorizationSigner, taskId, ZERO_ADDRESS } from '../../protocols/eip712.js'
import type { HubDomain } from '../../protocols/eip712.js'
import { recoverExecPeer } from '../../protocols/execution.js'
import type { AssignMessage } from '../../protocols/execution.js'
import { parseRequestParams } from '../../protocols/market.js'
import { BoundedCache } from '../common/bounded-cache.js'
import { memoAsync } from '../common/memo.js'
import type { DealInfo } from '../chain/deal.js'
import { DutyError } from './duties-errors.js'
import type { CategoryLimits } from './run-limits.js'

const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase()

/** What the checks read of the hub (the typed Hub binding fits). */
export interface CheckReads {
  dealOf (dealid: string, overrides: { blockTag: 'pending' }): Promise<{ scheduler: string, trust: bigint }>
  isDealWorker (dealid: string, worker: string): Promise<boolean>
  appOf (app: string): Promise<{ cid: string, checksum: string }>
  datasetOf (dataset: string): Promise<{ cid: string, checksum: string }>
  categoryOf (category: number): Promise<{ timeRef: bigint, memoryMiB: bigint, diskMiB: bigint }>
}

export interface AssignmentChecksInit {
  hub: CheckReads
  domain: HubDomain
  /** this worker's address */
  me: string
  /** whether this worker can get dataset keys (without, deals with a dataset are refused) */
  datasets: boolean
  /** what the deal's requester signed, as the node already learned it; undefined when not known yet */
  dealCommitment?: (dealid: string) => Promise<DealInfo | undefined>
  /** the hub's DealCreated log of the deal, read when dealCommitment does not know it */
  dealCreated: (dealid: string) => Promise<DealInfo | undefined>
}

/**
 * Whether a message comes from a deal's scheduler and an assignment is what
 * the deal's requester signed, with what the hub says of each deal, app and
 * category read once: a deal's fields never change but its scheduler (a
 * reelection: an authorization by another signer reads the deal again),
 * membership never changes, nor a registered app or a category.
 */
export class AssignmentChecks {
  private readonly deals = new Map<string, Promise<{ scheduler: string, trust: bigint }>>()
  /** the deals whose worker list holds this node (membership never changes) */
  private readonly members = new BoundedCache<string, true>(10_000)
  private readonly apps = new Map<string, Promise<{ cid: string, checksum: string }>>()
  private readonly categories = new Map<string, Promise<CategoryLimits>>()
  /** each deal's DealCreated, read once (it never changes) */
  private readonly commitments = new BoundedCache<string, Promise<DealInfo>>(10_000)
  /** the assignment contents found to match their deal's commitment, by deal: later assigns compare one string */
  private readonly matched = new BoundedCache<string, string>(10_000)
  /**
   * the signer of each (peer, ExecPeer proof) pair seen: one recovery per
   * scheduler peer, not per message; a few schedulers in practice, a flood
   * of forged proofs costs its sender its ban
   */
  private readonly provers = new BoundedCache<string, string>(1_000)

  constructor (private readonly init: AssignmentChecksInit) {}

  /**
   * Checks an `assign` from peer `from` before any of its tasks is taken:
   * the sender is the deal's scheduler, the contents are the requester's,
   * each authorization is the scheduler's, this node is a deal worker, the
   * app and dataset contents are the hub's, a result key is there when the
   * params ask for encryption. Answers the tasks with their ids.
   * @throws DutyError
   */
  async checkAssign (m: AssignMessage, from: string): Promise<Array<{ taskid: string, idx: number, authorization: string }>> {
    const dealid = m.dealid.toLowerCase()
    // the sender first: nothing of a message from anyone but the deal's scheduler is looked at
    await this.requireScheduler(dealid, from, m.proof)
    await this.checkCommitment(m)
    const tasks = m.tasks.map((t) => ({ ...t, taskid: taskId(m.dealid, t.idx).toLowerCase() }))
    const signers = tasks.map((t) => {
      try {
        return recoverAuthorizationSigner(this.init.domain, { worker: this.init.me, taskid: t.taskid }, t.authorization)
      } catch (err) {
        throw new DutyError('DUTY_NOT_AUTHORIZED', 'an authorization does not recover', { idx: t.idx }, { cause: err })
      }
    })
    let deal = await this.deal(m.dealid, false)
    // another signer than the scheduler we know: the deal may have been reelected since we read it
    if (signers.some((signer) => !same(signer, deal.scheduler))) deal = await this.deal(m.dealid, true)
    if (Number(deal.trust) !== m.trust) throw new DutyError('DUTY_BAD_TASK', 'trust differs from the deal\'s')
    const scheduler = deal.scheduler
    const forged = signers.find((signer) => !same(signer, scheduler))
    if (forged !== undefined) throw new DutyError('DUTY_NOT_AUTHORIZED', 'an authorization is not signed by the deal\'s scheduler', { signer: forged, scheduler })
    if (!this.members.has(dealid)) {
      if (!await this.init.hub.isDealWorker(m.dealid, this.init.me)) throw new DutyError('DUTY_NOT_A_WORKER', 'this node is not a worker of the deal')
      this.members.set(dealid, true)
    }
    const asset = await memoAsync(this.apps, m.app.toLowerCase(), async () => await this.init.hub.appOf(m.app))
    if (asset.cid !== m.appContent.cid || !same(asset.checksum, m.appContent.checksum)) {
      throw new DutyError('DUTY_BAD_APP', 'the app content differs from the hub\'s registry', { app: m.app })
    }
    if (m.dataset !== undefined) {
      if (!this.init.datasets) throw new DutyError('DUTY_DATASET_UNSUPPORTED', 'this worker has no way to get dataset keys')
      const ds = await this.init.hub.datasetOf(m.dataset.address)
      if (ds.cid !== m.dataset.cid || !same(ds.checksum, m.dataset.checksum)) {
        throw new DutyError('DUTY_BAD_APP', 'the dataset content differs from the hub\'s registry', { dataset: m.dataset.address })
      }
    }
    let encrypt: boolean | undefined
    try {
      encrypt = parseRequestParams(m.params).iexec_result_encryption
    } catch (err) {
      throw new DutyError('DUTY_BAD_TASK', 'params do not parse', {}, { cause: err })
    }
    // never publish a result in clear that the requester asked to be encrypted
    if (encrypt === true && m.resultEncryptionKey === undefined) throw new DutyError('DUTY_BAD_TASK', 'the request asks for result encryption but the assignment carries no key')
    return tasks
  }

  /**
   * Proves that peer `from` speaks for the deal's current scheduler: its
   * ExecPeer proof recovers (once per peer and proof) to the hub's
   * scheduler of the deal, read again once when it differs (a reelection
   * since the deal was read).
   * @throws DutyError DUTY_NOT_SCHEDULER, DUTY_BAD_TASK (no such deal)
   */
  async requireScheduler (dealid: string, from: string, proof: string): Promise<void> {
    const key = `${from}|${proof}`
    let signer = this.provers.get(key)
    if (signer === undefined) {
      try {
        signer = recoverExecPeer(this.init.domain, from, proof)
      } catch (err) {
        throw new DutyError('DUTY_NOT_SCHEDULER', 'the sender\'s proof does not recover', { peer: from }, { cause: err })
      }
      this.provers.set(key, signer)
    }
    let deal = await this.deal(dealid, false)
    if (!same(signer, deal.scheduler)) deal = await this.deal(dealid, true)
    if (!same(signer, deal.scheduler)) throw new DutyError('DUTY_NOT_SCHEDULER', 'the sender is not the deal\'s current scheduler', { peer: from, signer, scheduler: deal.scheduler })
  }

  /** The deal's DealCreated, read once. @throws DutyError DUTY_BAD_TASK when the hub emitted none */
  async commitment (dealid: string): Promise<DealInfo> {
    return await memoAsync(this.commitments, dealid, async () => {
      const info = (await this.init.dealCommitment?.(dealid)) ?? await this.init.dealCreated(dealid)
      if (info === undefined) throw new DutyError('DUTY_BAD_TASK', 'the hub emitted no DealCreated for the deal', { dealid })
      return info
    })
  }

  /** The bounds of the deal's category (a category never changes on the hub: read once per category). */
  async categoryLimits (dealid: string): Promise<CategoryLimits> {
    const category = (await this.commitment(dealid)).category
    return await memoAsync(this.categories, String(category), async () => {
      const c = await this.init.hub.categoryOf(category)
      return { timeRef: Number(c.timeRef), memoryMiB: Number(c.memoryMiB), diskMiB: Number(c.diskMiB) }
    })
  }

  /**
   * What the worker runs is what the requester signed: the assignment's
   * app, dataset and params are the ones of the deal's DealCreated (emitted
   * by the hub from the signed request order), and a result key, present
   * exactly when the params ask for encryption, is the requester's own
   * (the one its params name, when they name one). The hub's registry
   * checks the app's and dataset's contents afterwards.
   * @throws DutyError DUTY_ASSIGNMENT_MISMATCH
   */
  private async checkCommitment (m: AssignMessage): Promise<void> {
    const dealid = m.dealid.toLowerCase()
    const fingerprint = JSON.stringify([m.app.toLowerCase(), (m.dataset?.address ?? ZERO_ADDRESS).toLowerCase(), m.params, m.resultEncryptionKey?.toLowerCase() ?? ''])
    if (this.matched.get(dealid) === fingerprint) return
    const info = await this.commitment(dealid)
    const mismatch = (field: string): DutyError => new DutyError('DUTY_ASSIGNMENT_MISMATCH', `the assignment's ${field} is not the one the deal's requester signed`, { dealid, field })
    if (!same(m.app, info.app)) throw mismatch('app')
    if (!same(m.dataset?.address ?? ZERO_ADDRESS, info.dataset)) throw mismatch('dataset')
    if (m.params !== info.params) throw mismatch('params')
    let params
    try {
      params = parseRequestParams(info.params)
    } catch (err) {
      throw new DutyError('DUTY_BAD_TASK', 'the deal\'s params do not parse', { dealid }, { cause: err })
    }
    const key = m.resultEncryptionKey
    if (params.iexec_result_encryption === true) {
      if (key === undefined) throw mismatch('result key')
      if (params.iexec_p2p_result_key !== undefined && key.toLowerCase() !== params.iexec_p2p_result_key.toLowerCase()) throw mismatch('result key')
      let owner: string
      try {
        owner = computeAddress(key)
      } catch {
        throw mismatch('result key')
      }
      if (!same(owner, info.requester)) throw mismatch('result key')
    } else if (key !== undefined) {
      throw mismatch('result key')
    }
    this.matched.set(dealid, fingerprint)
  }

  /** The hub's deal, read once (again when `fresh`); a failed read is not kept. @throws DutyError DUTY_BAD_TASK when there is no such deal */
  private async deal (dealid: string, fresh: boolean): Promise<{ scheduler: string, trust: bigint }> {
    const key = dealid.toLowerCase()
    if (fresh) this.deals.delete(key)
    try {
      return await memoAsync(this.deals, key, async () => await this.init.hub.dealOf(dealid, { blockTag: 'pending' }))
    } catch (err) {
      throw new DutyError('DUTY_BAD_TASK', 'no such deal on the hub', { dealid }, { cause: err })
    }
  }
}
