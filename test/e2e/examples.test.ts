import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { isAlive } from '../../node/cli/processes.js'
import { assertBuilt, processesMentioning } from './cli-helpers.js'

interface ScriptRun { code: number | null, signal: string | null, stdout: string, stderr: string, ms: number }

/** A running examples/*.sh, its output captured; `done` settles when bash exits. */
function runScript (name: string, dir: string, timeoutMs: number): { child: ChildProcess, out: () => string, done: Promise<ScriptRun> } {
  const t0 = Date.now()
  // no IEXEC_P2P: the scripts must find the compiled CLI of this checkout themselves
  const env = { ...process.env }
  delete env.IEXEC_P2P
  const child = spawn('bash', [resolve('examples', name), dir], { stdio: ['ignore', 'pipe', 'pipe'], env })
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  const done = new Promise<ScriptRun>((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${name} did not finish in ${timeoutMs} ms; stdout: ${stdout}\nstderr: ${stderr}`))
    }, timeoutMs)
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolvePromise({ code, signal, stdout, stderr, ms: Date.now() - t0 })
    })
  })
  return { child, out: () => stdout, done }
}

/**
 * The user-story scripts of examples/, run as a user runs them (bash, the
 * compiled CLI), each in its own dir: they must succeed, say what they did,
 * and leave no process behind, even when interrupted.
 */
describe('e2e: the examples/*.sh user stories', function () {
  this.timeout(300_000)
  let dir = ''

  before(assertBuilt)

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-e2e-examples-'))
  })

  afterEach(async () => {
    // whatever failed, nothing a script started may outlive its test
    for (const pid of processesMentioning(dir)) {
      if (await isAlive(pid)) { try { process.kill(pid, 'SIGKILL') } catch {} }
    }
    await rm(dir, { recursive: true, force: true })
  })

  function assertNoneLeft (): void {
    assert.deepEqual(processesMentioning(dir), [], 'no process of the script is left')
  }

  it('private-swarm.sh: swarm key, three separately started nodes bootstrap into one private swarm, then all stop', async () => {
    const r = await runScript('private-swarm.sh', dir, 240_000).done
    console.info(`      private-swarm.sh: ${(r.ms / 1000).toFixed(1)} s`)
    assert.equal(r.code, 0, `exit code; stderr: ${r.stderr}\nstdout: ${r.stdout}`)
    assert.match(r.stdout, /swarm key written to .*swarm\.key/)
    assert.equal((r.stdout.match(/^initialised /gm) ?? []).length, 3, 'three data dirs')
    const boot = /bootstrap address: (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/(12D3Koo\w+))/.exec(r.stdout)
    assert.ok(boot !== null, 'prints the bootstrap address read from status --json')
    // peers of node-0: the two others; resources: both tagged providers found in the DHT
    const peersSection = r.stdout.split('== wait until node-0 is connected to both')[1].split('==')[0]
    assert.equal((peersSection.match(/^12D3Koo\w+\s/gm) ?? []).length, 2, `node-0 lists 2 peers: ${peersSection}`)
    const resSection = r.stdout.split('signed resource records')[1].split('==')[0]
    assert.equal((resSection.match(/example:private-swarm/g) ?? []).length, 2, `both tagged providers listed: ${resSection}`)
    assert.match(r.stdout, /private-swarm: ok\n$/)
    assert.equal(existsSync(join(dir, 'node-0', 'api.json')), false, 'node-0 stopped cleanly (api.json removed)')
    assertNoneLeft()
  })

  it('private-swarm.sh stopped half-way with SIGTERM: its trap stops the nodes it started', async () => {
    const run = runScript('private-swarm.sh', dir, 240_000)
    const deadline = Date.now() + 120_000
    // once node-0 runs and the others are being started, interrupt
    while (!run.out().includes('== start node-1 and node-2')) {
      assert.ok(Date.now() < deadline, `the script did not get to node-1: ${run.out()}`)
      assert.equal(run.child.exitCode, null, `the script ended early: ${run.out()}`)
      await new Promise((r) => setTimeout(r, 100))
    }
    assert.ok(processesMentioning(dir).length >= 1, 'node-0 runs before the interruption')
    run.child.kill('SIGTERM')
    const r = await run.done
    assert.notEqual(r.code, 0, 'an interrupted walkthrough fails')
    assert.match(r.stderr, /private-swarm: failed/)
    assertNoneLeft()
  })

  it('give-resources.sh: a hand-started provider joins a swarm, is funded, stakes, is found by tag and runs the region:eu task', async () => {
    const r = await runScript('give-resources.sh', dir, 300_000).done
    console.info(`      give-resources.sh: ${(r.ms / 1000).toFixed(1)} s`)
    assert.equal(r.code, 0, `exit code; stderr: ${r.stderr}\nstdout: ${r.stdout}`)
    const address = /provider wallet (0x[0-9a-fA-F]{40})/.exec(r.stdout)?.[1]
    assert.ok(address !== undefined, 'prints the provider wallet')
    assert.match(r.stdout, new RegExp(`funded ${address} on the swarm chain`))
    assert.match(r.stdout, /staked 100 RLC/)
    const peer = /provider peer id (12D3Koo\w+)/.exec(r.stdout)?.[1] ?? ''
    const listed = r.stdout.split('resources --tag region:eu')[1].split('==')[0]
    assert.match(listed, new RegExp(`${peer}\\s.*region:eu`), `node-1 lists the provider in region:eu: ${listed}`)
    // the script checks the workers itself; check its verdict and the deal it printed
    const task = JSON.parse(/^\{"dealId".*$/m.exec(r.stdout)?.[0] ?? '{}') as { workers?: string[], tasks?: Array<{ status: string }> }
    assert.ok(task.workers?.map((w) => w.toLowerCase()).includes(address.toLowerCase()), `the deal's workers include ${address}`)
    assert.equal(task.tasks?.[0].status, 'COMPLETED')
    assert.match(r.stdout, new RegExp(`the task ran on the new provider ${address}`))
    assert.match(r.stdout, /give-resources: ok\n$/)
    assertNoneLeft()
  })

  it('submit-task.sh: a 4-node swarm, app publish, task submit --watch, result get --out prints the primes, swarm down', async () => {
    const r = await runScript('submit-task.sh', dir, 300_000).done
    console.info(`      submit-task.sh: ${(r.ms / 1000).toFixed(1)} s`)
    assert.equal(r.code, 0, `exit code; stderr: ${r.stderr}\nstdout: ${r.stdout}`)
    assert.match(r.stdout, /app primes published/)
    assert.match(r.stdout, /task\s+0x[0-9a-f]{64}: COMPLETED/)
    assert.match(r.stdout, /result\s+baf\w+\n/, 'task submit --watch --json names the finalized CID resultCid')
    // 303 primes below 2000, the largest 1999: the app really ran on these args
    assert.match(r.stdout, /the app's stdout:\ncount=303 last=1999\n/)
    assert.match(r.stdout, /\.\/stdout\.txt/)
    assert.ok(existsSync(join(dir, 'result', 'stdout.txt')), 'the result unpacked into --out')
    assert.match(r.stdout, /submit-task: ok\n$/)
    assertNoneLeft()
  })

  it('publish-dataset.sh: an encrypted dataset published, counted by wordcount at trust 3, unpublished, then refused', async () => {
    const r = await runScript('publish-dataset.sh', dir, 300_000).done
    console.info(`      publish-dataset.sh: ${(r.ms / 1000).toFixed(1)} s`)
    assert.equal(r.code, 0, `exit code; stderr: ${r.stderr}\nstdout: ${r.stdout}`)
    assert.match(r.stdout, /notebook\s+published\s+yes/)
    // the copy app is refused before any deal: the owner allowed wordcount only
    assert.match(r.stdout, /DATASET_APP_NOT_ALLOWED/)
    assert.match(r.stdout, /task\s+0x[0-9a-f]{64}: COMPLETED/)
    // three workers for trust 3 (two agree, one spare), each given the key by node-3
    assert.match(r.stdout, /workers (0x[0-9a-fA-F]{40} ?){2,3}\n/)
    const sample = await readFile('examples/datasets/sample.txt', 'utf8')
    const words = sample.split(/\s+/).filter((w) => w.length > 0).length
    assert.match(r.stdout, new RegExp(`the app's stdout:\\ndataset lines=24 words=${words} bytes=${Buffer.byteLength(sample)}\\n`))
    assert.match(r.stdout, /key removed: it will not be released again/)
    assert.match(r.stdout, /NO_DATASET_ORDER/)
    assert.match(r.stdout, /publish-dataset: ok\n$/)
    assertNoneLeft()
  })
})
