// The example DApp on a local swarm's chain: deploys PrimeTable.sol, funds
// its hub balance, asks the swarm how many primes are <= N, waits for the
// hub's callback and prints what the contract stored.
//
//   npx tsx examples/dapp/run.ts --swarm DIR --app ADDRESS [--n 1000] [--trust 1] [--timeout 240] [--json]
//
// DIR is a `swarm up` dir (its swarm.json names the chain, hub and RLC); ADDRESS
// the `primecount` app registered by `app publish examples/apps/primecount/primecount.wasm`.
// The DApp's owner is anvil's first dev account, which on a swarm's chain is
// the RLC minter: it mints the RLC it deposits for the DApp (a dev chain only).
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { ContractFactory, Contract, HDNodeWallet, JsonRpcProvider, Mnemonic, NonceManager, getAddress } from 'ethers'
import { compileSolidity } from '../../contracts-abi/compile.js'
import { Hub__factory, RLC__factory } from '../../contracts-abi/index.js'
import { ANVIL_MNEMONIC } from '../../node/chain/local-chain.js'

const STATUS = ['NONE', 'PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'REMOVED']

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      swarm: { type: 'string' },
      app: { type: 'string' },
      n: { type: 'string', default: '1000' },
      // 0.1 RLC per task: above a provider's price plus its match fee (0.01 RLC by default)
      'max-price': { type: 'string', default: '100000000' },
      fund: { type: 'string', default: '1000000000' },
      trust: { type: 'string', default: '1' },
      timeout: { type: 'string', default: '240' },
      json: { type: 'boolean', default: false }
    }
  })
  if (values.swarm === undefined || values.app === undefined) throw new Error('usage: run.ts --swarm DIR --app ADDRESS [--n N] [--timeout S] [--json]')
  const n = BigInt(values.n)
  const app = getAddress(values.app)
  const say = (line: string): void => { if (values.json !== true) process.stderr.write(line + '\n') }
  const swarm = JSON.parse(await readFile(join(values.swarm, 'swarm.json'), 'utf8')) as { chain?: { rpc: string, hub: string, rlc: string } | null }
  if (swarm.chain == null) throw new Error(`${values.swarm}/swarm.json has no chain: start the swarm with one`)
  const provider = new JsonRpcProvider(swarm.chain.rpc, undefined, { staticNetwork: true, pollingInterval: 200, cacheTimeout: -1 })
  try {
    // one transaction after the other, nonces counted here: a node's RPC cache could hand out a used one
    const owner = new NonceManager(HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(ANVIL_MNEMONIC), "m/44'/60'/0'/0/0").connect(provider))
    const ownerAddress = await owner.getAddress()
    const hub = Hub__factory.connect(swarm.chain.hub, owner)
    const rlc = RLC__factory.connect(swarm.chain.rlc, owner)

    say('compiling PrimeTable.sol')
    const compiled = compileSolidity([fileURLToPath(new URL('./PrimeTable.sol', import.meta.url))]).PrimeTable
    const factory = new ContractFactory(compiled.abi as never, compiled.bytecode, owner)
    const deployed = await factory.deploy(swarm.chain.hub, app, BigInt(values['max-price']), BigInt(values.trust))
    await deployed.waitForDeployment()
    const dapp = deployed as Contract
    const dappAddress = await dapp.getAddress()
    say(`PrimeTable deployed at ${dappAddress}`)

    const fund = BigInt(values.fund)
    await (await rlc.mint(ownerAddress, fund)).wait()
    await (await rlc.approve(swarm.chain.hub, fund)).wait()
    await (await hub.depositFor(dappAddress, fund)).wait()
    say(`funded: ${fund} nRLC in the DApp's hub balance`)

    const tx = await dapp.ask(n) as { hash: string, wait: () => Promise<{ logs: Array<{ topics: string[], data: string }> } | null> }
    const receipt = await tx.wait()
    let id = ''
    for (const log of receipt?.logs ?? []) {
      const parsed = dapp.interface.parseLog(log)
      if (parsed?.name === 'WorkSubmitted') id = String(parsed.args.id)
    }
    say(`asked: primes <= ${n}; submit tx ${tx.hash}, work (task) ${id}`)

    const deadline = Date.now() + Number(values.timeout) * 1000
    let status = ''
    while (true) {
      status = STATUS[Number(await dapp.getStatus(id))]
      if (status !== 'PENDING' && status !== 'RUNNING') break
      if (Date.now() > deadline) throw new Error(`no result after ${values.timeout} s: the work is ${status}`)
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
    const count = await dapp.primeCount(n) as bigint
    const result = await dapp.getResult(id) as string
    // the results CID finalize gave, kept by the hub for callback tasks: IPFS holds the full archive
    const resultCid = await dapp.getResultPath(id) as string
    const out = { dapp: dappAddress, app, n: n.toString(), submitTx: tx.hash, id, status, primeCount: count.toString(), callbackData: result, resultCid }
    if (values.json === true) {
      process.stdout.write(JSON.stringify(out) + '\n')
    } else {
      process.stdout.write(`work ${id}: ${status}\nprimeCount(${n}) = ${count} (stored by the contract from the callback)\nresults CID ${resultCid === '' ? '-' : resultCid} (getResultPath, from the hub)\n`)
    }
    if (status !== 'COMPLETED' || count === 0n) process.exitCode = 1
  } finally {
    provider.destroy()
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`dapp example: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})
