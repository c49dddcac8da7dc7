// A swarm for the execution tests: real IexecNodes (libp2p, Helia, level) in
// this process, a real anvil with the hub deployed by deployLocalSwarmChain,
// and on each node the exec channel, the scheduler service and the worker
// duties, fed by an EventFollower on DealCreated as node.ts's HubEvents does.
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wallet, hexlify, randomBytes } from 'ethers'
import { IexecNode } from '../../node/node.js'
import { initDataDir, loadDataDir } from '../../node/config/index.js'
import {
  createChainClient, deployLocalSwarmChain, startLocalChain, EventFollower, MemoryCursorStore, hubInterface
} from '../../node/chain/index.js'
import type { ChainClient, LocalChain, LocalSwarmChain } from '../../node/chain/index.js'
import { ExecChannel, PeerResolver, createSchedulerService } from '../../node/scheduler/index.js'
import type { SchedulerService, SchedulerOptions } from '../../node/scheduler/index.js'
import { createWorkerDuties } from '../../node/worker/duties.js'
import type { WorkerDuties, WorkerFaults } from '../../node/worker/duties.js'
import type { WorkerDutiesOptions } from '../../node/worker/duties-options.js'
import { WasiExecutor } from '../../node/worker/index.js'
import type { Executor } from '../../node/worker/executor.js'
import {
  addBytes, addFile, catContent, createHubKeyReleaseView, createKeyReleaseHandler, DatasetKey, decryptResultToFolder, encryptDataset,
  fetchDatasetKey, generateContentKey, KEY_RELEASE_PROTOCOL, MemoryKeyStore, MemoryNonceRegistry, unpackArchive
} from '../../node/storage/index.js'
import { hubDomain, hashOrder, signAuthorization, signOrder, emptyDatasetOrder, ZERO_ADDRESS, ZERO_BYTES32, taskId } from '../../protocols/eip712.js'
import type { HubDomain } from '../../protocols/eip712.js'
import { signExecPeer } from '../../protocols/execution.js'
import type { AssignMessage } from '../../protocols/execution.js'
import { TaskStatus } from '../../contracts-abi/index.js'
import { waitFor } from '../helpers/wait.js'
import { RpcProxy } from '../helpers/rpc-proxy.js'
export { waitFor }

export const RLC = 10n ** 9n
const WORDCOUNT = new URL('../../examples/apps/wordcount/wordcount.wasm', import.meta.url)

/** EXEC_DEBUG=1 prints what the services log (to stderr), to diagnose a failing run. */
function debugLog (who: string): (msg: string, context?: Record<string, unknown>) => void {
  return (msg, context) => {
    if (process.env.EXEC_DEBUG !== undefined) process.stderr.write(`${new Date().toISOString()} ${who}: ${msg} ${JSON.stringify(context ?? {})}\n`)
  }
}

export const TEST_SCHEDULER_OPTIONS: Partial<SchedulerOptions> = { tickMs: 100, heartbeatIntervalMs: 300, missedBeats: 3, resendMs: 1_000, watchdogMs: 200 }

/** One node of the swarm and its execution services. */
export interface SwarmNode {
  name: string
  dataDir: string
  node: IexecNode
  client: ChainClient
  channel: ExecChannel
  scheduler: SchedulerService
  worker: WorkerDuties
  executor: WasiExecutor
  /** what the worker runs apps with: the WASI executor, or what `opts.executor` made around it */
  runner: Executor
  follower: EventFollower
  running: boolean
}

export interface DealSpec {
  trust: number
  /** the app's address (`registerApp`); default the wordcount app registered at setup */
  app?: string
  volume?: number
  /** a dataset published with `publishDataset` */
  dataset?: { address: string, owner: number }
  /** indices of the nodes that bid, in this order */
  workers: number[]
  /** worker price per task, nRLC */
  price?: bigint
  params?: string
  /** the request's category; default 0 (XS) */
  category?: number
}

export class ExecSwarm {
  /** added to the schedulers' wall clock: a test moves it with the dev chain's next block time */
  clockOffsetMs = 0
  readonly nodes: SwarmNode[] = []
  anvil!: LocalChain
  chain!: LocalSwarmChain
  domain!: HubDomain
  requester!: ChainClient
  appOwner!: ChainClient
  app!: string
  appCid!: string
  inputCid!: string
  root!: string
  readonly input = 'hello world\nfoo bar baz\n'
  // what node.ts feeds from verified bids and adverts; here every node of the swarm is remembered at start
  private readonly peers = new PeerResolver()
  private readonly peerOf = new Map<string, string>()

