import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isAlive } from '../../node/cli/processes.js'
import type { SwarmFile, SwarmUpJson } from '../../node/cli/index.js'
import type { PeerView, ResourceView } from '../../node/api/index.js'
import { assertBuilt, jsonError, pollUntil, processesMentioning, runCli } from './cli-helpers.js'

describe('e2e: the CLI runs a 3-node private swarm', function () {
  this.timeout(240_000)
  let dir: string | undefined
  let pids: number[] = []

  before(assertBuilt)

  afterEach(async () => {
    if (dir === undefined) return
    // always tear down, even when the test failed half-way
    await runCli(['swarm', 'down', '--dir', join(dir, 'swarm')], 60_000).catch(() => {})
    for (const pid of pids) {
      if (await isAlive(pid)) {
        try { process.kill(pid, 'SIGKILL') } catch {}
      }
    }
    await rm(dir, { recursive: true, force: true })
    dir = undefined
    pids = []
  })

  it('swarm up --json, peers, resources, status, swarm down leaves no process', async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-e2e-'))
    const swarmDir = join(dir, 'swarm')

    const t0 = Date.now()
    const up = await runCli(['swarm', 'up', '--nodes', '3', '--no-chain', '--dir', swarmDir, '--json'], 180_000)
    // record the pids first, so afterEach can kill them whatever fails next
    if (existsSync(join(swarmDir, 'swarm.json'))) {
      pids = (JSON.parse(await readFile(join(swarmDir, 'swarm.json'), 'utf8')) as SwarmFile).nodes.map((n) => n.pid)
    }
    assert.equal(up.code, 0, up.stderr)
    const upSeconds = (Date.now() - t0) / 1000
    const swarm = JSON.parse(up.stdout) as SwarmUpJson
    assert.equal(swarm.chain, null)
    assert.equal(swarm.nodes.length, 3)
    assert.deepEqual(swarm.nodes.map((n) => n.role), ['requester', 'provider', 'provider'])
    for (const n of swarm.nodes) {
      assert.deepEqual(Object.keys(n).sort(), ['address', 'api', 'multiaddrs', 'peerId', 'role', 'tokenFile'])
      assert.match(n.api, /^http:\/\/127\.0\.0\.1:\d+$/)
      assert.match(n.address, /^0x[0-9a-fA-F]{40}$/)
      assert.ok(n.multiaddrs.length > 0 && n.multiaddrs.every((m) => m.startsWith('/ip4/127.0.0.1/tcp/') && m.endsWith(`/p2p/${n.peerId}`)), n.multiaddrs.join(' '))
      assert.ok(existsSync(n.tokenFile))
    }
    assert.equal(pids.length, 3)
    for (const pid of pids) assert.equal(await isAlive(pid), true, `node pid ${pid} runs after swarm up returned`)
    const ids = swarm.nodes.map((n) => n.peerId)

    // peers on node-1 shows the other two (node-2 is found through node-0 and the DHT)
    const t1 = Date.now()
    const peers = await pollUntil('node-1 to see the other two nodes', async () => {
      const r = await runCli(['peers', '--data-dir', join(swarmDir, 'node-1'), '--json'])
      assert.equal(r.code, 0, r.stderr)
      return JSON.parse(r.stdout) as PeerView[]
    }, (list) => [ids[0], ids[2]].every((id) => list.some((p) => p.peerId === id)), 60_000)
    const peersSeconds = (Date.now() - t1) / 1000
    assert.ok(!peers.some((p) => p.peerId === ids[1]), 'a node does not list itself')
    for (const p of peers) assert.deepEqual(Object.keys(p).sort(), ['latencyMs', 'limited', 'multiaddrs', 'peerId'])

    // resources on the requester lists both providers, found through the DHT
    const t2 = Date.now()
    const resources = await pollUntil('the requester to find both providers in the DHT', async () => {
      const r = await runCli(['resources', '--data-dir', join(swarmDir, 'node-0'), '--json'])
      assert.equal(r.code, 0, r.stderr)
      return JSON.parse(r.stdout) as ResourceView[]
    }, (list) => [ids[1], ids[2]].every((id) => list.some((x) => x.peerId === id)), 90_000)
    const resourcesSeconds = (Date.now() - t2) / 1000
    assert.ok(!resources.some((r) => r.peerId === ids[0]), 'the requester advertises no resources')
    for (const r of resources) {
      for (const key of ['peerId', 'address', 'cpus', 'memoryMb', 'executors', 'category', 'priceFloor']) assert.ok(key in r, `resources row has ${key}`)
      const node = swarm.nodes.find((n) => n.peerId === r.peerId)
      assert.equal(r.address, node?.address, 'the advert carries the provider\'s wallet address')
    }

    const status = await runCli(['swarm', 'status', '--dir', swarmDir, '--json'])
    assert.equal(status.code, 0, status.stderr)
    const st = JSON.parse(status.stdout) as { nodes: Array<{ running: boolean, connections: number | null }> }
    assert.deepEqual(st.nodes.map((n) => n.running), [true, true, true])
    assert.ok(st.nodes.every((n) => n.connections !== null && n.connections >= 1))

    const t3 = Date.now()
    const down = await runCli(['swarm', 'down', '--dir', swarmDir], 60_000)
    const downSeconds = (Date.now() - t3) / 1000
    assert.equal(down.code, 0, down.stderr)
    for (const pid of pids) assert.equal(await isAlive(pid), false, `pid ${pid} is gone after swarm down`)
    assert.deepEqual(processesMentioning(swarmDir), [], 'no process of the swarm is left')
    assert.equal(existsSync(join(swarmDir, 'swarm.json')), false, 'swarm.json removed')
    for (const i of [0, 1, 2]) assert.equal(existsSync(join(swarmDir, `node-${i}`, 'api.json')), false, `node-${i} api.json removed`)
    // the client commands now say no node runs
    const after = await runCli(['peers', '--data-dir', join(swarmDir, 'node-1'), '--json'])
    assert.equal(after.code, 1)
    assert.equal(jsonError(after).code, 'NODE_NOT_RUNNING')
    console.info(`      swarm up ${upSeconds.toFixed(1)} s, peers seen ${peersSeconds.toFixed(1)} s, providers found ${resourcesSeconds.toFixed(1)} s, swarm down ${downSeconds.toFixed(1)} s`)
  })

  it('refuses a second swarm up on a running swarm', async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-e2e-'))
    const swarmDir = join(dir, 'swarm')
    const up = await runCli(['swarm', 'up', '--nodes', '1', '--no-chain', '--dir', swarmDir, '--json'], 120_000)
    if (existsSync(join(swarmDir, 'swarm.json'))) {
      pids = (JSON.parse(await readFile(join(swarmDir, 'swarm.json'), 'utf8')) as SwarmFile).nodes.map((n) => n.pid)
    }
    assert.equal(up.code, 0, up.stderr)
    assert.equal((JSON.parse(up.stdout) as SwarmUpJson).nodes[0].role, 'provider', 'a lone node is a provider')
    const again = await runCli(['swarm', 'up', '--nodes', '1', '--no-chain', '--dir', swarmDir, '--json'], 60_000)
    assert.equal(again.code, 1)
    assert.equal(jsonError(again).code, 'SWARM_ALREADY_RUNNING')
    for (const pid of pids) assert.equal(await isAlive(pid), true, 'the refused second up leaves the first swarm running')
  })

  it('quickstart --once: every node finds the providers, then the swarm is gone', async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-e2e-'))
    const swarmDir = join(dir, 'swarm')
    const r = await runCli(['quickstart', '--once', '--no-chain', '--nodes', '3', '--dir', swarmDir, '--json'], 200_000)
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout) as SwarmUpJson & { peers: PeerView[], resources: ResourceView[] }
    assert.equal(out.nodes.length, 3)
    const providers = out.nodes.filter((n) => n.role === 'provider').map((n) => n.peerId).sort()
    assert.deepEqual(out.resources.map((x) => x.peerId).sort(), providers)
    assert.equal(out.peers.length, 2)
    assert.equal(existsSync(join(swarmDir, 'swarm.json')), false)
    assert.deepEqual(processesMentioning(swarmDir), [], 'quickstart --once leaves no process')
  })

  it('a node that fails to start: swarm up stops the others and shows its log', async () => {
    dir = await mkdtemp(join(tmpdir(), 'iexec-e2e-'))
    const swarmDir = join(dir, 'swarm')
    // node-1's data dir exists with a config.json the node refuses
    const init = await runCli(['init', '--data-dir', join(swarmDir, 'node-1'), '--dev-unprotected-key', '--json'])
    assert.equal(init.code, 0, init.stderr)
    await mkdir(join(swarmDir, 'node-1'), { recursive: true })
    await writeFile(join(swarmDir, 'node-1', 'config.json'), JSON.stringify({ cpus: -4 }))
    const r = await runCli(['swarm', 'up', '--nodes', '2', '--dir', swarmDir, '--json'], 180_000)
    assert.equal(r.code, 1)
    const e = jsonError(r)
    assert.equal(e.code, 'SWARM_NODE_FAILED')
    assert.match(e.message, /node-1/)
    assert.match(e.message, /CONFIG_INVALID|DATA_DIR_CORRUPT/, 'the log tail names why the node failed')
    assert.equal(existsSync(join(swarmDir, 'swarm.json')), false)
    assert.deepEqual(processesMentioning(swarmDir), [], 'node-0, started first, was stopped')
  })
})
