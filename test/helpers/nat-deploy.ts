/**
 * Run inside a test's public network namespace (`ip netns exec … node
 * --import tsx test/helpers/nat-deploy.ts RPC ADDRESS...`): waits for anvil,
 * deploys RLC and the hub, funds the addresses with ETH and RLC, prints the
 * chain as one JSON line. The test's own process lives outside the
 * namespaces and cannot reach the chain.
 */
import '../../node/common/polyfills.js'
import { ANVIL_MNEMONIC, deployLocalSwarmChain, rpcChainId } from '../../node/chain/index.js'

const [rpc, ...addresses] = process.argv.slice(2)
const deadline = Date.now() + 60_000
while (await rpcChainId(rpc) !== 31337) {
  if (Date.now() > deadline) throw new Error(`anvil did not answer on ${rpc}`)
  await new Promise((resolve) => setTimeout(resolve, 100))
}
const { HDNodeWallet, Mnemonic } = await import('ethers')
const deployerKey = HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(ANVIL_MNEMONIC), "m/44'/60'/0'/0/0").privateKey
const chain = await deployLocalSwarmChain({
  rpcUrl: rpc,
  deployerKey,
  fund: addresses.map((address) => ({ address, rlc: 1_000n * 10n ** 9n, eth: 10n * 10n ** 18n }))
})
process.stdout.write(JSON.stringify(chain) + '\n')
process.exit(0)