  /** options of every node's worker duties (e.g. a short maxRunMs for sandbox probes) */
  workerOptions: Partial<WorkerDutiesOptions> = {}
  /** options of every node's scheduler, over TEST_SCHEDULER_OPTIONS */
  schedulerOptions: Partial<SchedulerOptions> = {}
  /** node i's worker connects to an app's holders through this before fetching it (node.ts dials the owner) */
  reachAppHolders: ((i: number, app: string) => Promise<void>) | undefined
  /** exec messages the nodes' channels refused as offences (node.ts counts them toward the sender's ban) */
  readonly offences: Array<{ node: number, peer: string, code: string }> = []
  /** hub events the nodes' followers do not hand on (a test of what a node does without them) */
  readonly droppedEvents = new Set<string>()
  /** with `proxyRpc`: the proxy the nodes reach anvil through (the requester and app owner go direct) */
  proxy: RpcProxy | undefined
  /** errors the nodes' followers reported, with whether they were fatal */
  readonly followerErrors: Array<{ node: number, code: string, fatal: boolean }> = []

  /** node i's executor around its WASI one (e.g. with the native executor) */
  makeExecutor: ((i: number, wasi: WasiExecutor) => Executor) | undefined
  /** sees node i's chain client before its services are built on it (they bind its sender's send then) */
  onClient: ((i: number, client: ChainClient) => void) | undefined

  static async create (n: number, faults: Record<number, WorkerFaults> = {}, opts: { worker?: Partial<WorkerDutiesOptions>, scheduler?: Partial<SchedulerOptions>, reachAppHolders?: (i: number, app: string) => Promise<void>, proxyRpc?: boolean, wsNodes?: number[], executor?: (i: number, wasi: WasiExecutor) => Executor, client?: (i: number, client: ChainClient) => void } = {}): Promise<ExecSwarm> {
    const s = new ExecSwarm()
    s.onClient = opts.client
    s.useProxy = opts.proxyRpc === true
    s.wsNodes = new Set(opts.wsNodes ?? [])
    s.makeExecutor = opts.executor
    s.workerOptions = opts.worker ?? {}
    s.reachAppHolders = opts.reachAppHolders
    s.schedulerOptions = opts.scheduler ?? {}
    try {
      await s.setup(n, faults)
    } catch (err) {
      await s.close()
      throw err
    }
    return s
  }

  private useProxy = false
  /** with `proxyRpc`: the nodes that reach the proxy over WebSocket (eth_subscribe) instead of HTTP */
  private wsNodes = new Set<number>()

  private async setup (n: number, faults: Record<number, WorkerFaults>): Promise<void> {
    this.root = await mkdtemp(join(tmpdir(), 'iexec-exec-'))
    this.anvil = await startLocalChain({ accounts: 3 })
    if (this.useProxy) this.proxy = await RpcProxy.start(this.anvil.rpcUrl)
    const wallets: Wallet[] = []
    for (let i = 0; i < n; i++) {
      const dataDir = join(this.root, `n${i}`)
      await initDataDir({ dataDir, devUnprotectedKey: true, config: { swarmId: 'exec', advertIntervalMs: 3_600_000 } })
      wallets.push((await loadDataDir(dataDir)).wallet)
    }
    this.chain = await deployLocalSwarmChain({
      rpcUrl: this.anvil.rpcUrl,
      deployerKey: this.anvil.privateKeys[0],
      fund: [
        ...wallets.map((w) => ({ address: w.address, rlc: 100_000n * RLC, eth: 10n ** 19n })),
        { address: new Wallet(this.anvil.privateKeys[1]).address, rlc: 100_000n * RLC }
      ]
    })
    this.domain = hubDomain(this.chain.chainId, this.chain.hub)
    const clientOf = async (privateKey: string): Promise<ChainClient> => await createChainClient({
      rpcUrl: this.anvil.rpcUrl, privateKey, hub: this.chain.hub, rlc: this.chain.rlc, tx: { gasHeadroomPercent: 30 }
    })
    this.requester = await clientOf(this.anvil.privateKeys[1])
    this.appOwner = await clientOf(this.anvil.privateKeys[2])
    await this.requester.sender.send(this.requester.rlc!.approve.populateTransaction(this.chain.hub, 100_000n * RLC))
    await this.requester.sender.send(this.requester.hub!.deposit.populateTransaction(50_000n * RLC))
    for (let i = 0; i < n; i++) await this.startNode(i, faults[i], true)
    const module = new Uint8Array(await readFile(WORDCOUNT))
    // the app and the input live on the first and the last node (two copies: a test may stop one of them);
    // every other node fetches them over bitswap
    for (const holder of [this.nodes[0], this.nodes[n - 1]]) {
      this.appCid = (await addBytes(holder.node.network.helia, module)).cid.toString()
      this.inputCid = (await addBytes(holder.node.network.helia, new TextEncoder().encode(this.input))).cid.toString()
    }
    const checksum = '0x' + createHash('sha256').update(module).digest('hex')
    const reg = await this.appOwner.sender.send(this.appOwner.hub!.registerApp.populateTransaction('wordcount', this.appCid, checksum))
    const log = reg.receipt.logs.map((l) => hubInterface().parseLog(l)).find((p) => p?.name === 'AppRegistered')
    this.app = log?.args.app as string
  }

