import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { isAlive, isOurProcess, stopProcesses, waitForExit } from '../../../node/cli/processes.js'

describe('cli: process helpers', () => {
  const children: ChildProcess[] = []

  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  })

  function spawnSleeper (script: string, marker: string): ChildProcess {
    // the marker lets isOurProcess recognise it, as a data dir does for a node
    const c = spawn(process.execPath, ['-e', script, marker], { stdio: ['ignore', 'pipe', 'ignore'] })
    children.push(c)
    return c
  }

  it('stops a process with SIGTERM', async () => {
    const c = spawnSleeper('setInterval(() => {}, 1000)', 'marker-a')
    assert.ok(c.pid !== undefined)
    assert.equal(await isOurProcess(c.pid, 'marker-a'), true)
    assert.equal(await isOurProcess(c.pid, 'another-marker'), false, 'a process without the marker is not ours')
    const r = await stopProcesses([c.pid], 5000, 2000)
    assert.deepEqual(r, { stopped: [c.pid], killed: [], survivors: [] })
    assert.equal(await isAlive(c.pid), false)
  })

  it('kills a process that ignores SIGTERM after the grace time', async () => {
    const c = spawnSleeper("process.on('SIGTERM', () => {}); setInterval(() => {}, 1000); console.log('ready')", 'marker-b')
    assert.ok(c.pid !== undefined)
    // wait until the handler is installed, or SIGTERM would kill it before it could ignore it
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error('child never said ready')) }, 10_000)
      c.stdout?.once('data', () => { clearTimeout(timer); resolve() })
    })
    const t0 = Date.now()
    const r = await stopProcesses([c.pid], 500, 2000)
    assert.deepEqual(r.killed, [c.pid])
    assert.ok(Date.now() - t0 < 3000)
    assert.deepEqual(await waitForExit([c.pid], 1000), [])
  })
})
