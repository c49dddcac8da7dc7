import assert from 'node:assert/strict'
import { APPS, checkApps, compileApp } from '../../../examples/build-apps.js'

describe('examples/build-apps', function () {
  // Eight AssemblyScript compiles, about a second each on a busy machine.
  this.timeout(180_000)

  it('every committed .wasm matches a fresh build of its source', async () => {
    const checks = await checkApps()
    assert.deepEqual(checks.map((c) => c.name), APPS.map((a) => a.name))
    for (const c of checks) assert.ok(c.ok, `${c.name}: ${c.reason ?? ''}`)
  })

  it('a build is deterministic and a changed source is detected', async () => {
    const app = APPS.find((a) => a.name === 'fail')
    assert.ok(app !== undefined)
    const [a, b] = [await compileApp(app), await compileApp(app)]
    assert.deepEqual(a, b)
    // Different flags stand in for a changed source: the check must see it.
    const other = await compileApp({ ...app, flags: ['--maximumMemory', '17'] })
    assert.notDeepEqual(other, a)
    const [check] = await checkApps([{ ...app, flags: ['--maximumMemory', '17'] }])
    assert.equal(check.ok, false)
  })
})
