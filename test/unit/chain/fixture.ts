import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import solc from 'solc'
import { ContractFactory, Interface, JsonRpcProvider, Network, Wallet } from 'ethers'

/** ABI and bytecode of test/unit/chain/fixtures/Fixture.sol, compiled once per process with solc-js. */
export interface Compiled { abi: unknown[], bytecode: string }

let compiled: Compiled | undefined

export function compileFixture (): Compiled {
  if (compiled !== undefined) return compiled
  const source = readFileSync(fileURLToPath(new URL('./fixtures/Fixture.sol', import.meta.url)), 'utf8')
  const input = {
    language: 'Solidity',
    sources: { 'Fixture.sol': { content: source } },
    settings: { optimizer: { enabled: true, runs: 200 }, outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } } }
  }
  const out = JSON.parse(solc.compile(JSON.stringify(input))) as {
    errors?: Array<{ severity: string, formattedMessage: string }>
    contracts: Record<string, Record<string, { abi: unknown[], evm: { bytecode: { object: string } } }>>
  }
  const errors = (out.errors ?? []).filter((e) => e.severity === 'error')
  if (errors.length > 0) throw new Error(errors.map((e) => e.formattedMessage).join('\n'))
  const c = out.contracts['Fixture.sol'].Fixture
  compiled = { abi: c.abi, bytecode: '0x' + c.evm.bytecode.object }
  return compiled
}

export const fixtureInterface = (): Interface => new Interface(compileFixture().abi as string[])

/** Deploys Fixture with `privateKey` (its own provider, destroyed after) and returns the address. */
export async function deployFixture (rpcUrl: string, chainId: number, privateKey: string): Promise<string> {
  const { abi, bytecode } = compileFixture()
  const network = Network.from(chainId)
  const provider = new JsonRpcProvider(rpcUrl, network, { staticNetwork: network, pollingInterval: 50, cacheTimeout: -1 })
  try {
    const factory = new ContractFactory(abi as string[], bytecode, new Wallet(privateKey, provider))
    const contract = await factory.deploy()
    await contract.waitForDeployment()
    return await contract.getAddress()
  } finally {
    provider.destroy()
  }
}

/** One raw JSON-RPC call (for anvil_* / evm_* methods and checks independent of the code under test). */
export async function rawRpc<T = unknown> (rpcUrl: string, method: string, params: unknown[] = []): Promise<T> {
  const res = await fetch(rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    signal: AbortSignal.timeout(5000)
  })
  const body = await res.json() as { result?: T, error?: { message: string } }
  if (body.error !== undefined) throw new Error(`${method}: ${body.error.message}`)
  return body.result as T
}

/** Polls `cond` every 20 ms until true or `timeoutMs` passes (then throws with `what`). */
export async function waitFor (what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
