import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lpStream } from '@libp2p/utils'
import { hexlify, randomBytes } from 'ethers'
import {
  EXEC_PROTOCOL, MAX_ASSIGN_TASKS, MAX_EXEC_MESSAGE_BYTES, MAX_REPORT_TASKS, decodeExecMessage, encodeExecMessage, validateExecMessage
} from '../../protocols/execution.js'
import type { AssignMessage, ExecMessage } from '../../protocols/execution.js'
import { isIexecError } from '../../node/common/errors.js'
import { IexecNode } from '../../node/node.js'
import { initDataDir } from '../../node/config/index.js'
import { ExecChannel, PeerResolver } from '../../node/scheduler/index.js'

const hex32 = (): string => hexlify(randomBytes(32))
const sig = (): string => hexlify(randomBytes(65))
const assign = (): AssignMessage => ({
  type: 'assign', proof: sig(), dealid: hex32(), tasks: [{ idx: 3, authorization: hexlify(randomBytes(65)) }, { idx: 4, authorization: hexlify(randomBytes(65)) }], trust: 3,
  app: hexlify(randomBytes(20)), appContent: { cid: 'bafkreidwcmhwohc4ia6s7nkx4f2eehx2dbz5bx5uqvgkfruzheookup4ym', checksum: hex32() },
  params: '{"iexec_args":"a b"}', deadline: 1_700_000_000
})

function code (fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return isIexecError(err) ? err.code : 'untyped'
  }
  return undefined
}

describe('execution protocol: codec', function () {
  it('round-trips every message type', () => {
    const msgs = [
      assign(),
      { ...assign(), dataset: { address: hexlify(randomBytes(20)), cid: 'bafkreidwcmhwohc4ia6s7nkx4f2eehx2dbz5bx5uqvgkfruzheookup4ym', checksum: hex32() }, resultEncryptionKey: '0x02' + 'ab'.repeat(32) },
      { type: 'assigned', accepted: 2 },
      { type: 'heartbeat', tasks: [{ taskid: hex32(), status: 'running' }, { taskid: hex32(), status: 'failed', code: 'TIMEOUT' }] },
      { type: 'contributed', taskids: [hex32(), hex32()], txHash: hex32() },
      { type: 'reveal-request', taskid: hex32(), proof: sig() },
      { type: 'revealed', taskid: hex32(), txHash: hex32() },
      { type: 'upload-request', taskid: hex32(), proof: sig() },
      { type: 'result-uploaded', taskid: hex32(), cid: 'bafkreidwcmhwohc4ia6s7nkx4f2eehx2dbz5bx5uqvgkfruzheookup4ym' },
      { type: 'finalized', taskid: hex32(), txHash: hex32(), cid: 'bafkreidwcmhwohc4ia6s7nkx4f2eehx2dbz5bx5uqvgkfruzheookup4ym', proof: sig() },
      { type: 'ack' },
      { type: 'error', code: 'DUTY_BUSY', reason: 'busy' }
    ] satisfies ExecMessage[]
    for (const m of msgs) assert.deepEqual(decodeExecMessage(encodeExecMessage(m)), m)
  })

  it('refuses bad messages with typed errors', () => {
    const enc = new TextEncoder()
    assert.equal(code(() => decodeExecMessage(enc.encode('not json'))), 'EXEC_WIRE_INVALID')
    assert.equal(code(() => decodeExecMessage(enc.encode('[]'))), 'EXEC_WIRE_INVALID')
    assert.equal(code(() => decodeExecMessage(enc.encode('{"type":"nope"}'))), 'EXEC_WIRE_INVALID')
    assert.equal(code(() => decodeExecMessage(new Uint8Array(MAX_EXEC_MESSAGE_BYTES + 1))), 'EXEC_WIRE_TOO_LARGE')
    assert.equal(code(() => validateExecMessage({ ...assign(), dealid: '0x12' })), 'EXEC_WIRE_INVALID')
    assert.equal(code(() => validateExecMessage({ ...assign(), tasks: [{ idx: -1, authorization: hexlify(randomBytes(65)) }] })), 'EXEC_WIRE_INVALID')
    assert.equal(code(() => validateExecMessage({ ...assign(), tasks: [{ idx: 1.5, authorization: hexlify(randomBytes(65)) }] })), 'EXEC_WIRE_INVALID')
    assert.equal(code(() => validateExecMessage({ ...assign(), tasks: [{ idx: 1, authorization: '0x12' }] })), 'EXEC_WIRE_INVALID')
    assert.equal(code(() => validateExecMessage({ ...assign(), tasks: [] })), 'EXEC_WIRE_INVALID', 'no task')
    assert.equal(code(() => validateExecMessage({ ...assign(), tasks: Array.from({ length: MAX_ASSIGN_TASKS + 1 }, (_, idx) => ({ idx, authorization: hexlify(randomBytes(65)) })) })), 'EXEC_WIRE_INVALID', 'too many tasks')
    assert.equal(code(() => validateExecMessage({ type: 'assigned', accepted: 0 })), 'EXEC_WIRE_INVALID')
    assert.equal(code(() => validateExecMessage({ type: 'contributed', taskids: ['0x1'], txHash: hex32() })), 'EXEC_WIRE_INVALID')
    assert.equal(code(() => validateExecMessage({ type: 'heartbeat', tasks: Array.from({ length: MAX_REPORT_TASKS + 1 }, () => ({ taskid: hex32(), status: 'running' })) })), 'EXEC_WIRE_INVALID')
    assert.equal(code(() => validateExecMessage({ ...assign(), trust: 0 })), 'EXEC_WIRE_INVALID')
    assert.equal(code(() => validateExecMessage({ ...assign(), app: 'x' })), 'EXEC_WIRE_INVALID')
    assert.equal(code(() => validateExecMessage({ ...assign(), appContent: { cid: '../../etc', checksum: hex32() } })), 'EXEC_WIRE_INVALID')
    assert.equal(code(() => validateExecMessage({ ...assign(), params: 'x'.repeat(5000) })), 'EXEC_WIRE_INVALID')
    assert.equal(code(() => validateExecMessage({ ...assign(), resultEncryptionKey: '0x04' + 'ab'.repeat(64) })), 'EXEC_WIRE_INVALID')
    assert.equal(code(() => validateExecMessage({ type: 'heartbeat', tasks: [{ taskid: hex32(), status: 'sleeping' }] })), 'EXEC_WIRE_INVALID')
    assert.equal(code(() => validateExecMessage({ type: 'heartbeat', tasks: [{ taskid: hex32(), status: 'failed', code: 'lower' }] })), 'EXEC_WIRE_INVALID')
    assert.equal(code(() => validateExecMessage({ type: 'error', code: 'lower case', reason: '' })), 'EXEC_WIRE_INVALID')
    // a node never sends what its peers would refuse
    assert.equal(code(() => encodeExecMessage({ ...assign(), deadline: -5 })), 'EXEC_WIRE_INVALID')
  })
})

