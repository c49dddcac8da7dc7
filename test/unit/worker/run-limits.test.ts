import assert from 'node:assert/strict'
import { runLimits } from '../../../node/worker/run-limits.js'
import { MAX_TIMEOUT_MS } from '../../../node/worker/options.js'

const MiB = 1024 * 1024

describe('worker/run-limits: a run\'s bounds are its category\'s', () => {
  it('takes the time reference, memory and disk of the category', () => {
    assert.deepEqual(runLimits({ timeRef: 60, memoryMiB: 256, diskMiB: 64 }), { timeoutMs: 60_000, maxMemoryBytes: 256 * MiB, maxOutputBytes: 64 * MiB })
    assert.deepEqual(runLimits({ timeRef: 3600, memoryMiB: 8192, diskMiB: 32768 }), { timeoutMs: 3_600_000, maxMemoryBytes: 8192 * MiB, maxOutputBytes: 32768 * MiB })
  })

  it('a lower cap wins, a higher one does not raise the category\'s bound', () => {
    assert.deepEqual(runLimits({ timeRef: 60, memoryMiB: 256, diskMiB: 64 }, { maxRunMs: 1_500, maxMemoryBytes: 64 * MiB }), { timeoutMs: 1_500, maxMemoryBytes: 64 * MiB, maxOutputBytes: 64 * MiB })
    assert.deepEqual(runLimits({ timeRef: 2, memoryMiB: 32, diskMiB: 1 }, { maxRunMs: 30_000, maxMemoryBytes: 256 * MiB, maxOutputBytes: 64 * MiB }), { timeoutMs: 2_000, maxMemoryBytes: 32 * MiB, maxOutputBytes: MiB })
  })

  it('a time reference past Node\'s largest timer is that timer', () => {
    assert.equal(runLimits({ timeRef: 0xffffff, memoryMiB: 1, diskMiB: 1 }).timeoutMs, MAX_TIMEOUT_MS)
  })
})
