import assert from 'node:assert/strict'
import '../../node/common/polyfills.js'

describe('polyfills', () => {
  it('Promise.withResolvers exists and resolves', async () => {
    const r = (Promise as unknown as { withResolvers: <T>() => { promise: Promise<T>, resolve: (v: T) => void } }).withResolvers<number>()
    r.resolve(42)
    assert.equal(await r.promise, 42)
  })
})