describe('execution protocol: exec channel between two real nodes', function () {
  this.timeout(60_000)
  const cleanup: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  async function node (root: string, name: string): Promise<IexecNode> {
    const dataDir = join(root, name)
    await initDataDir({ dataDir, devUnprotectedKey: true, config: { swarmId: 'wire', advertIntervalMs: 3_600_000 } })
    const n = await IexecNode.create({ dataDir })
    await n.start()
    cleanup.push(async () => { await n.stop() })
    return n
  }

  it('routes by type, answers errors with their code, drops malformed messages, delivers to itself', async () => {
    const root = await mkdtemp(join(tmpdir(), 'iexec-wire-'))
    cleanup.push(async () => { await rm(root, { recursive: true, force: true }) })
    const a = await node(root, 'a')
    const b = await node(root, 'b')
    await a.network.dial(b.multiaddrs()[0])
    const ca = new ExecChannel(a.network, { timeoutMs: 3_000 })
    const cb = new ExecChannel(b.network, { timeoutMs: 3_000 })
    await ca.start()
    await cb.start()
    cleanup.push(async () => { await ca.stop(); await cb.stop() })
    const seen: Array<{ type: string, from: string }> = []
    cb.on('heartbeat', async (m, from) => { seen.push({ type: m.type, from }); return { type: 'ack' } })
    cb.on('upload-request', async (m) => ({ type: 'result-uploaded', taskid: (m as { taskid: string }).taskid, cid: 'bafkreidwcmhwohc4ia6s7nkx4f2eehx2dbz5bx5uqvgkfruzheookup4ym' }))
    cb.on('assign', async () => { throw Object.assign(new Error('no'), { code: 'DUTY_BUSY' }) })

    const taskid = hex32()
    assert.deepEqual(await ca.send(b.peerId, { type: 'heartbeat', tasks: [{ taskid, status: 'running' }] }), { type: 'ack' })
    assert.deepEqual(seen, [{ type: 'heartbeat', from: a.peerId }], 'the handler sees the authenticated remote peer')
    assert.equal((await ca.send(b.peerId, { type: 'upload-request', taskid, proof: sig() })).type, 'result-uploaded')
    await assert.rejects(ca.send(b.peerId, assign()), (err: unknown) => isIexecError(err, 'EXEC_REFUSED') && err.details?.code === 'DUTY_BUSY')
    await assert.rejects(ca.send(b.peerId, { type: 'reveal-request', taskid, proof: sig() }), (err: unknown) => isIexecError(err, 'EXEC_REFUSED') && err.details?.code === 'UNSUPPORTED')

    // malformed bytes: no answer, the stream is closed
    const stream = await a.network.dialProtocol(b.peerId, EXEC_PROTOCOL)
    const lp = lpStream(stream)
    await lp.write(new TextEncoder().encode('{"type":"heartbeat","tasks":[{"taskid":"0x1","status":"running"}]}'))
    await assert.rejects(lp.read({ signal: AbortSignal.timeout(3_000) }))
    assert.equal(seen.length, 1, 'the malformed message never reached a handler')

    // to itself: libp2p cannot dial self, the channel delivers locally
    ca.on('heartbeat', async (m, from) => { seen.push({ type: m.type, from }); return { type: 'ack' } })
    assert.deepEqual(await ca.send(a.peerId, { type: 'heartbeat', tasks: [{ taskid, status: 'done' }] }), { type: 'ack' })
    assert.deepEqual(seen[1], { type: 'heartbeat', from: a.peerId })

    // streams are kept and reused: fifty exchanges, one stream each way
    for (let i = 0; i < 50; i++) await ca.send(b.peerId, { type: 'heartbeat', tasks: [{ taskid, status: 'running' }] })
    assert.equal(ca.openStreams, 1, 'one outbound stream for fifty sequential exchanges')
    assert.equal(cb.openStreams, 1, 'one inbound stream served them all')
    // the answering side restarts and its streams die: the kept one is replaced, the message still goes
    await cb.stop()
    await cb.start()
    assert.deepEqual(await ca.send(b.peerId, { type: 'heartbeat', tasks: [{ taskid, status: 'running' }] }), { type: 'ack' })

    // an unreachable peer is EXEC_SEND_FAILED, bounded by the timeout
    await b.stop()
    await assert.rejects(ca.send(b.peerId, { type: 'heartbeat', tasks: [{ taskid, status: 'running' }] }), (err: unknown) => isIexecError(err, 'EXEC_SEND_FAILED'))
  })
})

