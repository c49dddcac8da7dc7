import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { DealView, OrderbookEntry, SubmittedTask } from '../../node/api/client.js'
import type { NodeStatus, PeerView } from '../../node/api/index.js'
import { anvilBinary } from '../../node/chain/index.js'
import { writeSwarmKeyFile } from '../../node/network/index.js'
import { assertBuilt, BIN, pollUntil, runCommand, type RunResult } from '../e2e/cli-helpers.js'
import { createNatTopology, netnsUnavailable, type NatTopology } from '../helpers/netns.js'
import { waitFor } from '../helpers/wait.js'

const PORT = 4001

/** A long-running process inside a namespace (`ip netns exec` execs it: its pid is the node's). */
interface NsProcess { name: string, child: ChildProcess, out: string, err: string }

/**
 * The edge of the internet in network namespaces this test makes and
 * removes: a relay node and the chain in a public namespace, a provider
 * behind one home NAT (no port reachable from outside: only the relay
 * reaches it), a requester behind another (its router forwards the node's
 * port, as UPnP or an owner would). Every node is a real `iexec-p2p start`
 * process inside its namespace; all traffic stays in the namespaces.
 */
describe('faults: providers behind NAT, through a relay and DCUtR (network namespaces)', function () {
  this.timeout(420_000)
  let topo: NatTopology | undefined
  let dir = ''
  const procs: NsProcess[] = []
  const dataDir = (n: string): string => join(dir, n)
  let relayId = ''
  let providerId = ''
  let providerAddress = ''
  let requesterId = ''

  async function inNs (ns: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
    return await runCommand('ip', ['netns', 'exec', ns, process.execPath, BIN, ...args], timeoutMs)
  }
  async function json<T> (ns: string, node: string, args: string[], timeoutMs = 60_000): Promise<T> {
    const r = await inNs(ns, [...args, '--data-dir', dataDir(node), '--json'], timeoutMs)
    assert.equal(r.code, 0, `${args.join(' ')} on ${node}: ${r.stderr}`)
    return JSON.parse(r.stdout) as T
  }
  function spawnIn (ns: string, name: string, cmd: string[]): NsProcess {
    const child = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] })
    const p: NsProcess = { name, child, out: '', err: '' }
    child.stdout?.on('data', (d: Buffer) => { p.out += d.toString() })
    child.stderr?.on('data', (d: Buffer) => { p.err += d.toString() })
    procs.push(p)
    return p
  }
  async function startNode (ns: string, node: string, extra: string[]): Promise<{ peerId: string, address: string, multiaddrs: string[] }> {
    const p = spawnIn(ns, node, [process.execPath, BIN, 'start', '--data-dir', dataDir(node), '--swarm-key', join(dir, 'swarm.key'),
      '--listen', `/ip4/0.0.0.0/tcp/${PORT}`, '--json', ...extra])
    try {
      await waitFor(() => p.out.includes('\n') || p.child.exitCode !== null, 120_000, `${node} to print its ready line`, 100)
    } catch (err) {
      const log = await readFile(join(dataDir(node), 'node.log'), 'utf8').catch(() => '')
      throw new Error(`${(err as Error).message}; stderr: ${p.err}; node.log: ${log.split('\n').slice(-15).join('\n')}`)
    }
    assert.ok(p.child.exitCode === null, `${node} exited: ${p.err}`)
    return JSON.parse(p.out.split('\n')[0]) as { peerId: string, address: string, multiaddrs: string[] }
  }

  before(async function () {
    const why = await netnsUnavailable()
    if (why !== undefined) {
      // CI must run it: there the missing tool or right is a failure. A
      // developer's machine without root gets a clear message instead.
      if (process.env.CI === 'true') throw new Error(`the NAT test cannot run: ${why}`)
      throw new Error(`the NAT test cannot run here: ${why} (run it as root with iproute2 and nftables)`)
    }
    assertBuilt()
    dir = await mkdtemp(join(tmpdir(), 'iexec-nat-'))
    await writeSwarmKeyFile(join(dir, 'swarm.key'))
    topo = await createNatTopology(PORT)
    const t = topo

    // anvil listens inside the public namespace only
    spawnIn(t.pub, 'anvil', [anvilBinary(), '--host', t.pubIp, '--port', '8545', '--chain-id', '31337', '--accounts', '1'])
    const rpc = `http://${t.pubIp}:8545`

    const addrs: Record<string, string> = {}
    for (const n of ['relay', 'provider', 'requester']) {
      const r = await runCommand(process.execPath, [BIN, 'init', '--data-dir', dataDir(n), '--dev-unprotected-key', '--json'], 60_000)
      assert.equal(r.code, 0, r.stderr)
      addrs[n] = (JSON.parse(r.stdout) as { address: string }).address
    }
    const dep = await runCommand('ip', ['netns', 'exec', t.pub, process.execPath, '--import', 'tsx', resolve('test/helpers/nat-deploy.ts'), rpc, ...Object.values(addrs)], 120_000)
    assert.equal(dep.code, 0, dep.stderr)
    const chain = JSON.parse(dep.stdout.trim().split('\n').pop() ?? '') as { hub: string, blockNumber: number }
    // each node checks the chain from where it runs: through its NAT
    for (const [ns, n] of [[t.pub, 'relay'], [t.home1, 'provider'], [t.home2, 'requester']] as const) {
      await json(ns, n, ['init', '--rpc', rpc, '--hub', chain.hub, '--chain-id', '31337', '--from-block', String(chain.blockNumber)])
    }

    const relay = await startNode(t.pub, 'relay', ['--requester'])
    relayId = relay.peerId
    const relayAddr = `/ip4/${t.pubIp}/tcp/${PORT}/p2p/${relayId}`
    const provider = await startNode(t.home1, 'provider', ['--bootstrap', relayAddr])
    providerId = provider.peerId
    providerAddress = provider.address
    // the provider has a slot on the relay before anyone looks for it
    await pollUntil('the provider to hold a relay reservation', async () => await json<NodeStatus>(t.home1, 'provider', ['status']),
      (s) => s.nat?.reachability === 'relayed', 60_000, 300)
    const requester = await startNode(t.home2, 'requester', ['--requester', '--announce', `/ip4/${t.router2Wan}/tcp/${PORT}`,
      // the provider through the relay: the first connection to it is a relayed one
      '--bootstrap', relayAddr, `${relayAddr}/p2p-circuit/p2p/${providerId}`])
    requesterId = requester.peerId
    await json(t.home1, 'provider', ['account', 'deposit', '400RLC'], 120_000)
    await json(t.home1, 'provider', ['stake', '100RLC'], 120_000)
    await json(t.home2, 'requester', ['account', 'deposit', '500RLC'], 120_000)
  })

  after(async () => {
    // by pid, whatever happened; then the namespaces go (also on failure)
    for (const p of procs) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM')
    }
    for (const p of procs) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) continue
      await new Promise<void>((resolveExit) => {
        const timer = setTimeout(() => { p.child.kill('SIGKILL'); resolveExit() }, 15_000)
        p.child.once('exit', () => { clearTimeout(timer); resolveExit() })
      })
    }
    await topo?.remove()
    if (dir !== '') await rm(dir, { recursive: true, force: true })
  })

  it('status shows each node\'s reachability: the relay public and serving, the closed home relayed, the forwarded home public', async () => {
    const t = topo as NatTopology
    const relay = await pollUntil('AutoNAT to verify the relay\'s public address', async () => await json<NodeStatus>(t.pub, 'relay', ['status']),
      (s) => s.nat?.reachability === 'public', 60_000, 500)
    assert.equal(relay.nat?.relayServer, true, 'a node on a public IP serves relays (auto)')
    assert.ok(relay.nat?.publicAddrs.some((a) => a.startsWith(`/ip4/${t.pubIp}/tcp/${PORT}`)))
    assert.deepEqual(relay.swarm?.transports, ['tcp', 'websockets', 'p2p-circuit'])
    const provider = await json<NodeStatus>(t.home1, 'provider', ['status'])
    assert.equal(provider.nat?.reachability, 'relayed')
    assert.equal(provider.nat?.relayClient, true, 'a node with only LAN addresses reserves a relay slot (auto)')
    assert.ok(provider.nat?.relayAddrs.some((a) => a.includes(`/p2p/${relayId}/p2p-circuit`)), JSON.stringify(provider.nat))
    const requester = await json<NodeStatus>(t.home2, 'requester', ['status'])
    assert.equal(requester.nat?.reachability, 'public', 'its announced, forwarded address')
    const human = await inNs(t.home1, ['status', '--data-dir', dataDir('provider')])
    assert.match(human.stdout, /reachability relayed/)
  })

  it('the relayed connection to the NATed provider becomes a direct one (DCUtR): no longer limited', async () => {
    const t = topo as NatTopology
    const t0 = Date.now()
    const peers = await pollUntil('a direct connection between requester and provider', async () => await json<PeerView[]>(t.home2, 'requester', ['peers']),
      (ps) => ps.some((p) => p.peerId === providerId && p.limited === false), 60_000, 300)
    const p = peers.find((x) => x.peerId === providerId)
    assert.ok(p !== undefined)
    assert.equal(p.limited, false)
    assert.ok(p.multiaddrs.every((a) => !a.includes('/p2p-circuit')), `no relayed connection left: ${p.multiaddrs.join(', ')}`)
    // the provider dialled the requester's forwarded address: the relay carried only the handshake
    const fromProvider = await json<PeerView[]>(t.home1, 'provider', ['peers'])
    const q = fromProvider.find((x) => x.peerId === requesterId)
    assert.ok(q !== undefined && q.limited === false, JSON.stringify(fromProvider))
    assert.ok(q.multiaddrs.some((a) => a.startsWith(`/ip4/${t.router2Wan}/tcp/${PORT}`)), q.multiaddrs.join(', '))
    // the requester did open a relayed connection to the provider, and the provider's DCUtR followed it with a direct one
    const qs = await json<NodeStatus>(t.home2, 'requester', ['status'])
    assert.ok((qs.nat?.relayedConnections ?? 0) >= 1, JSON.stringify(qs.nat))
    assert.ok((qs.nat?.directUpgrades ?? 0) >= 1, `a relayed connection upgraded to a direct one: ${JSON.stringify(qs.nat)}`)
    console.info(`      relayed -> direct seen after ${Date.now() - t0} ms`)
  })

  it('the NATed provider is found in the DHT, bids, is assigned and completes a task; the requester behind the other NAT fetches the result', async () => {
    const t = topo as NatTopology
    const found = await pollUntil('the provider in the requester\'s DHT look-up', async () => await json<Array<{ peerId: string }>>(t.home2, 'requester', ['resources']),
      (list) => list.some((r) => r.peerId === providerId), 90_000, 1_000)
    assert.ok(found.some((r) => r.peerId === providerId))
    // the app lives on the public relay node
    const app = await json<{ address: string, orderHash: string }>(t.pub, 'relay', ['app', 'publish', resolve('examples/apps/primes/primes.wasm'), '--name', 'primes-nat', '--price', '0'], 120_000)
    await pollUntil('the app order in the requester\'s orderbook', async () => await json<{ orders: OrderbookEntry[] }>(t.home2, 'requester', ['orderbook', 'app']),
      (b) => b.orders.some((o) => o.orderHash === app.orderHash), 60_000, 500)
    const deal = await json<SubmittedTask>(t.home2, 'requester', ['task', 'submit', '--app', 'primes-nat', '--args', '1000', '--bidding-window', '4000'], 180_000)
    assert.deepEqual(deal.workers.map((w) => w.toLowerCase()), [providerAddress.toLowerCase()], 'the NATed provider bid and was assigned')
    const done = await pollUntil('the task to complete', async () => await json<DealView>(t.home2, 'requester', ['deal', 'show', deal.dealId]),
      (d) => d.tasks.every((x) => x.status === 'COMPLETED' || x.status === 'FAILED'), 150_000, 1_000)
    assert.deepEqual(done.tasks.map((x) => x.status), ['COMPLETED'])
    const got = await json<{ stdout: string }>(t.home2, 'requester', ['result', 'get', done.tasks[0].taskId], 120_000)
    assert.match(got.stdout, /count=168 last=997/)
  })
})
