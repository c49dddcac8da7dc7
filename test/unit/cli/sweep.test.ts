import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseTaskSubmit } from '../../../node/cli/market-commands.js'
import { isIexecError } from '../../../node/common/errors.js'
import { parseRequestParams, parseSweepDocument } from '../../../protocols/market.js'

function codeOf (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    if (isIexecError(err)) return err.code
    throw err
  }
  return 'NO_ERROR'
}

const CID_A = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
const CID_B = 'bafkreidvbhs33ighmljlvr7zbv2ywwzcmp5adtf4kqvlly67cy56bdtmve'

describe('cli: task submit sweeps (--args-file, --input-files-file)', () => {
  let dir = ''
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'iexec-sweep-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })
  const file = async (name: string, text: string): Promise<string> => {
    const p = join(dir, name)
    await writeFile(p, text)
    return p
  }

  it('one line per task: the volume is the number of lines, an empty line is a task without arguments', async () => {
    const args = await file('args.txt', '1 a\n"two words"\n\n4\n')
    const req = parseTaskSubmit({ app: 'env', argsFile: args })
    assert.deepEqual(req.taskArgs, ['1 a', '"two words"', '', '4'])
    assert.equal(req.volume, 4)
    const inputs = await file('inputs.txt', `${CID_A}\n${CID_A} ${CID_B}\n\n${CID_B}\n`)
    const both = parseTaskSubmit({ app: 'env', argsFile: args, inputFilesFile: inputs, volume: '4' })
    assert.deepEqual(both.taskInputs, [[CID_A], [CID_A, CID_B], [], [CID_B]])
  })

  it('refused with codes: a volume or files of other lengths, --args with --args-file, a line that does not split, a bad CID, a missing file', async () => {
    const args = await file('three.txt', 'a\nb\nc\n')
    assert.equal(codeOf(() => parseTaskSubmit({ app: 'env', argsFile: args, volume: '4' })), 'CLI_BAD_OPTION')
    const two = await file('two.txt', `${CID_A}\n${CID_B}\n`)
    assert.equal(codeOf(() => parseTaskSubmit({ app: 'env', argsFile: args, inputFilesFile: two })), 'CLI_BAD_OPTION')
    assert.equal(codeOf(() => parseTaskSubmit({ app: 'env', argsFile: args, args: 'x' })), 'CLI_USAGE')
    const quote = await file('quote.txt', 'fine\n"unterminated\n')
    assert.equal(codeOf(() => parseTaskSubmit({ app: 'env', argsFile: quote })), 'ARGS_UNTERMINATED_QUOTE')
    const badCid = await file('badcid.txt', 'not-a-cid\n')
    assert.equal(codeOf(() => parseTaskSubmit({ app: 'env', inputFilesFile: badCid })), 'CLI_BAD_OPTION')
    assert.equal(codeOf(() => parseTaskSubmit({ app: 'env', argsFile: join(dir, 'missing.txt') })), 'CLI_BAD_OPTION')
    const empty = await file('empty.txt', '')
    assert.equal(codeOf(() => parseTaskSubmit({ app: 'env', argsFile: empty })), 'CLI_BAD_OPTION')
  })

  it('the request params carry the per-task lists, checked by every peer that parses them', () => {
    const ok = parseRequestParams(JSON.stringify({ iexec_p2p_task_args: ['1', '2 3'], iexec_p2p_task_inputs: [[CID_A], []] }))
    assert.deepEqual(ok.iexec_p2p_task_args, ['1', '2 3'])
    assert.deepEqual(ok.iexec_p2p_task_inputs, [[CID_A], []])
    for (const bad of [
      { iexec_p2p_task_args: [] }, { iexec_p2p_task_args: [1] }, { iexec_p2p_task_args: ['"open'] }, { iexec_p2p_task_args: 'a' },
      { iexec_p2p_task_inputs: [['../../etc/passwd']] }, { iexec_p2p_task_inputs: ['x'] }, { iexec_p2p_task_inputs: [] }
    ]) {
      assert.equal(codeOf(() => parseRequestParams(JSON.stringify(bad))), 'WIRE_INVALID', JSON.stringify(bad))
    }
  })

  it('a sweep too large for params: a document named by CID and sha256, checked like the inline lists', () => {
    const ref = { cid: CID_A, checksum: '0x' + 'ab'.repeat(32) }
    assert.deepEqual(parseRequestParams(JSON.stringify({ iexec_p2p_sweep: ref })).iexec_p2p_sweep, ref)
    for (const bad of [
      { iexec_p2p_sweep: { ...ref, checksum: '0x12' } }, { iexec_p2p_sweep: { ...ref, cid: '../x' } }, { iexec_p2p_sweep: 'x' },
      { iexec_p2p_sweep: ref, iexec_p2p_task_args: ['a'] }
    ]) {
      assert.equal(codeOf(() => parseRequestParams(JSON.stringify(bad))), 'WIRE_INVALID', JSON.stringify(bad))
    }
    const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v))
    assert.deepEqual(parseSweepDocument(enc({ args: ['a', 'b c'], inputs: [[CID_A], []] })), { args: ['a', 'b c'], inputs: [[CID_A], []] })
    for (const bad of [{}, { args: [] }, { args: ['"open'] }, { inputs: [['../etc']] }, [1]]) {
      assert.equal(codeOf(() => parseSweepDocument(enc(bad))), 'WIRE_INVALID', JSON.stringify(bad))
    }
    assert.equal(codeOf(() => parseSweepDocument(new Uint8Array([0xff, 0xfe]))), 'WIRE_INVALID')
  })
})
