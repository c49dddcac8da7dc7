import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { LogFile } from '../../../node/common/log-file.js'
import type { ExitHook } from '../../../node/common/log-file.js'

/** An exit hook that records its listeners and can fire them as the process' exit would. */
class FakeExit implements ExitHook {
  readonly listeners = new Set<() => void>()
  once (_event: 'exit', listener: () => void): void { this.listeners.add(listener) }
  off (_event: 'exit', listener: () => void): void { this.listeners.delete(listener) }
  exit (): void { for (const l of [...this.listeners]) { this.listeners.delete(l); l() } }
}

const lines = async (file: string): Promise<Array<Record<string, unknown>>> => {
  const text = await readFile(file, 'utf8').catch(() => '')
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)
}

describe('common: LogFile (node.log, one append per turn)', () => {
  let dir: string
  let file: string
  const at = new Date('2026-01-02T03:04:05.000Z')

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-log-'))
    file = join(dir, 'node.log')
  })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('writes JSON lines with time, level, component, message and context', async () => {
    const log = new LogFile(file, new FakeExit(), () => at)
    log.logger('market').info('order accepted', { hash: '0x12' })
    await nextTurn()
    assert.deepEqual(await lines(file), [{ t: at.toISOString(), level: 'info', component: 'market', msg: 'order accepted', hash: '0x12' }])
  })

  it('holds a turn\'s info lines until the turn ends, in order, across components', async () => {
    const log = new LogFile(file, new FakeExit(), () => at)
    log.logger('a').info('one')
    log.logger('b').info('two')
    // read synchronously: an async read spans turns, and the turn's flush may land before it reads
    assert.equal(existsSync(file) ? readFileSync(file, 'utf8') : '', '', 'nothing written within the turn')
    await nextTurn()
    assert.deepEqual((await lines(file)).map((l) => `${String(l.component)}:${String(l.msg)}`), ['a:one', 'b:two'])
  })

  it('writes a warning at once, with the info lines before it', async () => {
    const log = new LogFile(file, new FakeExit(), () => at)
    log.logger('a').info('before')
    log.logger('a').warn('trouble')
    assert.deepEqual((await lines(file)).map((l) => l.msg), ['before', 'trouble'])
  })

  it('listens to the exit only while lines wait, and writes them when the process exits', async () => {
    const exit = new FakeExit()
    const log = new LogFile(file, exit, () => at)
    assert.equal(exit.listeners.size, 0)
    log.logger('node').info('last words')
    assert.equal(exit.listeners.size, 1)
    exit.exit()
    assert.deepEqual((await lines(file)).map((l) => l.msg), ['last words'])
    await nextTurn()
    assert.equal(exit.listeners.size, 0)
    assert.equal((await lines(file)).length, 1, 'nothing written twice')
  })

  it('keeps two instances apart (no state shared between nodes)', async () => {
    const other = join(dir, 'other.log')
    new LogFile(file, new FakeExit(), () => at).logger('x').info('to the first')
    new LogFile(other, new FakeExit(), () => at).logger('x').info('to the second')
    await nextTurn()
    assert.deepEqual((await lines(file)).map((l) => l.msg), ['to the first'])
    assert.deepEqual((await lines(other)).map((l) => l.msg), ['to the second'])
  })

  it('drops a line whose context cannot be serialised', async () => {
    const log = new LogFile(file, new FakeExit(), () => at)
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    log.logger('x').info('cyclic', cyclic)
    log.logger('x').info('plain')
    await nextTurn()
    assert.deepEqual((await lines(file)).map((l) => l.msg), ['plain'])
  })

  it('never throws when the file cannot be written', async () => {
    const log = new LogFile(join(dir, 'gone', 'node.log'), new FakeExit(), () => at)
    assert.doesNotThrow(() => { log.logger('x').warn('no dir') })
    log.logger('x').info('later')
    await nextTurn()
  })
})
