import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isAlive } from '../../node/cli/processes.js'
import type { SwarmFile } from '../../node/cli/index.js'
import { assertBuilt, CliProcess, jsonError, processesMentioning, runCli } from './cli-helpers.js'

/** `swarm up`/`down` with a chain when things go wrong: anvil dies, the user presses Ctrl-C. */
describe('e2e: swarm with a chain, faults', function () {
  this.timeout(180_000)
  let dir = ''
  let procs: CliProcess[] = []

  before(assertBuilt)

  afterEach(async () => {
    for (const p of procs) await p.stop()
    procs = []
    if (dir === '') return
    await runCli(['swarm', 'down', '--dir', join(dir, 'swarm')], 60_000).catch(() => {})
    // anything left (a test failed half-way) is killed by pid
    for (const pid of processesMentioning(dir)) {
      try { process.kill(pid, 'SIGKILL') } catch {}
    }
    await rm(dir, { recursive: true, force: true })
    dir = ''
  })

  it('anvil killed under a running swarm: status says so, the node says CHAIN error, swarm down still cleans up', async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-e2e-mf-'))
    const swarmDir = join(dir, 'swarm')
    const up = await runCli(['swarm', 'up', '--nodes', '1', '--dir', swarmDir, '--json'], 120_000)
    assert.equal(up.code, 0, up.stderr)
    const file = JSON.parse(await readFile(join(swarmDir, 'swarm.json'), 'utf8')) as SwarmFile
    const anvil = file.chain?.pid ?? 0
    assert.ok(anvil > 0 && await isAlive(anvil))
    process.kill(anvil, 'SIGKILL')
    const deadline = Date.now() + 10_000
    while (await isAlive(anvil)) {
      assert.ok(Date.now() < deadline, 'anvil did not die after SIGKILL')
      await new Promise((r) => setTimeout(r, 50))
    }
    const st = await runCli(['swarm', 'status', '--dir', swarmDir, '--json'])
    assert.equal(st.code, 0, st.stderr)
    const status = JSON.parse(st.stdout) as { chain: { running: boolean }, nodes: Array<{ running: boolean }> }
    assert.equal(status.chain.running, false)
    assert.equal(status.nodes[0].running, true, 'the node outlives its chain')
    // the node answers with a typed error, not a hang or a crash
    const w = await runCli(['wallet', 'show', '--data-dir', join(swarmDir, 'node-0'), '--json'], 90_000)
    assert.equal(w.code, 1)
    assert.equal(jsonError(w).code, 'RPC_UNREACHABLE')
    const down = await runCli(['swarm', 'down', '--dir', swarmDir])
    assert.equal(down.code, 0, down.stderr)
    assert.match(down.stderr, /anvil already stopped/)
    assert.deepEqual(processesMentioning(swarmDir), [])
  })

  it('Ctrl-C during swarm up: the nodes and anvil started so far are stopped', async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-e2e-mf-'))
    const swarmDir = join(dir, 'swarm')
    const p = new CliProcess(['swarm', 'up', '--nodes', '3', '--dir', swarmDir])
    procs.push(p)
    // interrupt once anvil runs and the first node is starting
    await p.waitFor('node-0 to start', () => p.stderr.includes('node-0 (requester) started'), 120_000)
    p.child.kill('SIGINT')
    const r = await p.exited
    assert.equal(r.code, 1, p.stderr)
    assert.match(p.stderr, /SWARM_INTERRUPTED/)
    assert.equal(existsSync(join(swarmDir, 'swarm.json')), false)
    assert.equal(existsSync(join(swarmDir, 'chain.json')), false)
    assert.deepEqual(processesMentioning(swarmDir), [], 'no node and no anvil left')
  })
})