  /** Creates (or re-creates, same data dir) node i, starts it and its services. */
  async startNode (i: number, faults: WorkerFaults | undefined, fresh = false): Promise<SwarmNode> {
    const dataDir = join(this.root, `n${i}`)
    const node = await IexecNode.create({ dataDir })
    await node.start()
    // a full mesh: schedulers dial workers by peer id
    for (const other of this.nodes) if (other !== undefined && other.running && other.node !== node) await node.network.dial(other.node.multiaddrs()[0])
    const rpcUrl = this.proxy === undefined ? this.anvil.rpcUrl : this.wsNodes.has(i) ? this.proxy.wsUrl : this.proxy.url
    const client = await createChainClient({ rpcUrl, privateKey: node.wallet.privateKey, hub: this.chain.hub, rlc: this.chain.rlc, tx: { gasHeadroomPercent: 30 } })
    this.onClient?.(i, client)
    if (fresh) {
      await client.sender.send(client.rlc!.approve.populateTransaction(this.chain.hub, 100_000n * RLC))
      await client.sender.send(client.hub!.deposit.populateTransaction(50_000n * RLC))
      await client.sender.send(client.hub!.stake.populateTransaction(10_000n * RLC))
    }
    this.peerOf.set(node.address.toLowerCase(), node.peerId)
    this.peers.remember(node.address, node.peerId)
    // what node.ts counts toward a peer's ban (the market's REJECT tracker), kept here for the tests to read
    const channel = new ExecChannel(node.network, {}, (peer, code) => { this.offences.push({ node: i, peer, code }) })
    const scheduler = createSchedulerService({
      channel, db: node.db, chain: client, domain: this.domain, wallet: node.wallet,
      resolvePeer: async (a) => await this.peers.resolve(a),
      workerCapacity: async (a) => this.peers.capacity(a),
      // the market knows the requester's key from its signed request; here the test's requester is the only one
      resultEncryptionKey: async (deal) => deal.requester.toLowerCase() === this.requesterWallet().address.toLowerCase() ? this.requesterWallet().signingKey.compressedPublicKey : undefined,
      options: { ...TEST_SCHEDULER_OPTIONS, ...this.schedulerOptions },
      // one second apart: the first reelection is mined long before the next node's turn
      watchdogOffsetMs: i * 1_000,
      // the nodes' wall clock, which a test may move ahead (clockOffsetMs) as the chain's
      clock: () => Date.now() + this.clockOffsetMs,
      log: debugLog(`n${i} scheduler`)
    })
    const executor = new WasiExecutor()
    const runner = this.makeExecutor?.(i, executor) ?? executor
    const worker = createWorkerDuties({
      channel, helia: node.network.helia, db: node.db, chain: client, domain: this.domain, executor: runner,
      workDir: join(dataDir, 'work'), fromBlock: this.chain.blockNumber,
      datasetKey: async (req) => {
        const owner = (await client.hub!.datasetOf(req.dataset)).owner
        const ownerPeer = this.peerOf.get(owner.toLowerCase())
        if (ownerPeer === undefined) throw new Error(`no peer for dataset owner ${owner}`)
        return await fetchDatasetKey(async (protocol, o) => await node.network.dialProtocol(ownerPeer, protocol, o), node.wallet, this.domain, req)
      }, options: { heartbeatIntervalMs: 300, tickMs: 100, ...this.workerOptions }, log: debugLog(`n${i} worker`), ...(faults !== undefined ? { faults } : {}),
      ...(this.reachAppHolders !== undefined ? { reachAppHolders: async (app: string) => await this.reachAppHolders?.(i, app) } : {})
    })
    const follower = new EventFollower(client, {
      address: this.chain.hub, iface: hubInterface(),
      // the events that move a deal or a worker's task, as the node's HubEvents hands them on
      topics: [['DealCreated', 'SchedulerReelected', 'TaskFinalized', 'TaskClaimed', 'TaskContributed', 'TaskRevealed'].map((n) => hubInterface().getEvent(n)!.topicHash)],
      cursorStore: new MemoryCursorStore(), fromBlock: this.chain.blockNumber, pollIntervalMs: 50,
      handler: async (e) => { if (!this.droppedEvents.has(e.name ?? '')) await scheduler.onChainEvent(e) },
      // a reorg's removed events, as node.ts hands them on
      onRemoved: async (e) => {
        await scheduler.onChainEventRemoved(e)
        await worker.onChainEventRemoved(e)
      },
      onError: (err, fatal) => { this.followerErrors.push({ node: i, code: err.code, fatal }) }
    })
    await channel.start()
    await scheduler.start()
    await worker.start()
    await follower.start()
    const sn: SwarmNode = { name: `n${i}`, dataDir, node, client, channel, scheduler, worker, executor, runner, follower, running: true }
    this.nodes[i] = sn
    return sn
  }

