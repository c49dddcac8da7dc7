import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { isAlive } from '../../node/cli/processes.js'
import type { SwarmFile } from '../../node/cli/index.js'
import type { TaskStatusView } from '../../node/api/client.js'
import { fileURLToPath } from 'node:url'
import { AbiCoder, Contract, ContractFactory, HDNodeWallet, JsonRpcProvider, Mnemonic, NonceManager } from 'ethers'
import { compileSolidity } from '../../contracts-abi/compile.js'
import { Hub__factory } from '../../contracts-abi/index.js'
import { ANVIL_MNEMONIC } from '../../node/chain/local-chain.js'
import { assertBuilt, jsonError, pollUntil, runCli, runCommand, type RunResult } from './cli-helpers.js'

/**
 * The example DApp (examples/dapp) on a 4-node swarm: a contract asks the
 * swarm with no requester node (its request is published on chain), a
 * provider matches it, the hub calls the contract back at finalize, and the
 * CLI finds the task and its result from the DApp's submit transaction.
 */
describe('e2e: a smart contract uses the swarm (examples/dapp on 4 nodes)', function () {
  this.timeout(300_000)
  let dir = ''
  let swarmDir = ''
  let file: SwarmFile | undefined
  let app = ''

  const dataDir = (i: number): string => join(swarmDir, `node-${i}`)
  const on = async (i: number, args: string[], timeoutMs?: number): Promise<RunResult> => await runCli([...args, '--data-dir', dataDir(i)], timeoutMs)

  before(async () => {
    assertBuilt()
    dir = await mkdtemp(join(tmpdir(), 'iexec-e2e-dapp-'))
    swarmDir = join(dir, 'swarm')
    const up = await runCli(['swarm', 'up', '--nodes', '4', '--dir', swarmDir, '--json'], 240_000)
    if (existsSync(join(swarmDir, 'swarm.json'))) file = JSON.parse(await readFile(join(swarmDir, 'swarm.json'), 'utf8')) as SwarmFile
    assert.equal(up.code, 0, up.stderr)
    // node-1 (a provider) owns the app; free, so the DApp pays the worker only
    const pub = await on(1, ['app', 'publish', resolve('examples/apps/primecount/primecount.wasm'), '--name', 'primecount', '--price', '0', '--json'], 120_000)
    assert.equal(pub.code, 0, pub.stderr)
    app = (JSON.parse(pub.stdout) as { address: string }).address
    // every provider's book holds the app order before the DApp asks (a provider matches with it)
    for (const i of [1, 2, 3]) {
      await pollUntil(`the app order on node-${i}`, async () => await on(i, ['orderbook', 'app', '--app', app, '--json']),
        (r) => r.code === 0 && (JSON.parse(r.stdout) as { orders: unknown[] }).orders.length > 0, 60_000)
    }
  })

  after(async () => {
    if (swarmDir !== '') await runCli(['swarm', 'down', '--dir', swarmDir], 60_000).catch(() => {})
    for (const pid of [...(file?.nodes.map((n) => n.pid) ?? []), file?.chain?.pid ?? 0]) {
      if (pid > 0 && await isAlive(pid)) {
        try { process.kill(pid, 'SIGKILL') } catch {}
      }
    }
    if (dir !== '') await rm(dir, { recursive: true, force: true })
  })

  it('run.ts deploys PrimeTable, funds it, asks; a provider matches, the callback stores 168 primes <= 1000; --tx finds the task and its result', async () => {
    const t0 = Date.now()
    const r = await runCommand(process.execPath, ['--import', 'tsx', resolve('examples/dapp/run.ts'), '--swarm', swarmDir, '--app', app, '--n', '1000', '--timeout', '200', '--json'], 240_000)
    assert.equal(r.code, 0, `run.ts: ${r.stderr}\n${r.stdout}`)
    const out = JSON.parse(r.stdout) as { dapp: string, id: string, submitTx: string, status: string, primeCount: string, callbackData: string, resultCid: string }
    console.info(`      DApp ask to stored result: ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    assert.equal(out.status, 'COMPLETED')
    assert.equal(out.primeCount, '168')
    // abi.encode(1000, 168): what the app wrote as callback-data
    assert.equal(out.callbackData, '0x' + (1000).toString(16).padStart(64, '0') + (168).toString(16).padStart(64, '0'))

    // the DApp's submit transaction created no deal itself: the tasks are found from the request it published
    const show = await on(0, ['task', 'show', '--tx', out.submitTx, '--json'])
    assert.equal(show.code, 0, show.stderr)
    const views = JSON.parse(show.stdout) as TaskStatusView[]
    assert.equal(views.length, 1)
    assert.equal(views[0].taskId, out.id)
    assert.equal(views[0].status, 'COMPLETED')
    assert.deepEqual(views[0].callback, { address: out.dapp, success: true })
    // the CID the contract reads from the hub is the one TaskFinalized names
    assert.ok(views[0].resultCid !== null && views[0].resultCid !== '', 'task show has the results CID')
    assert.equal(out.resultCid, views[0].resultCid)

    const got = await on(0, ['result', 'get', '--tx', out.submitTx, '--json'], 120_000)
    assert.equal(got.code, 0, got.stderr)
    const results = JSON.parse(got.stdout) as Array<{ taskId: string, stdout: string }>
    assert.equal(results.length, 1)
    assert.equal(results[0].taskId, out.id)
    assert.match(results[0].stdout, /^n=1000 count=168$/m)
  })

  it('trust 3 from a contract: providers presign their bids on chain, one matches with the gathered bids; the callback stores 303 primes <= 2000', async () => {
    const r = await runCommand(process.execPath, ['--import', 'tsx', resolve('examples/dapp/run.ts'), '--swarm', swarmDir, '--app', app, '--n', '2000', '--trust', '3', '--timeout', '200', '--json'], 240_000)
    assert.equal(r.code, 0, `run.ts: ${r.stderr}\n${r.stdout}`)
    const out = JSON.parse(r.stdout) as { id: string, submitTx: string, status: string, primeCount: string }
    assert.equal(out.status, 'COMPLETED')
    assert.equal(out.primeCount, '303')
    const show = await on(0, ['task', 'show', '--tx', out.submitTx, '--json'])
    assert.equal(show.code, 0, show.stderr)
    const [view] = JSON.parse(show.stdout) as TaskStatusView[]
    assert.equal(view.trust, 3)
    assert.ok(view.workers.length >= 2, 'at least two workers')
    assert.ok(view.contributions >= 2, 'a consensus of at least two contributions')
  })

  it('task submit --callback, trust 3: the scheduler finalizes with the callback data the consensus covers; the contract gets it once', async () => {
    const chain = file?.chain
    assert.ok(chain != null)
    const provider = new JsonRpcProvider(chain.rpc, undefined, { staticNetwork: true, pollingInterval: 200, cacheTimeout: -1 })
    try {
      const deployer = new NonceManager(HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(ANVIL_MNEMONIC), "m/44'/60'/0'/0/0").connect(provider))
      const c = compileSolidity([fileURLToPath(new URL('../contracts/solidity/CallbackTargets.sol', import.meta.url))]).RecordingCallback
      const deployed = await new ContractFactory(c.abi as never, c.bytecode, deployer).deploy()
      await deployed.waitForDeployment()
      const recorder = deployed as Contract
      const address = await recorder.getAddress()
      const r = await on(0, ['task', 'submit', '--app', app, '--args', '100', '--trust', '3', '--callback', address, '--watch', '--json'], 240_000)
      assert.equal(r.code, 0, r.stderr)
      const out = JSON.parse(r.stdout) as { workers: string[], tasks: Array<{ taskId: string, status: string, resultCid: string | null }> }
      assert.ok(out.workers.length >= 2, 'trust 3: at least two workers')
      assert.equal(out.tasks[0].status, 'COMPLETED')
      // 25 primes <= 100, as abi.encode(n, count): the bytes the app wrote, passed by the scheduler's finalize
      assert.equal(await recorder.lastData(), AbiCoder.defaultAbiCoder().encode(['uint256', 'uint256'], [100n, 25n]))
      assert.equal(await recorder.lastTask(), out.tasks[0].taskId)
      assert.equal(await recorder.lastCaller(), chain.hub)
      assert.equal(await recorder.calls(), 1n)
      // the scheduler's finalize (trust > 1) kept the results CID on chain for the callback task
      assert.ok(out.tasks[0].resultCid !== null && out.tasks[0].resultCid !== '', 'the watch has the results CID')
      assert.equal(await Hub__factory.connect(chain.hub, provider).resultCidOf(out.tasks[0].taskId), out.tasks[0].resultCid)
    } finally {
      provider.destroy()
    }
  })

  it('--tx: an unknown transaction is TX_NOT_FOUND; a TASKID and --tx together, a bad hash or a bad --callback are usage errors', async () => {
    const unknown = await on(0, ['task', 'show', '--tx', '0x' + 'ab'.repeat(32), '--json'])
    assert.notEqual(unknown.code, 0)
    assert.equal(jsonError(unknown).code, 'TX_NOT_FOUND')
    const both = await on(0, ['result', 'get', '0x' + '01'.repeat(32), '--tx', '0x' + 'ab'.repeat(32)])
    assert.equal(both.code, 2, both.stderr)
    const bad = await on(0, ['task', 'show', '--tx', '0x1234'])
    assert.equal(bad.code, 2, bad.stderr)
    // a callback that is not an address never reaches a signed order
    const badCallback = await on(0, ['task', 'submit', '--app', app, '--args', '10', '--callback', 'not-an-address'])
    assert.equal(badCallback.code, 2, badCallback.stderr)
  })
})
