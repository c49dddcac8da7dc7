import { Command, CommanderError } from 'commander'
import { CliError } from './errors.js'
import { CLI_DEFAULTS } from './options.js'
import { describeError, printError, processIo, type CliIo } from './output.js'
import { packageVersion } from '../common/version.js'
import { registerWalletCommands } from './wallet-program.js'
import { registerOrderCommands } from './order-program.js'
import { registerOperatorCommands } from './operator-program.js'
// types only: the command modules load lazily, so `--help` and client commands start fast
import type { InitCommandOptions } from './init-command.js'
import type { StartCommandOptions } from './start-command.js'
import type { ClientCommandOptions } from './client-commands.js'
import type { QuickstartOptions, SwarmDirOptions, SwarmUpCommandOptions } from './swarm-commands.js'
import type { AppRegisterCommandOptions, OrderbookCommandOptions, TaskSubmitCommandOptions } from './market-commands.js'
import type { TaskShowCommandOptions } from './task-commands.js'
import type { ContractsDeployOptions, SwarmFundOptions, SwarmKeyOptions } from './chain-commands.js'

// Commander maps its own failures to codes; these are usage errors (exit 2).
const COMMANDER_CODES: Record<string, string> = {
  'commander.unknownCommand': 'CLI_UNKNOWN_COMMAND',
  'commander.unknownOption': 'CLI_UNKNOWN_OPTION',
  'commander.missingArgument': 'CLI_MISSING_ARGUMENT',
  'commander.optionMissingArgument': 'CLI_MISSING_ARGUMENT',
  'commander.missingMandatoryOptionValue': 'CLI_MISSING_ARGUMENT',
  'commander.invalidArgument': 'CLI_BAD_OPTION',
  'commander.excessArguments': 'CLI_USAGE',
  'commander.conflictingOption': 'CLI_USAGE'
}

function addClientOptions (cmd: Command): Command {
  return cmd
    .option('--api <url>', 'API URL of the node (default: the url in <data-dir>/api.json)')
    .option('--token-file <file>', 'API token file (default: <data-dir>/api-token)')
    .option('--data-dir <dir>', 'data dir of the node to talk to (default: ~/.iexec-p2p or $IEXEC_P2P_DATA_DIR)')
    .option('--json', 'print JSON for scripts')
}

/**
 * Builds the command tree. `exitCode` receives the code of a command that
 * decides its own (start).
 */
