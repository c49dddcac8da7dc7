// The work state machine (node/market/works.ts): pure transitions, the
// parameter table, result patterns, and the service over a real level store
// with the market replaced by a scripted stand-in (no chain here; the
// integration test runs it against a real swarm).
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DbController, Repository, jsonCodec } from '../../../node/db/index.js'
import { IexecError } from '../../../node/common/errors.js'
import {
  READ_ONLY_PARAMS, WorkService, checkRemovable, checkWorkRecord, compileResultPattern, interruptedIfStale, isWorkError, listResultFiles,
  matchResultFile, newWork, paramOf, submitParamsOf, toPending, withDeal, withParam, withSubmitError, withTaskStatus
} from '../../../node/market/works.js'
import type { WorkDeal, WorkDeps, WorkRecord, WorkResult, WorkErrorCode } from '../../../node/market/works.js'
import type { SubmitRequestParams } from '../../../node/market/requester.js'

const APP = '0x00000000000000000000000000000000000000aa'
const DEAL = '0x' + 'd'.repeat(64)
const TASK = '0x' + 'e'.repeat(64)
const deal: WorkDeal = { dealId: DEAL, scheduler: '0x' + '1'.repeat(40), workers: ['0x' + '2'.repeat(40)], tasks: [{ taskId: TASK, status: 'UNSET' }] }

function code (c: WorkErrorCode): (e: unknown) => boolean {
  return (e: unknown) => isWorkError(e, c)
}

function pending (): WorkRecord {
  return toPending(newWork('u', APP, 1), 's1', 2)
}

