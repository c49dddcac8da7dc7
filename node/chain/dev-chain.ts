import type { ChainClient } from './client.js'

/** The chain id anvil and Hardhat's network use unless told otherwise. */
export const DEV_CHAIN_ID = 31337

/**
 * True when the client speaks to a development chain: anvil (or Hardhat's
 * network) on chain id 31337, which answers `web3_clientVersion` with its
 * name. Only such a chain may be told to mine a block (`evm_mine`); a real
 * chain answers with its client's name (Geth, Nethermind, ...) or another
 * chain id, and is never asked.
 */
export async function isDevChain (chain: Pick<ChainClient, 'chainId' | 'provider'>): Promise<boolean> {
  if (chain.chainId !== DEV_CHAIN_ID) return false
  const version: unknown = await chain.provider.send('web3_clientVersion', [])
  return typeof version === 'string' && /^(anvil|HardhatNetwork)\//i.test(version)
}

/** Mines one empty block now (its timestamp: the dev chain's clock). Call only where `isDevChain` said true. */
export async function mineDevBlock (chain: Pick<ChainClient, 'provider'>): Promise<void> {
  await chain.provider.send('evm_mine', [])
}
