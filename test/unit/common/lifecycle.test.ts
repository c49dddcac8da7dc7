import assert from 'node:assert/strict'
import { Lifecycle, startable } from '../../../node/common/lifecycle.js'
import type { Startable } from '../../../node/common/lifecycle.js'

/** A component that writes what happens to it in a shared trail. */
function component (name: string, trail: string[], fail: { start?: boolean, stop?: boolean } = {}): Startable {
  return {
    start: async () => {
      trail.push(`start ${name}`)
      if (fail.start === true) throw new Error(`${name} cannot start`)
    },
    stop: async () => {
      trail.push(`stop ${name}`)
      if (fail.stop === true) throw new Error(`${name} cannot stop`)
    }
  }
}

describe('common: Lifecycle (start order, reverse stop)', () => {
  it('stops the components in the reverse of their start order', async () => {
    const trail: string[] = []
    const l = new Lifecycle()
    await l.start('db', component('db', trail))
    await l.start('network', component('network', trail))
    l.add('listener', { stop: async () => { trail.push('stop listener') } })
    await l.start('api', component('api', trail))
    assert.deepEqual(l.names(), ['db', 'network', 'listener', 'api'])
    assert.deepEqual(await l.stopAll(), [])
    assert.deepEqual(trail, ['start db', 'start network', 'start api', 'stop api', 'stop listener', 'stop network', 'stop db'])
    assert.deepEqual(l.names(), [], 'a stopped lifecycle forgets its components')
  })

  it('collects each failed stop with its name and still stops the rest', async () => {
    const trail: string[] = []
    const l = new Lifecycle()
    await l.start('a', component('a', trail, { stop: true }))
    await l.start('b', component('b', trail))
    await l.start('c', component('c', trail, { stop: true }))
    const failures = await l.stopAll()
    assert.deepEqual(failures.map((f) => f.name), ['c', 'a'])
    assert.ok(failures.every((f) => f.error instanceof Error))
    assert.deepEqual(trail.filter((t) => t.startsWith('stop')), ['stop c', 'stop b', 'stop a'])
  })

  it('stop() never throws, and a second stop does nothing', async () => {
    const trail: string[] = []
    const l = new Lifecycle()
    await l.start('a', component('a', trail, { stop: true }))
    await l.stop()
    await l.stop()
    assert.deepEqual(trail, ['start a', 'stop a'])
  })

  it('a start that throws leaves its component and those before it to stop', async () => {
    const trail: string[] = []
    const l = new Lifecycle()
    await l.start('db', component('db', trail))
    await assert.rejects(l.start('network', component('network', trail, { start: true })), /network cannot start/)
    // the node stops what it recorded: the half-started network, then the db
    await l.stop()
    assert.deepEqual(trail, ['start db', 'start network', 'stop network', 'stop db'])
  })

  it('startable wraps a synchronous start and stop', async () => {
    const trail: string[] = []
    const c = startable(() => { trail.push('start') }, () => { trail.push('stop') })
    await c.start()
    await c.stop()
    assert.deepEqual(trail, ['start', 'stop'])
  })
})