describe('works: the XtremWeb-HEP work state machine', function () {
  describe('pure transitions and parameters', () => {
    it('a new work is UNAVAILABLE; writable parameters are normalized, "" clears them', () => {
      let w = newWork('u', APP, 1000)
      assert.equal(w.status, 'UNAVAILABLE')
      w = withParam(w, 'cmdline', 1000)
      w = withParam(w, 'inputfiles', 'bafyA, bafyB  bafyC')
      w = withParam(w, 'tags', ['region:eu', 'gpu'])
      w = withParam(w, 'trust', '3')
      w = withParam(w, 'dataset', '0x00000000000000000000000000000000000000AB')
      w = withParam(w, 'maxprice', '123456789')
      w = withParam(w, 'biddingwindow', 1500)
      assert.equal(paramOf(w, 'cmdline'), '1000')
      // a list is one argument per item, quoted so that the workers split it back
      assert.equal(paramOf(withParam(w, 'cmdline', ['a', 'b c', 'it\'s']), 'cmdline'), 'a \'b c\' \'it\'\\\'\'s\'')
      assert.equal(paramOf(w, 'inputfiles'), 'bafyA,bafyB,bafyC')
      assert.equal(paramOf(w, 'tags'), 'region:eu,gpu')
      assert.equal(paramOf(w, 'dataset'), '0x00000000000000000000000000000000000000ab')
      assert.deepEqual(submitParamsOf(w), {
        app: APP, volume: 1, args: '1000', inputs: ['bafyA', 'bafyB', 'bafyC'], tags: ['region:eu', 'gpu'], trust: 3,
        dataset: '0x00000000000000000000000000000000000000ab', maxPrice: 123456789n, biddingWindowMs: 1500
      } satisfies SubmitRequestParams)
      // the result sealed to the requester: true sets it, false clears it, anything else is refused
      w = withParam(w, 'encryptresult', true)
      assert.equal(submitParamsOf(w).encryptResult, true)
      w = withParam(w, 'encryptresult', 'false')
      assert.equal(submitParamsOf(w).encryptResult, undefined)
      assert.throws(() => withParam(w, 'encryptresult', 'yes'), code('WORK_BAD_VALUE'))
      w = withParam(w, 'dataset', '')
      assert.equal(paramOf(w, 'dataset'), null)
      assert.equal(submitParamsOf(w).dataset, undefined)
      assert.equal(paramOf(w, 'registerdate'), new Date(1000).toISOString())
      assert.equal(paramOf(w, 'volume'), '1')
    })

    it('refuses read-only names, unknown names and bad values with their codes', () => {
      const w = newWork('u', APP, 1)
      for (const name of READ_ONLY_PARAMS) assert.throws(() => withParam(w, name, 'x'), code('WORK_READ_ONLY_PARAM'), name)
      assert.throws(() => withParam(w, 'priority', '1'), code('WORK_UNKNOWN_PARAM'))
      assert.throws(() => withParam(w, 'trust', 0), code('WORK_BAD_VALUE'))
      assert.throws(() => withParam(w, 'trust', '2.5'), code('WORK_BAD_VALUE'))
      assert.throws(() => withParam(w, 'category', -1), code('WORK_BAD_VALUE'))
      assert.throws(() => withParam(w, 'maxprice', (1n << 48n).toString()), code('WORK_BAD_VALUE'))
      assert.throws(() => withParam(w, 'dataset', 'not-an-address'), code('WORK_BAD_VALUE'))
      assert.throws(() => withParam(w, 'cmdline', 'x'.repeat(4097)), code('WORK_BAD_VALUE'))
      // a command line the workers could not split (protocols/args.ts)
      assert.throws(() => withParam(w, 'cmdline', 'a "b'), code('WORK_BAD_VALUE'))
      assert.throws(() => withParam(w, 'trust', 256), code('WORK_BAD_VALUE'))
      assert.throws(() => withParam(w, 'inputfiles', new Array(65).fill('bafy')), code('WORK_BAD_VALUE'))
      assert.throws(() => withParam(w, 'tags', ['a b']), code('WORK_BAD_VALUE'))
      // a refused write leaves the record as it was
      assert.deepEqual(w.params, {})
    })

    it('parameters are writable only while UNAVAILABLE; setPending only once', () => {
      const p = pending()
      assert.equal(p.status, 'PENDING')
      assert.equal(p.session, 's1')
      assert.throws(() => withParam(p, 'cmdline', 'x'), code('WORK_BAD_STATE'))
      assert.throws(() => toPending(p, 's1', 3), code('WORK_BAD_STATE'))
      // the read-only check comes first: the name is wrong whatever the status
      assert.throws(() => withParam(p, 'status', 'COMPLETED'), code('WORK_READ_ONLY_PARAM'))
    })

    it('maps the deal and the task states: UNSET/ACTIVE/REVEALING RUNNING, COMPLETED, FAILED -> ERROR', () => {
      const running = withDeal(pending(), deal, 10)
      assert.equal(running.status, 'RUNNING')
      assert.equal(running.taskId, TASK)
      assert.equal(running.taskStatus, 'UNSET')
      for (const s of ['ACTIVE', 'REVEALING', 'UNSET']) assert.equal(withTaskStatus(running, s, 11).status, 'RUNNING')
      assert.equal(withTaskStatus(running, 'ACTIVE', 11).taskStatus, 'ACTIVE')
      const done = withTaskStatus(running, 'COMPLETED', 12)
      assert.equal(done.status, 'COMPLETED')
      assert.equal(paramOf(done, 'completeddate'), new Date(12).toISOString())
      const failed = withTaskStatus(running, 'FAILED', 13)
      assert.equal(failed.status, 'ERROR')
      assert.equal(paramOf(failed, 'errorcode'), 'WORK_TASK_FAILED')
      // a final work does not move again
      assert.equal(withTaskStatus(done, 'FAILED', 14), done)
      assert.equal(withTaskStatus(failed, 'COMPLETED', 14), failed)
      // a trust-1 task goes from UNSET to COMPLETED in one transaction: a deal can arrive already completed
      assert.equal(withDeal(pending(), { ...deal, tasks: [{ taskId: TASK, status: 'COMPLETED' }] }, 10).status, 'COMPLETED')
    })

    it('a submission error makes a PENDING work ERROR with its reason; late outcomes do not move a final work', () => {
      const err = withSubmitError(pending(), { code: 'NO_BIDS', message: 'no bid within 1000 ms: price too low', details: { reasons: [] } }, 5)
      assert.equal(err.status, 'ERROR')
      assert.equal(paramOf(err, 'error'), 'no bid within 1000 ms: price too low')
      assert.equal(paramOf(err, 'errorcode'), 'NO_BIDS')
      assert.equal(withDeal(err, deal, 6), err)
      const running = withDeal(pending(), deal, 10)
      assert.equal(withSubmitError(running, { code: 'X', message: 'late' }, 11), running)
    })

    it('a PENDING work of another session was interrupted; its own session keeps it', () => {
      const p = pending()
      assert.equal(interruptedIfStale(p, 's1', 9), p)
      const stale = interruptedIfStale(p, 's2', 9)
      assert.equal(stale.status, 'ERROR')
      assert.equal(stale.error?.code, 'WORK_INTERRUPTED')
      const draft = newWork('u', APP, 1)
      assert.equal(interruptedIfStale(draft, 's2', 9), draft)
    })

    it('removal is refused while PENDING or RUNNING', () => {
      assert.doesNotThrow(() => { checkRemovable(newWork('u', APP, 1)) })
      assert.throws(() => { checkRemovable(pending()) }, code('WORK_BAD_STATE'))
      const running = withDeal(pending(), deal, 10)
      assert.throws(() => { checkRemovable(running) }, code('WORK_BAD_STATE'))
      assert.doesNotThrow(() => { checkRemovable(withTaskStatus(running, 'COMPLETED', 11)) })
      assert.doesNotThrow(() => { checkRemovable(withTaskStatus(running, 'FAILED', 11)) })
    })

    it('checks stored records', () => {
      assert.deepEqual(checkWorkRecord(JSON.parse(JSON.stringify(pending()))), pending())
      assert.throws(() => checkWorkRecord({ v: 1, uid: 'u', app: APP, status: 'DONE', params: {}, times: { registered: 1 } }), code('WORK_BAD_RECORD'))
      assert.throws(() => checkWorkRecord(null), code('WORK_BAD_RECORD'))
    })
  })

  describe('result patterns', () => {
    const files = ['computed.json', 'out/primes.txt', 'out/deep/primes.txt', 'primes.txt', 'stderr.txt', 'stdout.txt']

    it('a plain name or a glob without / matches base names at any depth, first in sorted order', () => {
      assert.equal(matchResultFile(files, 'stdout.txt'), 'stdout.txt')
      assert.equal(matchResultFile(files, 'primes.txt'), 'out/deep/primes.txt')
      assert.equal(matchResultFile(files, 'std*.txt'), 'stderr.txt')
      assert.equal(matchResultFile(files, '*.json'), 'computed.json')
      assert.equal(matchResultFile(files, 'stdo??.txt'), 'stdout.txt')
      assert.equal(matchResultFile(files, 'nothing.bin'), undefined)
      // a dot is literal in a glob
      assert.equal(matchResultFile(['stdoutXtxt'], 'stdout.txt'), undefined)
    })

    it('a glob with / matches the relative path; ** crosses folders', () => {
      assert.equal(matchResultFile(files, 'primes.txt'.replace(/^/, 'out/')), 'out/primes.txt')
      assert.equal(matchResultFile(files, 'out/*.txt'), 'out/primes.txt')
      assert.equal(matchResultFile(files, 'out/**/primes.txt'), 'out/deep/primes.txt')
      assert.equal(matchResultFile(files, '**/deep/*'), 'out/deep/primes.txt')
      assert.equal(matchResultFile(files, 'deep/*'), undefined)
    })

    it('/source/flags is a regular expression searched in the relative path; bad patterns are refused', () => {
      assert.equal(matchResultFile(files, '/^out\\/p/'), 'out/primes.txt')
      assert.equal(matchResultFile(files, '/STDOUT/i'), 'stdout.txt')
      assert.throws(() => compileResultPattern('/(/'), code('WORK_BAD_PATTERN'))
      assert.throws(() => compileResultPattern(''), code('WORK_BAD_PATTERN'))
      assert.throws(() => compileResultPattern('x'.repeat(257)), code('WORK_BAD_PATTERN'))
    })

    it('lists the files of a result folder as sorted relative paths', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'iexec-works-ls-'))
      try {
        await mkdir(join(dir, 'a', 'b'), { recursive: true })
        await writeFile(join(dir, 'z.txt'), 'z')
        await writeFile(join(dir, 'a', 'b', 'c.txt'), 'c')
        await writeFile(join(dir, 'a', 'x.txt'), 'x')
        assert.deepEqual(await listResultFiles(dir), ['a/b/c.txt', 'a/x.txt', 'z.txt'])
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    })
  })

  describe('the service over a real level store', () => {
    const cleanup: Array<() => Promise<void>> = []
    let dir: string
    let db: DbController

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'iexec-works-'))
      cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
      db = new DbController({ path: join(dir, 'db') })
      await db.open()
      cleanup.push(async () => { await db.close() })
    })
    afterEach(async () => {
      for (const fn of cleanup.splice(0).reverse()) await fn()
    })

    /** The market's part, scripted: each submit waits for the test to settle it. */
    class Market {
      submits: SubmitRequestParams[] = []
      private readonly settles: Array<(outcome: WorkDeal | Error) => void> = []
      taskStatus = 'UNSET'
      results = 0
      running = true
      readonly background = new Set<Promise<unknown>>()

      deps (): WorkDeps {
        return {
          resolveApp: async (app) => {
            if (app === 'primes') return APP
            throw new IexecError('APP_NOT_FOUND', `no app named '${app}'`)
          },
          submit: async (p) => {
            this.submits.push(p)
            const outcome = await new Promise<WorkDeal | Error>((resolve) => { this.settles.push(resolve) })
            if (outcome instanceof Error) throw outcome
            return outcome
          },
          taskStatus: async () => this.taskStatus,
          result: async (taskId) => {
            this.results++
            const path = join(dir, 'results', taskId)
            await mkdir(join(path, 'out'), { recursive: true })
            await writeFile(join(path, 'stdout.txt'), 'count=168 last=997\n')
            await writeFile(join(path, 'out', 'primes.txt'), '2\n3\n5\n')
            return { cid: 'bafyresult', path, stdout: 'count=168 last=997\n' } satisfies WorkResult
          },
          track: (p) => {
            const q = p.catch(() => {})
            this.background.add(q)
            void q.finally(() => { this.background.delete(q) })
          },
          running: () => this.running
        }
      }

      async settle (outcome: WorkDeal | Error): Promise<void> {
        const deadline = Date.now() + 5_000
        while (this.settles.length === 0) {
          if (Date.now() > deadline) throw new Error('no submission to settle')
          await new Promise((resolve) => setTimeout(resolve, 5))
        }
        this.settles.shift()?.(outcome)
        await Promise.all([...this.background])
      }
    }

    function service (market: Market): WorkService {
      return new WorkService(new Repository(db, 'work', jsonCodec(checkWorkRecord)), market.deps())
    }

    it('register, setParam, setPending: PENDING until the deal, RUNNING, COMPLETED from the chain; the result is fetched once', async () => {
      const market = new Market()
      const works = service(market)
      const { uid } = await works.register('primes')
      assert.equal((await works.status(uid)).status, 'UNAVAILABLE')
      await works.setParam(uid, 'cmdline', '1000')
      await assert.rejects(works.result(uid), code('WORK_BAD_STATE'))
      assert.equal((await works.setPending(uid)).status, 'PENDING')
      assert.equal((await works.status(uid)).status, 'PENDING')
      await assert.rejects(works.setParam(uid, 'trust', 3), code('WORK_BAD_STATE'))
      await assert.rejects(works.remove(uid), code('WORK_BAD_STATE'))
      await market.settle(deal)
      assert.deepEqual(market.submits, [{ app: APP, volume: 1, args: '1000' }])
      assert.equal((await works.status(uid)).status, 'RUNNING')
      market.taskStatus = 'REVEALING'
      assert.equal((await works.status(uid)).status, 'RUNNING')
      assert.equal(await works.getParam(uid, 'taskstatus'), 'REVEALING')
      assert.equal(await works.getParam(uid, 'stdout'), null)
      market.taskStatus = 'COMPLETED'
      assert.equal((await works.status(uid)).status, 'COMPLETED')
      // two concurrent reads: one retrieval
      const [a, b] = await Promise.all([works.result(uid), works.getParam(uid, 'stdout')])
      assert.equal(a.stdout, 'count=168 last=997\n')
      assert.equal(b, 'count=168 last=997\n')
      assert.equal(market.results, 1)
      const { file } = await works.resultFile(uid, 'primes.txt')
      assert.equal(file, join(dir, 'results', TASK, 'out', 'primes.txt'))
      await assert.rejects(works.resultFile(uid, 'none.bin'), code('WORK_RESULT_NOT_FOUND'))
      assert.equal(market.results, 1, 'the unpacked result is reused')
      assert.equal(await works.getParam(uid, 'resultcid'), 'bafyresult')
      // the folder removed (e.g. by hand): fetched again
      await rm(join(dir, 'results', TASK), { recursive: true })
      assert.equal((await works.result(uid)).path, join(dir, 'results', TASK))
      assert.equal(market.results, 2)
      await works.remove(uid)
      await assert.rejects(works.status(uid), code('WORK_NOT_FOUND'))
    })

    it('a failed submission is ERROR with the market\'s code, message and details', async () => {
      const market = new Market()
      const works = service(market)
      const { uid } = await works.register('primes')
      await works.setParam(uid, 'category', 7)
      await works.setPending(uid)
      await market.settle(new IexecError('NO_BIDS', 'no bid within 1500 ms: no provider for category 7', { reasons: [{ code: 'CATEGORY' }] }))
      const rec = await works.status(uid)
      assert.equal(rec.status, 'ERROR')
      assert.deepEqual(rec.error, { code: 'NO_BIDS', message: 'no bid within 1500 ms: no provider for category 7', details: { reasons: [{ code: 'CATEGORY' }] } })
      assert.equal(await works.getParam(uid, 'errorcode'), 'NO_BIDS')
      await assert.rejects(works.result(uid), code('WORK_BAD_STATE'))
      await works.remove(uid)
      await assert.rejects(works.getParam(uid, 'status'), code('WORK_NOT_FOUND'))
    })

    it('a submission cut short by the node stopping is WORK_INTERRUPTED, not the market\'s error', async () => {
      const market = new Market()
      const works = service(market)
      const { uid } = await works.register('primes')
      await works.setPending(uid)
      market.running = false
      await market.settle(new IexecError('NO_BIDS', 'window aborted'))
      assert.equal((await works.status(uid)).error?.code, 'WORK_INTERRUPTED')
    })

    it('after a restart (a new service over the same store) works are kept; a PENDING one left behind becomes ERROR', async () => {
      const market = new Market()
      const before = service(market)
      const draft = (await before.register('primes')).uid
      await before.setParam(draft, 'cmdline', '42')
      const lost = (await before.register('primes')).uid
      await before.setPending(lost)
      // the "crash": the first service's submission never finishes
      const after = service(new Market())
      assert.notEqual(after.session, before.session)
      assert.equal((await after.status(draft)).status, 'UNAVAILABLE')
      assert.equal(await after.getParam(draft, 'cmdline'), '42')
      const rec = await after.status(lost)
      assert.equal(rec.status, 'ERROR')
      assert.equal(rec.error?.code, 'WORK_INTERRUPTED')
      assert.deepEqual((await after.list()).map((w) => w.status).sort(), ['ERROR', 'UNAVAILABLE'])
      // the late outcome of the dead submission cannot revive it
      await market.settle(deal)
      assert.equal((await after.status(lost)).status, 'ERROR')
    })

    it('a RUNNING work keeps following its task on chain after a restart', async () => {
      const market = new Market()
      const before = service(market)
      const { uid } = await before.register('primes')
      await before.setPending(uid)
      await market.settle(deal)
      assert.equal((await before.status(uid)).status, 'RUNNING')
      const chain = new Market()
      const after = service(chain)
      assert.equal((await after.status(uid)).status, 'RUNNING')
      chain.taskStatus = 'COMPLETED'
      assert.equal((await after.status(uid)).status, 'COMPLETED')
      assert.equal((await after.result(uid)).stdout, 'count=168 last=997\n')
    })

    it('unknown uids, unknown apps and bad names get their codes', async () => {
      const works = service(new Market())
      await assert.rejects(works.status('0badc0de'), code('WORK_NOT_FOUND'))
      await assert.rejects(works.status('00000000-0000-4000-8000-000000000000'), code('WORK_NOT_FOUND'))
      await assert.rejects(works.register('nope'), (e: unknown) => e instanceof IexecError && e.code === 'APP_NOT_FOUND')
      const { uid } = await works.register('primes')
      await assert.rejects(works.getParam(uid, 'bogus'), code('WORK_UNKNOWN_PARAM'))
      await assert.rejects(works.setParam(uid, 'uid', 'x'), code('WORK_READ_ONLY_PARAM'))
      await assert.rejects(works.resultFile(uid, '/(/'), code('WORK_BAD_PATTERN'))
    })
  })
})