  /** Stops node i and everything on it (a crash as far as the others can tell). */
  async stopNode (i: number): Promise<void> {
    const sn = this.nodes[i]
    if (sn === undefined || !sn.running) return
    sn.running = false
    await sn.follower.stop()
    await sn.scheduler.stop()
    await sn.worker.stop()
    await sn.channel.stop()
    await sn.runner.close()
    await sn.executor.close()
    await sn.node.stop()
    await sn.client.close()
  }

  async close (): Promise<void> {
    for (let i = 0; i < this.nodes.length; i++) await this.stopNode(i).catch(() => {})
    await this.requester?.close()
    await this.appOwner?.close()
    await this.proxy?.close()
    await this.anvil?.stop()
    if (this.root !== undefined) await rm(this.root, { recursive: true, force: true })
  }

  /** Signs the orders and calls matchOrders as the requester; returns the deal id and its scheduler. */
  async makeDeal (spec: DealSpec): Promise<{ dealid: string, scheduler: string, workerPrice: bigint }> {
    const salt = (): string => hexlify(randomBytes(32))
    const appOwnerWallet = new Wallet(this.anvil.privateKeys[2])
    const requesterWallet = new Wallet(this.anvil.privateKeys[1])
    const app = spec.app ?? this.app
    const appOrder = await signOrder(appOwnerWallet, this.domain, 'AppOrder', {
      app, appprice: 2n * RLC, volume: 1000n, tag: ZERO_BYTES32,
      datasetrestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, salt: salt()
    })
    const datasetOrder = spec.dataset === undefined
      ? emptyDatasetOrder()
      : await signOrder(this.nodes[spec.dataset.owner].node.wallet, this.domain, 'DatasetOrder', {
        dataset: spec.dataset.address, datasetprice: 3n * RLC, volume: 1000n, tag: ZERO_BYTES32,
        apprestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, salt: salt()
      })
    const request = await signOrder(requesterWallet, this.domain, 'RequestOrder', {
      app, appmaxprice: 100n * RLC, dataset: spec.dataset?.address ?? ZERO_ADDRESS, datasetmaxprice: spec.dataset === undefined ? 0n : 100n * RLC,
      workerpool: ZERO_ADDRESS, workerpoolmaxprice: 100n * RLC, requester: requesterWallet.address, volume: BigInt(spec.volume ?? 1),
      tag: ZERO_BYTES32, category: BigInt(spec.category ?? 0), trust: BigInt(spec.trust), beneficiary: requesterWallet.address,
      callback: ZERO_ADDRESS, params: spec.params ?? JSON.stringify({ iexec_input_files: [this.inputCid] }), salt: salt()
    })
    const requestHash = hashOrder(this.domain, 'RequestOrder', request)
    const bids = await Promise.all(spec.workers.map(async (i) => await signOrder(this.nodes[i].node.wallet, this.domain, 'Bid', {
      requestHash, worker: this.nodes[i].node.address, price: spec.price ?? 10n * RLC, volume: 1000n, salt: salt()
    })))
    const hub = this.requester.hub!
    const tx = await this.requester.sender.send(hub.matchOrders.populateTransaction(appOrder, datasetOrder, request, bids))
    for (const l of tx.receipt.logs) {
      const p = hubInterface().parseLog(l)
      // the hub draws the scheduler from the hash of the deal's block: readable at the pending tag
      if (p?.name === 'DealCreated') return { dealid: p.args.dealid as string, scheduler: await hub.schedulerOf(p.args.dealid as string, { blockTag: 'pending' }), workerPrice: p.args.info.workerPrice as bigint }
    }
    throw new Error('no DealCreated')
  }

