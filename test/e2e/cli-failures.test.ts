import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isAlive } from '../../node/cli/processes.js'
import type { SwarmFile, SwarmUpJson } from '../../node/cli/index.js'
import type { OrderbookEntry, TaskLogsView, TaskStatusView } from '../../node/api/client.js'
import { assertBuilt, pollUntil, runCli, type RunResult } from './cli-helpers.js'

/**
 * What a requester learns of its tasks on a real 4-node swarm: why a task
 * fails (the workers' signed reports: code, exit code, stderr tail) in
 * `task submit --watch`, `task show` and `task logs`; and a parameter sweep
 * whose tasks each get their own line of arguments and input files.
 */
describe('e2e: failures the requester sees, and parameter sweeps, on a 4-node swarm', function () {
  this.timeout(300_000)
  let dir = ''
  let swarmDir = ''
  let swarm: SwarmUpJson
  let file: SwarmFile | undefined

  const dataDir = (i: number): string => join(swarmDir, `node-${i}`)
  const on = async (i: number, args: string[], timeoutMs?: number): Promise<RunResult> => await runCli([...args, '--data-dir', dataDir(i)], timeoutMs)
  async function json<T> (i: number, args: string[], timeoutMs?: number): Promise<T> {
    const r = await on(i, [...args, '--json'], timeoutMs)
    assert.equal(r.code, 0, `${args.join(' ')} on node-${i}: ${r.stderr}`)
    return JSON.parse(r.stdout) as T
  }
  async function publish (path: string, name: string): Promise<void> {
    const app = await json<{ orderHash: string }>(1, ['app', 'publish', path, '--name', name, '--price', '0'])
    await pollUntil(`the ${name} app order in node-0's orderbook`, async () => await json<{ orders: OrderbookEntry[] }>(0, ['orderbook', 'app']),
      (b) => b.orders.some((o) => o.orderHash === app.orderHash), 30_000, 300)
  }

  before(async () => {
    assertBuilt()
    dir = await mkdtemp(join(tmpdir(), 'iexec-e2e-failures-'))
    swarmDir = join(dir, 'swarm')
    const up = await runCli(['swarm', 'up', '--nodes', '4', '--dir', swarmDir, '--json'], 240_000)
    if (existsSync(join(swarmDir, 'swarm.json'))) file = JSON.parse(await readFile(join(swarmDir, 'swarm.json'), 'utf8')) as SwarmFile
    assert.equal(up.code, 0, up.stderr)
    swarm = JSON.parse(up.stdout) as SwarmUpJson
    assert.equal(swarm.nodes.length, 4)
  })

  after(async () => {
    if (swarmDir !== '') await runCli(['swarm', 'down', '--dir', swarmDir], 60_000).catch(() => {})
    for (const pid of [...(file?.nodes.map((n) => n.pid) ?? []), file?.chain?.pid ?? 0]) {
      if (pid > 0 && await isAlive(pid)) {
        try { process.kill(pid, 'SIGKILL') } catch {}
      }
    }
    if (dir !== '') await rm(dir, { recursive: true, force: true })
  })

  it('a crashing app at trust 3, result encrypted: --watch ends with the agreed reason and the refund time; task show says failing; task logs has the stderr tail, for the requester only', async () => {
    await publish('examples/apps/fail/fail.wasm', 'fail-e2e')
    const t0 = Date.now()
    const r = await on(0, ['task', 'submit', '--app', 'fail-e2e', '--trust', '3', '--encrypt-result', '--bidding-window', '3000', '--watch'], 240_000)
    console.info(`      failing trust-3 task submitted and watched to its reason: ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    // ended long before the final deadline, with a non-zero exit and the reason
    assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`)
    assert.match(r.stderr, /failing: the workers report failures: APP_ERROR \(exit code 3\) reported by \d of \d worker\(s\) \(deterministic: the workers agree\)/)
    assert.match(r.stderr, /TASK_FAILED/)
    assert.match(r.stderr, /claimable after the final deadline \d{4}-\d\d-\d\dT/)
    assert.match(r.stderr, /task logs TASKID/)
    // the app's own words, from the tail sealed to the requester and opened by its node
    assert.match(r.stderr, /stderr of worker 0x[0-9a-fA-F]{40} \(last lines[^\n]*\n {2}fail: this app always fails\n/)
    const dealId = /deal\s+(0x[0-9a-f]{64})/.exec(r.stdout)?.[1] ?? ''
    const deal = await json<{ tasks: Array<{ taskId: string }> }>(0, ['deal', 'show', dealId])
    const taskId = deal.tasks[0].taskId

    const show = await json<TaskStatusView>(0, ['task', 'show', taskId])
    assert.equal(show.phase, 'failing', 'not "running": the workers said why')
    assert.ok(show.failure !== null)
    assert.equal(show.failure.code, 'APP_ERROR')
    assert.equal(show.failure.exitCode, 3)
    assert.equal(show.failure.agreed, true)
    // trust 3's consensus is two workers: two agreeing reports settle it (a third may have come since)
    assert.ok(show.failure.reports.length >= 2, `two workers reported at least: ${JSON.stringify(show.failure.reports)}`)
    assert.equal(show.failure.needed, 2)
    for (const rep of show.failure.reports) {
      assert.ok(show.workers.includes(rep.worker), `${rep.worker} is a worker of the deal`)
      assert.equal(rep.stderr, 'fail: this app always fails\n')
    }
    assert.equal(show.failure.refundAfter, show.deadlines.final)
    const human = await on(0, ['task', 'show', taskId])
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.stdout, /\(failing\)/)
    assert.match(human.stdout, /failure\s+APP_ERROR \(exit code 3\)/)
    assert.match(human.stdout, /refund\s+claimable after the final deadline/)
    assert.match(human.stdout, /stderr\s+\(worker 0x[0-9a-fA-F]{40}, last lines\)\n {2}fail: this app always fails\n/)

    // the stderr tails: sealed to the requester's key, opened by its node
    const logs = await json<TaskLogsView>(0, ['task', 'logs', taskId])
    assert.ok(logs.failure !== null)
    assert.ok(logs.failure.reports.length >= 2)
    for (const rep of logs.failure.reports) {
      assert.equal(rep.stderrEncrypted, true)
      assert.equal(rep.stderr, 'fail: this app always fails\n')
      assert.equal(rep.exitCode, 3)
    }
    const text = await on(0, ['task', 'logs', taskId])
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, /== worker 0x[0-9a-fA-F]{40}: APP_ERROR, exit code 3, stderr 28 byte\(s\), sealed to the requester ==\nfail: this app always fails\n/)
    // another node sees the codes, not the tails
    const other = await json<TaskLogsView>(1, ['task', 'logs', taskId])
    assert.ok(other.failure !== null && other.failure.reports.length >= 2)
    for (const rep of other.failure.reports) assert.equal(rep.stderr, null)
    // a malformed task id is a usage error, refused before the node is asked
    const malformed = await on(0, ['task', 'logs', '0x1234'])
    assert.equal(malformed.code, 2, malformed.stderr)
    assert.match(malformed.stderr, /CLI_BAD_OPTION/)

    // trust 1, in clear, --json: one worker's report settles it; the tasks' JSON carries the failure and the refund time
    const one = await on(0, ['task', 'submit', '--app', 'fail-e2e', '--bidding-window', '3000', '--watch', '--json'], 240_000)
    assert.equal(one.code, 1, one.stderr)
    assert.equal(JSON.parse(one.stderr.trim()).error.code, 'TASK_FAILED')
    const watched = JSON.parse(one.stdout) as { tasks: Array<{ taskId: string, phase: string, failure: TaskStatusView['failure'], refund: string | null }> }
    const t = watched.tasks[0]
    assert.equal(t.phase, 'failing')
    assert.equal(t.failure?.code, 'APP_ERROR')
    assert.equal(t.failure?.agreed, true)
    assert.match(t.refund ?? '', /claimable after the final deadline/)
    const clear = await json<TaskLogsView>(1, ['task', 'logs', t.taskId])
    assert.equal(clear.failure?.reports[0].stderrEncrypted, false)
    assert.equal(clear.failure?.reports[0].stderr, 'fail: this app always fails\n', 'not sealed: any node reads it')
  })

  it('sweeps: 5 tasks, each with its own line of arguments, input file and IEXEC_TASK_INDEX; 10 tasks whose lines do not fit params; each its own result', async () => {
    await publish('examples/apps/env/env.wasm', 'env-e2e')
    // one input per task, added to the requester's Helia through its API
    const node0 = swarm.nodes[0]
    const token = (await readFile(node0.tokenFile, 'utf8')).trim()
    const cids: string[] = []
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${node0.api}/v1/content`, {
        method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ data: Buffer.from(`input of task ${i}\n`).toString('base64') })
      })
      assert.equal(res.status, 200)
      cids.push(((await res.json()) as { cid: string }).cid)
    }
    const argsFile = join(dir, 'sweep-args.txt')
    await writeFile(argsFile, ['alpha 1', '"beta two"', '', 'delta 4', 'epsilon 5'].join('\n') + '\n')
    const inputsFile = join(dir, 'sweep-inputs.txt')
    await writeFile(inputsFile, cids.join('\n') + '\n')
    // a volume that is not the number of lines: refused before anything is signed
    const wrong = await on(0, ['task', 'submit', '--app', 'env-e2e', '--args-file', argsFile, '--volume', '4', '--json'])
    assert.equal(wrong.code, 2, wrong.stderr)
    const t0 = Date.now()
    const r = await json<{ dealId: string, tasks: Array<{ taskId: string, phase: string, result: { stdout: string } | null }> }>(0,
      ['task', 'submit', '--app', 'env-e2e', '--args-file', argsFile, '--input-files-file', inputsFile, '--bidding-window', '3000', '--watch'], 240_000)
    console.info(`      sweep of 5 tasks submitted and watched to its results: ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    assert.equal(r.tasks.length, 5)
    const expected = [['alpha', '1'], ['beta two'], [], ['delta', '4'], ['epsilon', '5']]
    const outs = r.tasks.map((t, i) => {
      assert.equal(t.phase, 'finalized', `task ${i}`)
      const out = t.result?.stdout ?? ''
      assert.match(out, new RegExp(`^env IEXEC_TASK_INDEX=${i}$`, 'm'), `task ${i}'s index: ${out}`)
      const args = [...out.matchAll(/^arg(\d+)=(.*)$/gm)].filter((m) => m[1] !== '0').map((m) => m[2])
      assert.deepEqual(args, expected[i], `task ${i}'s arguments`)
      assert.match(out, new RegExp(`^env IEXEC_INPUT_FILE_NAME_1=${cids[i]}$`, 'm'), `task ${i}'s own input`)
      assert.match(out, /^env IEXEC_INPUT_FILES_NUMBER=1$/m)
      return out
    })
    assert.equal(new Set(outs).size, 5, 'five different results')

    // 10 tasks whose lines do not fit the request's 4 KiB of params: the lists go to Helia, params carry their CID and sha256
    const long = Array.from({ length: 10 }, (_, i) => `task-${i} ${String(i).repeat(440)}`)
    const longFile = join(dir, 'sweep-long.txt')
    await writeFile(longFile, long.join('\n') + '\n')
    const big = await json<{ dealId: string, tasks: Array<{ phase: string, result: { stdout: string } | null }> }>(0,
      ['task', 'submit', '--app', 'env-e2e', '--args-file', longFile, '--bidding-window', '3000', '--watch'], 240_000)
    const bigDeal = await json<{ params: string }>(0, ['deal', 'show', big.dealId])
    assert.match(bigDeal.params, /"iexec_p2p_sweep":\{"cid":"\w+","checksum":"0x[0-9a-f]{64}"\}/)
    assert.doesNotMatch(bigDeal.params, /task-0/, 'the lines are not in params')
    assert.equal(big.tasks.length, 10)
    const bigOuts = big.tasks.map((t, i) => {
      assert.equal(t.phase, 'finalized', `task ${i}`)
      const out = t.result?.stdout ?? ''
      assert.match(out, new RegExp(`^arg1=task-${i}$`, 'm'))
      assert.match(out, new RegExp(`^arg2=${String(i).repeat(440)}$`, 'm'))
      assert.match(out, new RegExp(`^env IEXEC_TASK_INDEX=${i}$`, 'm'))
      return out
    })
    assert.equal(new Set(bigOuts).size, 10, 'ten different results')
  })
})
