// computed.json's callback-data: the digest rule (keccak256 of the bytes, as
// iExec) on disk and in memory, its bounds, and its field in result-uploaded.
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { keccak256 } from 'ethers'
import { MAX_CALLBACK_DATA_BYTES, computeResultDigest, resultDigestOfTree } from '../../../node/storage/digest.js'
import { readTreeSync } from '../../../node/storage/archive.js'
import { isIexecError } from '../../../node/common/errors.js'
import { ExecWireError, validateExecMessage } from '../../../protocols/execution.js'

describe('worker: computed.json callback-data', () => {
  let root: string
  let n = 0
  beforeEach(async () => { root = await mkdtemp(join(tmpdir(), 'iexec-callback-test-')) })
  afterEach(async () => { await rm(root, { recursive: true, force: true }) })

  async function output (computed: unknown, extra: Record<string, string> = {}): Promise<string> {
    const dir = join(root, `o${++n}`)
    await mkdir(dir)
    await writeFile(join(dir, 'computed.json'), typeof computed === 'string' ? computed : JSON.stringify(computed))
    for (const [name, content] of Object.entries(extra)) await writeFile(join(dir, name), content)
    return dir
  }

  it('the digest is keccak256 of the bytes, whatever else the output holds (iExec); the same from memory', async () => {
    const data = '0x' + '00'.repeat(31) + 'e8' + '00'.repeat(31) + 'a8'
    const a = await output({ 'callback-data': data, 'deterministic-output-path': '/iexec_out/result.txt' }, { 'result.txt': 'n=1000 count=168\n', 'log.txt': 'noise 1' })
    const b = await output({ 'callback-data': data.toUpperCase().replace('0X', '0x') }, { 'log.txt': 'other noise' })
    const da = await computeResultDigest(a)
    assert.deepEqual(da, { digest: keccak256(data), mode: 'callback', path: '', callbackData: data })
    // upper-case hex is the same bytes: the same digest, the data passed on in lower case
    assert.deepEqual(await computeResultDigest(b), da)
    assert.deepEqual(resultDigestOfTree(readTreeSync(a, 1 << 20).entries ?? []), da)
    // empty bytes are data too
    assert.equal((await computeResultDigest(await output({ 'callback-data': '0x' }))).digest, keccak256('0x'))
  })

  it('refuses callback-data that is not whole 0x-hex bytes, or too long, with WORKER_DIGEST_BAD_COMPUTED', async () => {
    for (const bad of [42, 'abcd', '0xabc', '0xzz', null, '0x' + '00'.repeat(MAX_CALLBACK_DATA_BYTES + 1)]) {
      const d = await output({ 'callback-data': bad })
      await assert.rejects(computeResultDigest(d), (err: unknown) => isIexecError(err, 'WORKER_DIGEST_BAD_COMPUTED'), String(bad).slice(0, 20))
      assert.throws(() => resultDigestOfTree(readTreeSync(d, 1 << 22).entries ?? []), (err: unknown) => isIexecError(err, 'WORKER_DIGEST_BAD_COMPUTED'))
    }
    // the bound itself is fine
    const max = await output({ 'callback-data': '0x' + 'ff'.repeat(MAX_CALLBACK_DATA_BYTES) })
    assert.equal((await computeResultDigest(max)).mode, 'callback')
  })

  it('result-uploaded carries callbackData: lower-case whole bytes within the bound, else a coded refusal', () => {
    const base = { type: 'result-uploaded', taskid: '0x' + '11'.repeat(32), cid: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy' }
    assert.deepEqual(validateExecMessage({ ...base, callbackData: '0xabcd' }), { ...base, callbackData: '0xabcd' })
    assert.deepEqual(validateExecMessage(base), base)
    for (const bad of ['0xABCD', '0xabc', 'abcd', 7, '0x' + 'ab'.repeat(MAX_CALLBACK_DATA_BYTES + 1)]) {
      assert.throws(() => validateExecMessage({ ...base, callbackData: bad }), (err: unknown) => err instanceof ExecWireError, String(bad).slice(0, 20))
    }
  })
})