  /** Node i advertises `cpus` (as its resource advert would tell schedulers). */
  advertiseCapacity (i: number, cpus: number): void {
    const n = this.nodes[i].node
    this.peers.remember(n.address, n.peerId, cpus)
  }

  /**
   * Adds an example app's module (examples/apps/NAME/NAME.wasm) to the first
   * node's Helia, registers it on the hub as the app owner; returns its address.
   */
  async registerApp (name: string): Promise<string> {
    return await this.registerModule(name, new Uint8Array(await readFile(new URL(`../../examples/apps/${name}/${name}.wasm`, import.meta.url))))
  }

  /** Adds an app's bytes (a module, a binary, an image tar) to the first node's Helia and registers it; its address. */
  async registerModule (name: string, module: Uint8Array): Promise<string> {
    const cid = (await addBytes(this.nodes[0].node.network.helia, module)).cid.toString()
    const checksum = '0x' + createHash('sha256').update(module).digest('hex')
    const reg = await this.appOwner.sender.send(this.appOwner.hub!.registerApp.populateTransaction(name, cid, checksum))
    const log = reg.receipt.logs.map((l) => hubInterface().parseLog(l)).find((p) => p?.name === 'AppRegistered')
    return log?.args.app as string
  }

  /**
   * Plays the scheduler by hand: node `from` (the deal's scheduler) signs and sends an assignment to node `to`
   * (its ExecPeer proof included); `change` rewrites the message before it goes (what an evil scheduler would send).
   */
  async assign (from: number, to: number, dealid: string, idx: number, trust: number, params?: string, change?: (m: AssignMessage) => AssignMessage): Promise<void> {
    const taskid = taskId(dealid, idx)
    const authorization = await signAuthorization(this.nodes[from].node.wallet, this.domain, { worker: this.nodes[to].node.address, taskid })
    const asset = await this.requester.hub!.appOf(this.app)
    const deal = await this.requester.hub!.dealOf(dealid)
    const m: AssignMessage = {
      type: 'assign', proof: await this.proofOf(from), dealid, tasks: [{ idx, authorization }], trust, app: this.app, appContent: { cid: asset.cid, checksum: asset.checksum },
      params: params ?? JSON.stringify({ iexec_input_files: [this.inputCid] }), deadline: Number(deal.startTime) + 7 * 60
    }
    await this.nodes[from].channel.send(this.nodes[to].node.peerId, change === undefined ? m : change(m))
  }

  /** Node i's ExecPeer proof: its wallet's signature of its own peer id (what its scheduler sends). */
  async proofOf (i: number): Promise<string> {
    return await signExecPeer(this.nodes[i].node.wallet, this.domain, this.nodes[i].node.peerId)
  }

  /**
   * Node `owner` encrypts `text` as a dataset, adds it to its Helia, registers it on the hub, keeps the key
   * and serves key release (the owner's checks run against the hub).
   */
  async publishDataset (owner: number, text: string): Promise<string> {
    const sn = this.nodes[owner]
    const key = generateContentKey()
    const plain = join(this.root, `dataset-${owner}.txt`)
    await writeFile(plain, text)
    const { checksum } = await encryptDataset(plain, `${plain}.enc`, key)
    const { cid } = await addFile(sn.node.network.helia, `${plain}.enc`)
    const tx = await sn.client.sender.send(sn.client.hub!.registerDataset.populateTransaction('corpus', cid.toString(), checksum))
    const address = tx.receipt.logs.map((l) => hubInterface().parseLog(l)).find((p) => p?.name === 'DatasetRegistered')?.args.dataset as string
    const keyStore = new MemoryKeyStore()
    await keyStore.put(address, new DatasetKey(key))
    await sn.node.network.handle(KEY_RELEASE_PROTOCOL, createKeyReleaseHandler({
      domain: this.domain, now: Date.now, seenNonces: new MemoryNonceRegistry(), keyStore, datasetOrders: async () => [{ apprestrict: ZERO_ADDRESS, requesterrestrict: ZERO_ADDRESS, workerpoolrestrict: ZERO_ADDRESS, tag: ZERO_BYTES32 }],
      chain: createHubKeyReleaseView(sn.client.hub!, { fromBlock: this.chain.blockNumber })
    }))
    return address
  }