export function buildProgram (io: CliIo, setExitCode: (code: number) => void): Command {
  const program = new Command()
  program
    .name('iexec-p2p')
    .description('A peer-to-peer iExec node: sell or buy computing over libp2p, settle on Ethereum.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help for a command')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => { io.out(s) },
      writeErr: (s) => { io.err(s) },
      // runCli prints commander's errors itself, as one line with a code
      outputError: () => {}
    })

  program.command('init')
    .description('create a data dir: libp2p key, Ethereum wallet, config and API token (idempotent)')
    .option('--data-dir <dir>', 'data dir to create (default: ~/.iexec-p2p or $IEXEC_P2P_DATA_DIR)')
    .option('--password-file <file>', 'file whose first line encrypts the wallet (else $IEXEC_P2P_PASSWORD)')
    .option('--dev-unprotected-key', 'store the wallet key unencrypted (dev swarms only)')
    .option('--rpc <url>', 'JSON-RPC URL of the chain (http or https); written to config.json')
    .option('--hub <address>', 'address of the iExec hub on that chain (see `contracts deploy`)')
    .option('--chain-id <n>', 'chain id the RPC must report (default: what it reports)')
    .option('--from-block <n>', 'block the hub was deployed in: event followers start there (default 0)')
    .option('--offline', 'with the chain flags: do not ask the RPC (chain id and hub code unchecked)')
    .option('--chain <name>', 'a chain profile instead of --rpc/--hub/--chain-id/--from-block: `local` (the `swarm up` chain) or a name of the chains file')
    .option('--chains-file <file>', 'chains file of --chain (default: $IEXEC_P2P_CHAINS_FILE or ~/.iexec-p2p/chains.json)')
    .option('--json', 'print JSON for scripts')
    .action(async (opts: InitCommandOptions) => {
      const { initCommand } = await import('./init-command.js')
      await initCommand(io, opts)
    })

  program.command('start')
    .description('run a node in the foreground until Ctrl-C, SIGTERM or `iexec-p2p shutdown`')
    .option('--requester', 'run as a requester (buys computing; publishes no resource advert)')
    .option('--listen <multiaddr...>', 'libp2p listen addresses (default from config: /ip4/127.0.0.1/tcp/0)')
    .option('--bootstrap <multiaddr...>', 'peers to dial at start, each ending in /p2p/<peerId> (or a /dnsaddr/<name>); default: config, else the --chain profile\'s')
    .option('--announce <multiaddr...>', 'addresses to announce besides the listen ones, e.g. the port your router forwards: /ip4/<public ip>/tcp/<port>')
    .option('--mdns', 'find and dial peers of the same swarm on the LAN (mDNS)')
    .option('--relay-server <mode>', 'serve as a circuit relay for NATed peers: on, off or auto (auto: when listening on a public IP)')
    .option('--relay-client <mode>', 'reserve a slot on a relay so NATed peers can be reached: on, off or auto (auto: when only LAN addresses)')
    .option('--upnp', 'map the listen port on the router with UPnP/NAT-PMP')
    .option('--swarm-key <file>', 'pre-shared key file of a private swarm (libp2p pnet format)')
    .option('--api-port <port>', 'local API port on 127.0.0.1; 0 = any free port (default from config)')
    .option('--cpus <n>', 'CPUs offered to the network')
    .option('--memory <mib>', 'the most memory one run may take, MiB (categories asking more get no bid)')
    .option('--disk <mib>', 'the most output one run may write, MiB (categories asking more get no bid)')
    .option('--metrics-listen <host:port>', 'also serve GET /metrics without the API token on this address (e.g. 127.0.0.1:9464)')
    .option('--price <nrlc>', 'lowest price per task, in nRLC')
    .option('--category <id>', 'iExec category served (resources and time bound)')
    .option('--tag <tag...>', 'provider tags such as region:eu energy:green')
    .option('--data-dir <dir>', 'data dir (default: ~/.iexec-p2p or $IEXEC_P2P_DATA_DIR)')
    .option('--password-file <file>', 'file whose first line unlocks the wallet (else $IEXEC_P2P_PASSWORD)')
    .option('--init', 'initialise the data dir first if needed (dev convenience)')
    .option('--dev-unprotected-key', 'with --init: store the wallet key unencrypted (dev only)')
    .option('--rpc <url>', 'JSON-RPC URL of the chain, for this run (default: config.json chain.rpc)')
    .option('--hub <address>', 'hub address, for this run (default: config.json chain.hub)')
    .option('--chain-id <n>', 'chain id the RPC must report, for this run (default: config.json chain.chainId)')
    .option('--from-block <n>', 'first block of the hub\'s events, for this run (default: config.json chain.fromBlock, else 0)')
    .option('--chain <name>', 'a chain profile for this run, instead of the four chain flags (see `init --chain`)')
    .option('--chains-file <file>', 'chains file of --chain (default: $IEXEC_P2P_CHAINS_FILE or ~/.iexec-p2p/chains.json)')
    .option('--resync-events', 'forget the stored hub event cursor and read the hub\'s events again from its first block (a damaged cursor)')
    .option('--json', 'print one JSON line when the node is ready')
    .action(async (opts: StartCommandOptions) => {
      const { startCommand } = await import('./start-command.js')
      setExitCode(await startCommand(io, opts))
    })

  addClientOptions(program.command('status').description('show the running node: peer id, address, addresses, connections'))
    .action(async (opts: ClientCommandOptions) => {
      const { statusCommand } = await import('./client-commands.js')
      await statusCommand(io, opts)
    })

  addClientOptions(program.command('peers').description('list the peers the node is connected to, with ping latency'))
    .action(async (opts: ClientCommandOptions) => {
      const { peersCommand } = await import('./client-commands.js')
      await peersCommand(io, opts)
    })

  addClientOptions(program.command('resources').description('list providers found through the DHT')
    .option('--category <id>', 'iExec category to look up (default: the node\'s own)')
    .option('--tag <tag...>', 'only providers with every one of these tags'))
    .action(async (opts: ClientCommandOptions & { category?: string, tag?: string[] }) => {
      const { resourcesCommand } = await import('./client-commands.js')
      const { parseIntOption, parseTagOption } = await import('./parse.js')
      const query = {
        ...(opts.category !== undefined ? { category: parseIntOption('--category', opts.category, 0, 1_000_000) } : {}),
        ...(opts.tag !== undefined ? { tags: opts.tag.map(parseTagOption) } : {})
      }
      await resourcesCommand(io, { ...opts, query })
    })

  addClientOptions(program.command('shutdown').description('ask the running node to stop'))
    .action(async (opts: ClientCommandOptions) => {
      const { shutdownCommand } = await import('./client-commands.js')
      await shutdownCommand(io, opts)
    })

  const swarm = program.command('swarm')
    .description('a private swarm of node processes on this machine')
  swarm.command('up')
    .description('start a local chain (anvil + hub, funded wallets, provider stakes) and N nodes in the background, with a fresh swarm key')
    .option('--nodes <n>', `number of nodes, node 0 being the requester when n >= 2 (default: ${CLI_DEFAULTS.swarmNodes})`)
    .option('--dir <dir>', 'swarm dir: swarm.key, swarm.json, one data dir per node (default: <data-dir>/swarm)')
    .option('--timeout <seconds>', `give up when the nodes are not ready in this time (default: ${CLI_DEFAULTS.swarmReadyTimeoutMs / 1000})`)
    .option('--no-chain', 'no local chain: no anvil, no hub, no funding (the market commands then answer CHAIN_NOT_CONFIGURED)')
    .option('--block-time <seconds>', 'mine a block every N seconds, as a real chain does (default: a block per transaction)')
    .option('--json', 'print the chain and the nodes as JSON')
    .action(async (opts: SwarmUpCommandOptions) => {
      const { swarmUpCommand } = await import('./swarm-commands.js')
      await swarmUpCommand(io, opts)
    })
  swarm.command('status')
    .description('show each node of the swarm: running or not, connections')
    .option('--dir <dir>', 'swarm dir (default: <data-dir>/swarm)')
    .option('--json', 'print JSON for scripts')
    .action(async (opts: SwarmDirOptions) => {
      const { swarmStatusCommand } = await import('./swarm-commands.js')
      await swarmStatusCommand(io, opts)
    })
  swarm.command('down')
    .description('stop every node of the swarm, then its anvil (SIGTERM, then SIGKILL), and remove swarm.json')
    .option('--dir <dir>', 'swarm dir (default: <data-dir>/swarm)')
    .option('--json', 'print JSON for scripts')
    .action(async (opts: SwarmDirOptions) => {
      const { swarmDownCommand } = await import('./swarm-commands.js')
      await swarmDownCommand(io, opts)
    })

  swarm.command('key')
    .description('make a fresh pre-shared swarm key (libp2p pnet format) for nodes started by hand with --swarm-key')
    .option('--out <file>', 'write it to this file, mode 0600, never overwriting (default: print it)')
    .option('--json', 'print JSON for scripts')
    .action(async (opts: SwarmKeyOptions) => {
      const { swarmKeyCommand } = await import('./chain-commands.js')
      await swarmKeyCommand(io, opts)
    })
  swarm.command('fund <address>')
    .description('send ETH and RLC from the local swarm chain\'s deployer to an address (a node started by hand)')
    .option('--dir <dir>', 'swarm dir (default: <data-dir>/swarm)')
    .option('--rlc <amount>', 'RLC to mint: nRLC (5, 5nRLC) or RLC (1.5RLC) (default: 1000RLC)')
    .option('--eth <amount>', 'ETH to send for gas; 0 sends none (default: 10)')
    .option('--json', 'print JSON for scripts')
    .action(async (address: string, opts: SwarmFundOptions) => {
      const { swarmFundCommand } = await import('./chain-commands.js')
      await swarmFundCommand(io, address, opts)
    })

  const contracts = program.command('contracts').description('the iExec contracts on a chain')
  contracts.command('deploy')
    .description('deploy the hub (and an RLC token unless --rlc) on a chain; prints the `init` line for its nodes')
    .option('--rpc <url>', 'JSON-RPC URL of the chain (required)')
    .option('--key-file <file>', 'file whose first line is the deployer\'s private key, 0x and 64 hex digits (required)')
    .option('--rlc <address>', 'use this RLC token instead of deploying one')
    .option('--local', 'the dev variant: mintable RLC (the deployer mints), 60 s unstake cooldown')
    .option('--profile <name>', 'write a chain profile of this name (nodes then join with `init --chain NAME`); never replaces one')
    .option('--chains-file <file>', 'chains file of --profile (default: $IEXEC_P2P_CHAINS_FILE or ~/.iexec-p2p/chains.json)')
    .option('--json', 'print JSON for scripts')
    .action(async (opts: ContractsDeployOptions) => {
      const { contractsDeployCommand } = await import('./chain-commands.js')
      await contractsDeployCommand(io, opts)
    })

  program.command('quickstart')
    .description('the whole flow on this machine: a local chain and a 4-node swarm; two providers publish the example apps, a third an encrypted dataset; the requester runs wordcount over it at trust 3 and primes at trust 1; prints the results and what each party earned')
    .option('--once', 'stop the swarm at the end')
    .option('--no-chain', 'no local chain: only the network part (peers and resources)')
    .option('--nodes <n>', `number of nodes: one requester, the others providers (default: ${CLI_DEFAULTS.quickstartNodes})`)
    .option('--dir <dir>', 'swarm dir (default: <data-dir>/swarm)')
    .option('--json', 'print JSON for scripts')
    .action(async (opts: QuickstartOptions) => {
      const { quickstartCommand } = await import('./swarm-commands.js')
      await quickstartCommand(io, opts)
    })

  addClientOptions(program.command('orderbook')
    .description('list the live orders of the node\'s orderbook')
    .argument('[type]', 'app, dataset, request or bid (default: all)')
    .option('--app <address>', 'only orders for this app, or that it may use (dataset orders restricted to it, or to no app)')
    .option('--dataset <address>', 'only orders for this dataset, or that it may use (app orders restricted to it, or to no dataset)')
    .option('--category <id>', 'only orders of this category')
    .option('--requester <address>', 'only orders of this requester, or that it may use (restricted to it, or to nobody)')
    .option('--strict', 'with --app/--dataset/--requester: leave out the orders restricted to nobody')
    .option('--tag <tag...>', 'only orders whose tag has every one of these (named tags: region:eu, gpu, ...)')
    .option('--watch', 'then print each order that comes (+) or goes (-), as the node\'s events tell (until Ctrl-C or --timeout)')
    .option('--timeout <seconds>', 'with --watch: stop after this long'))
    .action(async (type: string | undefined, opts: OrderbookCommandOptions & { watch?: boolean, timeout?: string }) => {
      if (opts.watch === true || opts.timeout !== undefined) {
        const { orderbookWatchCommand } = await import('./watch-commands.js')
        await orderbookWatchCommand(io, type, opts)
        return
      }
      const { orderbookCommand } = await import('./market-commands.js')
      await orderbookCommand(io, type, opts)
    })

  const order = program.command('order').description('the node\'s own orders')
  addClientOptions(order.command('show <orderHash>').description('one live order of the node\'s orderbook: its fields, restrictions, tag, and how much of it the hub counts consumed'))
    .action(async (orderHash: string, opts: ClientCommandOptions) => {
      const { orderShowCommand } = await import('./market-commands.js')
      await orderShowCommand(io, orderHash, opts)
    })
  addClientOptions(order.command('cancel')
    .description('cancel one of the node\'s orders on chain')
    .argument('<hash>', 'order hash (0x and 64 hex digits)'))
    .action(async (hash: string, opts: ClientCommandOptions) => {
      const { orderCancelCommand } = await import('./market-commands.js')
      await orderCancelCommand(io, hash, opts)
    })
  registerOrderCommands(io, order, addClientOptions)

  const wallet = program.command('wallet').description('the node\'s Ethereum wallet')
  addClientOptions(wallet.command('show').description('ETH, RLC, hub balance, frozen, stake'))
    .action(async (opts: ClientCommandOptions) => {
      const { walletShowCommand } = await import('./market-commands.js')
      await walletShowCommand(io, opts)
    })

  const account = program.command('account').description('the node\'s account in the hub (escrow)')
  for (const action of ['deposit', 'withdraw'] as const) {
    addClientOptions(account.command(action)
      .description(action === 'deposit' ? 'move RLC from the wallet into the hub' : 'move free RLC from the hub back to the wallet')
      .argument('<amount>', 'nRLC (5, 5nRLC) or RLC with up to 9 decimals (1.5RLC)'))
      .action(async (amount: string, opts: ClientCommandOptions) => {
        const { accountCommand } = await import('./market-commands.js')
        await accountCommand(io, action, amount, opts)
      })
  }

  const stake = addClientOptions(program.command('stake')
    .description('move RLC from the hub balance into the stake (providers: needed to be drawn and to bid); `stake withdraw` takes it out')
    .argument('<amount>', 'nRLC (5, 5nRLC) or RLC with up to 9 decimals (1.5RLC)'))
    .action(async (amount: string, opts: ClientCommandOptions) => {
      const { stakeCommand } = await import('./market-commands.js')
      await stakeCommand(io, amount, opts)
    })
  // wallet create/import/export/send-*, account show, stake withdraw/unstake (issue 24)
  registerWalletCommands(io, { wallet, account, stake }, addClientOptions)

  const deal = program.command('deal').description('deals on chain')
  addClientOptions(deal.command('show')
    .description('a deal: scheduler, workers, tasks')
    .argument('<dealId>', 'deal id (0x and 64 hex digits)')
    .option('--watch', 'follow the deal until every task is COMPLETED or FAILED (progress on stderr)')
    .option('--timeout <seconds>', 'with --watch: give up after this long'))
    .action(async (dealId: string, opts: ClientCommandOptions & { watch?: boolean, timeout?: string }) => {
      if (opts.watch === true || opts.timeout !== undefined) {
        const { dealWatchCommand } = await import('./watch-commands.js')
        await dealWatchCommand(io, dealId, opts)
        return
      }
      const { dealShowCommand } = await import('./market-commands.js')
      await dealShowCommand(io, dealId, opts)
    })

  addClientOptions(program.command('explorer')
    .description('print (and open, when a desktop is there) a one-time link that logs a browser in to the node\'s explorer')
    .option('--no-open', 'print the link only'))
    .action(async (opts: ClientCommandOptions & { open?: boolean }) => {
      const { explorerCommand } = await import('./watch-commands.js')
      await explorerCommand(io, opts)
    })

  const task = program.command('task').description('ask the swarm for work (requester nodes)')
  addClientOptions(task.command('submit')
    .description('sign and gossip a request order, collect bids, match the cheapest on chain; prints the deal')
    .option('--app <address|name>', 'the app to run (required)')
    .option('--dataset <address>', 'a dataset the app reads')
    .option('--args <args>', 'command-line arguments of the app')
    .option('--input <cid...>', 'input files, by CID')
    .option('--args-file <file>', 'a parameter sweep: one line of arguments per task (split as --args); the volume is the number of lines')
    .option('--input-files-file <file>', 'a parameter sweep: one line per task of its own input CIDs (space-separated, after --input)')
    .option('--category <id>', 'iExec category')
    .option('--trust <n>', 'trust level: how many agreeing workers the consensus needs')
    .option('--volume <n>', 'number of tasks')
    .option('--max-price <amount>', 'most you pay a provider per task (nRLC, or 1.5RLC)')
    .option('--tag <tag...>', 'tags every provider must have, such as region:eu')
    .option('--bidding-window <ms>', 'how long to collect bids')
    .option('--min-score <n>', 'count only bids of workers with at least this score on the hub (consensuses won)')
    .option('--beneficiary <address>', 'who the result is for, recorded in the request and the deal (default: this node)')
    .option('--callback <address>', 'a contract the hub calls at finalize with receiveResult(taskid, callback-data) (EIP-1154); the app writes callback-data in computed.json')
    .option('--encrypt-result', 'encrypt the result to this node\'s wallet key: only this node can read it (result get decrypts it)')
    .option('--watch', 'follow the tasks to their end (progress on stderr), then fetch, check and print their results'))
    .action(async (opts: TaskSubmitCommandOptions) => {
      const { taskSubmitCommand } = await import('./market-commands.js')
      await taskSubmitCommand(io, opts)
    })

  addClientOptions(task.command('logs <taskId>')
    .description('why a task fails: each worker\'s failure code, the app\'s exit code and the tail of its stderr (decrypted when sealed to this node)'))
    .action(async (taskId: string, opts: ClientCommandOptions) => {
      const { taskLogsCommand } = await import('./task-commands.js')
      await taskLogsCommand(io, taskId, opts)
    })
  addClientOptions(task.command('show [taskId]')
    .description('a task\'s state from the chain: phase, contributions, reveals, result, and its timeline')
    .option('--tx <txHash>', 'instead of a task id: every task this transaction created (a matchOrders, or a DApp\'s submit once matched), from its receipt')
    .option('--watch', 'follow the task until it is finalized or failed (progress on stderr)')
    .option('--timeout <seconds>', 'with --watch: give up after this long (default: the task\'s final deadline + 60 s)'))
    .action(async (taskId: string | undefined, opts: TaskShowCommandOptions) => {
      const { taskShowCommand } = await import('./task-commands.js')
      await taskShowCommand(io, taskId, opts)
    })

  const result = program.command('result').description('results of finalized tasks')
  addClientOptions(result.command('get [taskId]')
    .description('fetch a task\'s result from the swarm, check it against the chain, decrypt it when needed, unpack it and print the app\'s stdout')
    .option('--tx <txHash>', 'instead of a task id: the results of every task this transaction created (from its receipt)')
    .option('--out <dir>', 'also copy the unpacked result here (must not exist; with --tx, one folder per task in it)'))
    .action(async (taskId: string | undefined, opts: ClientCommandOptions & { out?: string, tx?: string }) => {
      const { resultGetCommand } = await import('./market-commands.js')
      await resultGetCommand(io, taskId, opts)
    })

  const app = program.command('app').description('apps on chain')
  addClientOptions(app.command('publish <file>')
    .description('add an app (WASI module, static Linux binary, OCI image layout folder or tar) to the swarm, register it on chain and publish its app order')
    .option('--name <name>', 'app name (default: the file name without .wasm)')
    .option('--price <amount>', 'price per task (nRLC, or 1.5RLC)', '0')
    .option('--volume <n>', 'how many tasks each app order allows')
    .option('--dataset <address...>', 'only with these datasets (one app order per dataset)')
    .option('--requester <address...>', 'only for these requesters (one order per dataset and requester)')
    .option('--tag <tag...>', 'tags every deal must accept, such as region:eu (on chain: named tags only)'))
    .action(async (file: string, opts: AppRegisterCommandOptions) => {
      const { appPublishCommand } = await import('./market-commands.js')
      await appPublishCommand(io, file, opts)
    })
  addClientOptions(app.command('register')
    .description('register an app on chain and publish its app order')
    .option('--name <name>', 'app name')
    .option('--cid <cid>', 'CID of the app\'s wasm module')
    .option('--checksum <hex>', 'sha256 of the wasm module')
    .option('--price <amount>', 'price per task (nRLC, or 1.5RLC)')
    .option('--volume <n>', 'how many tasks each app order allows')
    .option('--dataset <address...>', 'only with these datasets (one app order per dataset)')
    .option('--requester <address...>', 'only for these requesters (one order per dataset and requester)')
    .option('--tag <tag...>', 'tags every deal must accept, such as region:eu (on chain: named tags only)'))
    .action(async (opts: AppRegisterCommandOptions) => {
      const { appRegisterCommand } = await import('./market-commands.js')
      await appRegisterCommand(io, opts)
    })

  // datasets (issue 6): publish, list, show, unpublish
  const dataset = program.command('dataset').description('datasets: encrypted, offered with a dataset order, keys released to authorized workers only')
  addClientOptions(dataset.command('publish <path>')
    .description('encrypt a file or folder (AES-256-GCM), add it to the swarm, register it on chain and publish its dataset order')
    .option('--name <name>', 'dataset name (default: the file or folder name)')
    .option('--app <app...>', 'only these apps may read it (addresses, or names that only one app has): one dataset order per app')
    .option('--any-app', 'any app may read it, one that copies the data to its result included (prints a warning)')
    .option('--requester <address...>', 'only these requesters may use it (one order per app and requester)')
    .option('--tag <tag...>', 'tags every deal on it must accept, such as region:eu (on chain: named tags only)')
    .option('--volume <n>', 'how many tasks each dataset order allows (default 1000000)')
    .option('--price <amount>', 'price per task (nRLC, or 1.5RLC); required, 0 only with --free')
    .option('--free', 'a price of 0: anyone allowed uses it for nothing')
    .option('--no-encrypt', 'publish in clear (anyone can read it)'))
    .action(async (path: string, opts: import('./dataset-commands.js').DatasetPublishCommandOptions) => {
      const { datasetPublishCommand } = await import('./dataset-commands.js')
      await datasetPublishCommand(io, path, opts)
    })
  for (const verb of ['allow', 'deny'] as const) {
    addClientOptions(dataset.command(`${verb} <address>`)
      .description(verb === 'allow'
        ? 'allow more apps (or any app) to read one of this node\'s datasets: new orders are signed, the old ones cancelled'
        : 'stop apps (by address) from reading one of this node\'s datasets: new orders without them, the old ones cancelled')
      .option('--app <app...>', verb === 'allow' ? 'apps to add to the allowed ones' : 'apps to remove (addresses)')
      .option('--any-app', 'any app (prints a warning); allow only')
      .option('--requester <address...>', 'only these requesters (default: as before)')
      .option('--tag <tag...>', 'tags every deal must accept (default: as before)')
      .option('--volume <n>', 'uses per order (default: as before)'))
      .action(async (address: string, opts: import('./dataset-commands.js').DatasetPolicyCommandOptions) => {
        const { datasetPolicyCommand } = await import('./dataset-commands.js')
        await datasetPolicyCommand(io, verb, address, opts)
      })
  }
  addClientOptions(dataset.command('list').description('the datasets this node published'))
    .action(async (opts: ClientCommandOptions) => {
      const { datasetListCommand } = await import('./dataset-commands.js')
      await datasetListCommand(io, opts)
    })
  addClientOptions(dataset.command('show <address>').description('a dataset of the hub and its live orders'))
    .action(async (address: string, opts: ClientCommandOptions) => {
      const { datasetShowCommand } = await import('./dataset-commands.js')
      await datasetShowCommand(io, address, opts)
    })
  addClientOptions(dataset.command('unpublish <address>').description('cancel the dataset\'s orders on chain and remove its key'))
    .action(async (address: string, opts: ClientCommandOptions) => {
      const { datasetUnpublishCommand } = await import('./dataset-commands.js')
      await datasetUnpublishCommand(io, address, opts)
    })

  // category, kitty, task list | claim, deal list | claim (issues 20 and 26)
  registerOperatorCommands(io, { program, task, deal }, addClientOptions)

  return program
}

/**
 * Runs the CLI on `argv` (without node and script); returns the exit code:
 * 0 ok, 1 failure, 2 usage error. Never throws.
 */
export async function runCli (argv: string[], io: CliIo = processIo): Promise<number> {
  // known before parsing, so even a parse error can be reported as JSON
  const json = argv.includes('--json')
  let exitCode = 0
  const program = buildProgram(io, (code) => { exitCode = code })
  try {
    if (argv.length === 0) {
      io.out(program.helpInformation())
      return 0
    }
    await program.parseAsync(argv, { from: 'user' })
    return exitCode
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version are "errors" to commander, successes to the user
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return err.exitCode === 0 ? 0 : 2
      const code = COMMANDER_CODES[err.code] ?? 'CLI_USAGE'
      const message = err.message.replace(/^error:\s*/, '').trim().replace(/\.$/, '')
      printError(io, describeError(new CliError(code as never, `${message}; see \`iexec-p2p --help\``)), json)
      return 2
    }
    const d = describeError(err)
    printError(io, d, json)
    return d.exitCode
  }
}