describe('peer resolver', function () {
  it('answers from remembered pairs, looks up one address per miss (once per interval), shares a lookup, survives a failing one', async () => {
    let now = 0
    const looked: string[] = []
    let fail = false
    const a = '0x' + '11'.repeat(20)
    const b = '0x' + '22'.repeat(20)
    const c = '0x' + '33'.repeat(20)
    const r = new PeerResolver(async (address) => {
      looked.push(address.toLowerCase())
      await new Promise((resolve) => setImmediate(resolve))
      if (fail) throw new Error('dht down')
      return address.toLowerCase() === b ? { peerId: 'peer-b', cpus: 4 } : undefined
    }, 1_000, () => now)
    r.remember(a.toUpperCase().replace('0X', '0x'), 'peer-a')
    r.remember('not an address', 'x')
    assert.equal(await r.resolve(a), 'peer-a')
    assert.deepEqual(looked, [], 'a remembered pair needs no lookup')
    assert.equal(await r.resolve('not an address'), undefined)
    assert.deepEqual(looked, [], 'nothing to look up for a non-address')
    fail = true
    assert.equal(await r.resolve(b), undefined)
    assert.equal(await r.resolve(b), undefined, 'no second lookup within the interval')
    assert.deepEqual(looked, [b])
    fail = false
    now = 1_000
    // two resolutions at once: one lookup
    assert.deepEqual(await Promise.all([r.resolve(b), r.resolve(b)]), ['peer-b', 'peer-b'])
    assert.equal(await r.resolve(b), 'peer-b', 'remembered once found')
    assert.equal(r.capacity(b), 4, 'with the capacity its advert gives')
    assert.equal(r.capacity(a), undefined, 'a pair remembered without one has none')
    assert.deepEqual(looked, [b, b])
    // an address nobody advertises: looked up once per interval
    assert.equal(await r.resolve(c), undefined)
    assert.equal(await r.resolve(c), undefined)
    now = 2_000
    assert.equal(await r.resolve(c), undefined)
    assert.deepEqual(looked, [b, b, c, c])
  })
})