  /** RLC held by the hub against what it accounts for (every account that ever held RLC here, and the kitty). */
  async conservation (): Promise<{ held: bigint, accounted: bigint }> {
    const hub = this.requester.hub!
    let accounted = await hub.kitty()
    for (const a of [...this.nodes.map((n) => n.node.address), this.requester.address, this.appOwner.address]) {
      const [balance, frozen] = await hub.accountOf(a)
      const [stake] = await hub.stakeOf(a)
      accounted += balance + frozen + stake
    }
    return { held: await this.requester.rlc!.balanceOf(this.chain.hub), accounted }
  }

  requesterWallet (): Wallet {
    return new Wallet(this.anvil.privateKeys[1])
  }

  /** Fetches an encrypted result, decrypts it with the requester's key, unpacks it and reads result.txt. */
  async decryptedResultText (cid: string, taskid: string, via = 0): Promise<string> {
    const dest = await mkdtemp(join(this.root, 'result-'))
    await decryptResultToFolder(catContent(this.nodes[via].node.network.helia, cid, { timeoutMs: 20_000 }), this.requesterWallet().signingKey, dest, { taskid })
    return await readFile(join(dest, 'result.txt'), 'utf8')
  }

  nodeIndexOf (address: string): number {
    return this.nodes.findIndex((n) => n.node.address.toLowerCase() === address.toLowerCase())
  }

  async taskStatus (dealid: string, idx: number): Promise<number> {
    return Number(await this.requester.hub!.taskStatus(dealid, idx))
  }

  async waitCompleted (dealid: string, idx: number, timeoutMs = 60_000): Promise<void> {
    await waitFor(async () => (await this.taskStatus(dealid, idx)) === TaskStatus.COMPLETED, timeoutMs, `task ${idx} of ${dealid} completed`, 100)
  }

  /**
   * Waits until node `node`'s worker records each of the tasks `idxs` in a
   * closed state ('done' or 'failed') and answers the records. The chain
   * says a task is done first; the worker learns it from its receipt
   * (polled) a moment later.
   */
  async workerClosed (node: number, dealid: string, idxs: number[], timeoutMs = 10_000): Promise<Array<Awaited<ReturnType<WorkerDuties['task']>>>> {
    const read = async (): Promise<Array<Awaited<ReturnType<WorkerDuties['task']>>>> => await Promise.all(idxs.map(async (idx) => await this.nodes[node].worker.task(taskId(dealid, idx))))
    await waitFor(async () => (await read()).every((r) => r?.state === 'done' || r?.state === 'failed'), timeoutMs, `node ${node}'s worker records tasks ${idxs.join(', ')} closed`, 50)
    return await read()
  }

  /** The results CID of a finalized task, from its TaskFinalized event. */
  async resultsCid (dealid: string, idx: number): Promise<string> {
    const hub = this.requester.hub!
    const logs = await hub.queryFilter(hub.filters.TaskFinalized(taskId(dealid, idx)), this.chain.blockNumber)
    if (logs.length !== 1) throw new Error(`expected one TaskFinalized, got ${logs.length}`)
    return logs[0].args.resultsCid
  }

  /** Fetches a result archive through node `via`'s Helia, unpacks it and reads `file` (result.txt). */
  async resultText (cid: string, via = 0, file = 'result.txt'): Promise<string> {
    const dest = await mkdtemp(join(this.root, 'result-'))
    await unpackArchive(catContent(this.nodes[via].node.network.helia, cid, { timeoutMs: 20_000 }), dest)
    return await readFile(join(dest, file), 'utf8')
  }

  expectedOutput (): string {
    return `${this.inputCid} lines=2 words=5 bytes=${new TextEncoder().encode(this.input).byteLength}\n`
  }

  async increaseTime (seconds: number): Promise<void> {
    await this.requester.provider.send('evm_increaseTime', [seconds])
    await this.requester.provider.send('evm_mine', [])
  }
}
