// GPU detection with a fake nvidia-smi on PATH (this machine has no GPU), and
// the matching it leads to: a request that needs a GPU is bid on only by a
// node whose detection found one.
import assert from 'node:assert/strict'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ZERO_BYTES32 } from '../../../protocols/eip712.js'
import { encodeTags } from '../../../protocols/market.js'
import { defaultBidStrategy } from '../../../node/market/bid-strategy.js'
import type { BidContext } from '../../../node/market/bid-strategy.js'
import { detectGpus, gpuDeviceNodes, parseNvidiaSmi, tagsWithGpus } from '../../../node/worker/gpu.js'
import type { GpuInfo } from '../../../node/worker/gpu.js'
import { requestOrder, worker } from '../market/fixture.js'

describe('worker/gpu', function () {
  let dir: string

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-gpu-test-'))
  })

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  async function fakeSmi (script: string): Promise<NodeJS.ProcessEnv> {
    await writeFile(join(dir, 'nvidia-smi'), `#!/bin/sh\n${script}\n`)
    await chmod(join(dir, 'nvidia-smi'), 0o755)
    return { PATH: `${dir}:/usr/bin:/bin` }
  }

  it('reads count, model and memory from nvidia-smi', async () => {
    const env = await fakeSmi([
      'case "$*" in *--query-gpu=index,name,memory.total*--format=csv,noheader,nounits*) ;; *) exit 9 ;; esac',
      "printf '0, NVIDIA A100-SXM4-40GB, 40960\\n1, Tesla T4, 15360\\n'"
    ].join('\n'))
    assert.deepEqual(detectGpus(env), [
      { index: 0, model: 'NVIDIA A100-SXM4-40GB', memoryMb: 40960 },
      { index: 1, model: 'Tesla T4', memoryMb: 15360 }
    ])
  })

  it('finds none without nvidia-smi, when it fails, or when it prints nothing readable', async () => {
    assert.deepEqual(detectGpus({ PATH: dir }), [])
    assert.deepEqual(detectGpus(await fakeSmi('echo "NVIDIA-SMI has failed" >&2; exit 9')), [])
    assert.deepEqual(detectGpus(await fakeSmi("echo 'No devices were found'")), [])
    assert.deepEqual(parseNvidiaSmi('x, y, z\n-1, A, 5\n0, , 5\n'), [])
  })

  it('offers the gpu tag only with a GPU, and binds only the device nodes present', () => {
    const one: GpuInfo[] = [{ index: 0, model: 'T4', memoryMb: 15360 }]
    assert.deepEqual(tagsWithGpus(['region:eu'], one), ['region:eu', 'gpu'])
    assert.deepEqual(tagsWithGpus(['region:eu', 'gpu'], []), ['region:eu'])
    assert.deepEqual(gpuDeviceNodes([], '/dev'), [])
    // /dev/null stands in for nothing: none of the NVIDIA names exist on this host
    assert.deepEqual(gpuDeviceNodes(one, '/dev'), [])
  })

  it('lets a request that needs a GPU match only a node that has one', async () => {
    const ctx = (tags: string[]): BidContext => ({
      provider: { categories: [0], tags, priceFloor: 3n, executors: ['wasi'], cpus: 4, memoryMb: 4096 },
      worker: worker.address, appExecutor: 'wasi', freeStake: 100n, workerStakeRatio: 30n, freeSlots: 2
    })
    // no nvidia-smi on this PATH (the fake one is written after)
    const without = tagsWithGpus(['gpu'], detectGpus({ PATH: dir }))
    const withGpu = tagsWithGpus([], detectGpus(await fakeSmi("echo '0, Tesla T4, 15360'")))
    assert.deepEqual([without, withGpu], [[], ['gpu']])
    const byBit = requestOrder({ tag: encodeTags(['gpu']), workerpoolmaxprice: 5n, category: 0n })
    const byParam = requestOrder({ tag: ZERO_BYTES32, workerpoolmaxprice: 5n, category: 0n, params: '{"iexec_p2p_tags":["gpu"]}' })
    const plain = requestOrder({ tag: ZERO_BYTES32, workerpoolmaxprice: 5n, category: 0n })
    for (const r of [byBit, byParam]) {
      assert.equal((await defaultBidStrategy(r, ctx(withGpu))).code, 'OK')
      assert.equal((await defaultBidStrategy(r, ctx(without))).code, 'TAG_MISSING')
    }
    assert.equal((await defaultBidStrategy(plain, ctx(without))).code, 'OK')
  })
})
