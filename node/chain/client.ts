import { Contract, Wallet, isAddress, type HDNodeWallet, type Interface, type InterfaceAbi, type JsonRpcProvider } from 'ethers'
import { Hub__factory, RLC__factory, type Hub, type RLC } from '../../contracts-abi/index.js'
import { ChainError } from './errors.js'
import { makeProvider, probeChainId, withRpcRetry } from './rpc.js'
import { TxSender, type SigningWallet } from './tx-sender.js'
import { defaultRpcOptions, defaultTxSenderOptions, type RpcOptions, type TxSenderOptions } from './options.js'

/** How to reach the chain and with which key. */
export interface ChainClientOptions {
  /** JSON-RPC endpoint: http(s), or ws(s) for `eth_subscribe` (the event follower then follows pushed heads and logs) */
  rpcUrl: string
  /** 0x-prefixed 32-byte hex key; or `wallet` */
  privateKey?: string
  wallet?: SigningWallet
  /** the chain the caller expects; a different one fails with CHAIN_ID_MISMATCH */
  chainId?: number
  rpc?: Partial<RpcOptions>
  tx?: Partial<TxSenderOptions>
  /** the hub's address: `hub` binding (its code is checked on connect) */
  hub?: string
  /** the RLC token's address: `rlc` binding (its code is checked on connect) */
  rlc?: string
  /** more ABIs whose custom errors reverts should decode to (the hub's and RLC's always are) */
  errorInterfaces?: Interface[]
}

/** A connected client: one provider, one wallet, its nonce queue. */
export interface ChainClient {
  readonly rpcUrl: string
  readonly chainId: number
  /** the wallet's address */
  readonly address: string
  /** the sender (nonce queue) of this wallet */
  readonly sender: TxSender
  /** the underlying provider; only node/chain code should touch it */
  readonly provider: JsonRpcProvider
  readonly wallet: SigningWallet
  readonly rpcOptions: RpcOptions
  /** typed hub binding (TypeChain), bound to this wallet; present when `hub` was given. Send its writes through `sender`: `sender.send(hub.deposit.populateTransaction(n))` */
  readonly hub?: Hub
  /** typed RLC binding, bound to this wallet; present when `rlc` was given */
  readonly rlc?: RLC
  /** current block number (bounded retries) */
  blockNumber: () => Promise<number>
  /** ETH balance in wei of `address` (default: own) */
  ethBalance: (address?: string) => Promise<bigint>
  /** a contract bound to this client's wallet (reads through the provider, writes through `sender`) */
  contract: (address: string, abi: Interface | InterfaceAbi) => Contract
  /** stops the provider's timers; pending sends fail */
  close: () => Promise<void>
}

function checkUrl (rpcUrl: string): void {
  let url: URL
  try {
    url = new URL(rpcUrl)
  } catch {
    throw new ChainError('INVALID_ARGUMENT', `not a URL: ${rpcUrl}`, { rpcUrl })
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol)) {
    throw new ChainError('INVALID_ARGUMENT', `JSON-RPC URL must be http(s) or ws(s), got ${url.protocol}`, { rpcUrl })
  }
}

function walletFrom (opts: ChainClientOptions): SigningWallet {
  if (opts.wallet !== undefined) return opts.wallet
  if (opts.privateKey === undefined) throw new ChainError('INVALID_ARGUMENT', 'a chain client needs privateKey or wallet', {})
  if (!/^0x[0-9a-fA-F]{64}$/.test(opts.privateKey)) {
    // never echo the key itself
    throw new ChainError('INVALID_ARGUMENT', 'privateKey must be 0x followed by 64 hex digits', {})
  }
  return new Wallet(opts.privateKey)
}

/**
 * Connects to `rpcUrl`: checks the chain id (bounded: a dead endpoint gives
 * RPC_UNREACHABLE in about `retryAttempts` backoffs, a wrong chain
 * CHAIN_ID_MISMATCH), then builds the provider and the wallet's sender.
 * @throws ChainError INVALID_ARGUMENT, RPC_UNREACHABLE, CHAIN_ID_MISMATCH, CONTRACT_NOT_FOUND
 * @example
 * const client = await createChainClient({ rpcUrl, privateKey, chainId: 31337 })
 * const tx = await client.sender.send(rlc.transfer.populateTransaction(to, 10n))
 */
export async function createChainClient (opts: ChainClientOptions): Promise<ChainClient> {
  checkUrl(opts.rpcUrl)
  const signer = walletFrom(opts)
  const rpcOptions: RpcOptions = { ...defaultRpcOptions, ...opts.rpc }
  const chainId = await probeChainId(opts.rpcUrl, rpcOptions)
  if (opts.chainId !== undefined && opts.chainId !== chainId) {
    throw new ChainError('CHAIN_ID_MISMATCH', `${opts.rpcUrl} serves chain ${chainId}, expected ${opts.chainId}`, { url: opts.rpcUrl, expected: opts.chainId, actual: chainId })
  }
  const provider = makeProvider(opts.rpcUrl, chainId, rpcOptions)
  const wallet = signer.connect(provider) as Wallet | HDNodeWallet
  // the hub's and RLC's custom errors decode everywhere: a call into the hub may revert inside the token
  const interfaces = [Hub__factory.createInterface(), RLC__factory.createInterface(), ...(opts.errorInterfaces ?? [])]
  const sender = new TxSender({ wallet, provider, chainId, url: opts.rpcUrl, options: { ...defaultTxSenderOptions, ...rpcOptions, ...opts.tx }, errorInterfaces: interfaces })
  let closed = false
  try {
    for (const [name, address] of [['hub', opts.hub], ['rlc', opts.rlc]] as const) {
      if (address === undefined) continue
      if (!isAddress(address)) throw new ChainError('INVALID_ARGUMENT', `${name} address is not an address: ${address}`, { [name]: address })
      const code = await withRpcRetry(opts.rpcUrl, 'eth_getCode', rpcOptions, async () => await provider.getCode(address))
      if (code === '0x') {
        throw new ChainError('CONTRACT_NOT_FOUND', `no contract at ${name} address ${address} on chain ${chainId} (${opts.rpcUrl}): wrong address or a fresh chain`, { [name]: address, chainId, url: opts.rpcUrl })
      }
    }
  } catch (err) {
    provider.destroy()
    throw err
  }

  return {
    rpcUrl: opts.rpcUrl,
    chainId,
    address: wallet.address,
    sender,
    provider,
    wallet,
    rpcOptions,
    ...(opts.hub !== undefined ? { hub: Hub__factory.connect(opts.hub, wallet) } : {}),
    ...(opts.rlc !== undefined ? { rlc: RLC__factory.connect(opts.rlc, wallet) } : {}),
    blockNumber: async () => await withRpcRetry(opts.rpcUrl, 'eth_blockNumber', rpcOptions, async () => await provider.getBlockNumber()),
    ethBalance: async (address?: string) => await withRpcRetry(opts.rpcUrl, 'eth_getBalance', rpcOptions, async () => await provider.getBalance(address ?? wallet.address)),
    contract: (address: string, abi: Interface | InterfaceAbi) => new Contract(address, abi, wallet),
    close: async () => {
      if (closed) return
      closed = true
      provider.destroy()
    }
  }
}
