/**
 * The exec-message decoder against hostile bytes (fast-check, 10,000+ cases
 * per family): random bytes, random JSON, and valid messages with one field
 * mutated. The decoder never crashes: it answers a message that validates
 * again and encodes, or throws an ExecWireError with a code. And the
 * scheduler's ExecPeer proof binds the key to one peer id.
 */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Wallet, hexlify, randomBytes } from 'ethers'
import {
  ExecWireError, EXEC_OFFENCE_CODES, decodeExecMessage, encodeExecMessage, recoverExecPeer, signExecPeer, validateExecMessage
} from '../../../protocols/execution.js'
import type { ExecMessage } from '../../../protocols/execution.js'
import { hubDomain } from '../../../protocols/eip712.js'

const CODES = new Set(['EXEC_WIRE_INVALID', 'EXEC_WIRE_TOO_LARGE'])
const CID = 'bafkreidwcmhwohc4ia6s7nkx4f2eehx2dbz5bx5uqvgkfruzheookup4ym'
const hex = (n: number): string => hexlify(randomBytes(n))

function valid (): ExecMessage[] {
  return [
    {
      type: 'assign', proof: hex(65), dealid: hex(32), tasks: [{ idx: 1, authorization: hex(65) }], trust: 3, app: hex(20),
      appContent: { cid: CID, checksum: hex(32) }, dataset: { address: hex(20), cid: CID, checksum: hex(32) }, params: '{"iexec_args":"a"}',
      resultEncryptionKey: '0x02' + 'ab'.repeat(32), deadline: 1_700_000_000
    },
    { type: 'assigned', accepted: 1 },
    { type: 'heartbeat', tasks: [{ taskid: hex(32), status: 'failed', code: 'TIMEOUT' }] },
    { type: 'contributed', taskids: [hex(32)], txHash: hex(32) },
    { type: 'reveal-request', taskid: hex(32), proof: hex(65) },
    { type: 'revealed', taskid: hex(32), txHash: hex(32) },
    { type: 'upload-request', taskid: hex(32), proof: hex(65) },
    { type: 'result-uploaded', taskid: hex(32), cid: CID },
    { type: 'finalized', taskid: hex(32), txHash: hex(32), cid: CID, proof: hex(65) },
    { type: 'ack' },
    { type: 'error', code: 'DUTY_BUSY', reason: 'busy' }
  ]
}

/** Decodes; a refusal must be a coded ExecWireError, an acceptance a message that round-trips. */
function check (bytes: Uint8Array): void {
  let m: ExecMessage
  try {
    m = decodeExecMessage(bytes)
  } catch (err) {
    assert.ok(err instanceof ExecWireError, `an ExecWireError, got ${String(err)}`)
    assert.ok(CODES.has(err.code), `a known code, got ${err.code}`)
    assert.ok(EXEC_OFFENCE_CODES.has(err.code), 'a malformed message is an offence')
    return
  }
  assert.deepEqual(validateExecMessage(JSON.parse(JSON.stringify(m))), m)
  encodeExecMessage(m)
}

const enc = new TextEncoder()
/** any JSON-ish value, including the shapes the decoder looks for */
const field = fc.oneof(
  fc.constant(undefined), fc.constant(null), fc.boolean(), fc.integer(), fc.double(), fc.string({ maxLength: 80 }),
  fc.constantFrom('0x' + '00'.repeat(32), '0x' + 'ff'.repeat(65), '0x' + 'a'.repeat(40), CID, -1, 2 ** 53, 1e308, '__proto__', []),
  fc.array(fc.anything({ maxDepth: 2 }), { maxLength: 4 }), fc.object({ maxDepth: 2 })
)

describe('exec protocol: decoder fuzzing (fast-check)', function () {
  this.timeout(120_000)

  it('random bytes: never a crash, every refusal coded (10,000 cases)', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => { check(b) }), { numRuns: 10_000 })
  })

  it('random JSON values and objects with a known type: never a crash, every refusal coded (10,000 cases)', () => {
    const types = fc.constantFrom(...valid().map((m) => m.type), 'nope', '')
    const arb = fc.oneof(
      fc.anything({ maxDepth: 3 }),
      fc.record({ type: types }).chain((o) => fc.dictionary(fc.constantFrom('proof', 'dealid', 'tasks', 'trust', 'app', 'appContent', 'dataset', 'params', 'resultEncryptionKey', 'deadline', 'taskid', 'txHash', 'cid', 'taskids', 'accepted', 'code', 'reason'), field).map((d) => ({ ...d, ...o })))
    )
    fc.assert(fc.property(arb, (v) => {
      let text: string | undefined
      try {
        text = JSON.stringify(v)
      } catch {
        return
      }
      check(enc.encode(text ?? 'undefined'))
    }), { numRuns: 10_000 })
  })

  it('valid messages with one field replaced, removed or truncated: never a crash, every refusal coded (10,000 cases)', () => {
    const base = valid()
    const arb = fc.record({ i: fc.nat({ max: base.length - 1 }), key: fc.string({ maxLength: 20 }), pick: fc.nat(), value: field, cut: fc.nat({ max: 400 }), how: fc.constantFrom('replace', 'remove', 'truncate', 'nest') })
    fc.assert(fc.property(arb, ({ i, pick, key, value, cut, how }) => {
      const m = JSON.parse(JSON.stringify(base[i])) as Record<string, unknown>
      const keys = Object.keys(m)
      const k = keys[pick % keys.length]
      if (how === 'replace') m[k] = value
      else if (how === 'remove') delete m[k]
      else if (how === 'nest') m[key] = value
      const text = JSON.stringify(m)
      check(enc.encode(how === 'truncate' ? text.slice(0, cut) : text))
    }), { numRuns: 10_000 })
  })

  it('every valid message round-trips', () => {
    for (const m of valid()) assert.deepEqual(decodeExecMessage(encodeExecMessage(m)), m)
  })

  it('a scheduler\'s proof recovers its address for its own peer id only, and under its hub\'s domain only', async () => {
    const domain = hubDomain(31337, '0x' + '12'.repeat(20))
    const wallet = Wallet.createRandom()
    const peer = '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf'
    const proof = await signExecPeer(wallet, domain, peer)
    assert.equal(recoverExecPeer(domain, peer, proof), wallet.address)
    assert.notEqual(recoverExecPeer(domain, peer.slice(0, -1) + 'u', proof), wallet.address, 'another peer id recovers another address')
    assert.notEqual(recoverExecPeer(hubDomain(31338, domain.verifyingContract), peer, proof), wallet.address, 'another chain recovers another address')
    // ethers' own typed-data signature is the same proof (a remote signer takes that path)
    const viaEthers = await wallet.signTypedData({ name: domain.name, version: domain.version, chainId: domain.chainId, verifyingContract: domain.verifyingContract }, { ExecPeer: [{ name: 'peer', type: 'string' }] }, { peer })
    assert.equal(viaEthers, proof)
  })
})
