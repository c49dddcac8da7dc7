/**
 * The chain module: everything the node does with Ethereum goes through here.
 * Nobody else imports ethers providers.
 *
 * - `createChainClient`: one JSON-RPC provider over http(s) or ws(s) (chain
 *   id checked, bounded failure on a dead endpoint), one wallet, typed hub
 *   and RLC bindings.
 * - `TxSender` (the client's `sender`): one nonce queue per wallet, gas
 *   estimation with headroom, bounded retries of transient RPC errors,
 *   reverts decoded to `ChainError('CONTRACT_REVERT')` with the custom
 *   error's name and arguments.
 * - `EventFollower`: a contract's logs from a stored cursor, with
 *   confirmations, in bounded ranges, each delivered once in order; polled
 *   over HTTP, driven by `eth_subscribe` (new heads, logs) over WebSocket.
 * - `HubEvents`: the node's one source of the hub's events (one follower,
 *   one cursor), with a subscribe typed by event name; `queryLogsInRanges`
 *   for the hub's history in bounded ranges; `hubEventsOfReceipt` for a
 *   receipt's hub events.
 * - `startLocalChain` (anvil) and `deployLocalSwarmChain` (hub, RLC, funding,
 *   chain config) for tests and `swarm up`.
 *
 * @example
 * ```ts
 * const anvil = await startLocalChain()
 * const chain = await deployLocalSwarmChain({ rpcUrl: anvil.rpcUrl, deployerKey: anvil.privateKeys[0],
 *   fund: [{ address, rlc: 1000n * 10n ** 9n }] })
 * const client = await createChainClient({ rpcUrl: chain.rpc, chainId: chain.chainId, privateKey, hub: chain.hub, rlc: chain.rlc })
 * await client.sender.send(client.rlc!.approve.populateTransaction(chain.hub, 100n))
 * try {
 *   await client.sender.send(client.hub!.withdraw.populateTransaction(5n))
 * } catch (err) {
 *   if (isChainError(err, 'CONTRACT_REVERT') && err.reason === 'InsufficientBalance') { ... }
 * }
 * const follower = new EventFollower(client, {
 *   address: chain.hub, iface: hubInterface(), fromBlock: chain.blockNumber,
 *   cursorStore: new JsonFileCursorStore(path), confirmations: 0,
 *   handler: async (event) => { ... }
 * })
 * await follower.start()
 * ```
 */
export { createChainClient } from './client.js'
export type { ChainClient, ChainClientOptions } from './client.js'
export { TxSender } from './tx-sender.js'
export type { TxRequest, TxSenderInit, SendOptions, SentTx, SigningWallet, ResendInfo } from './tx-sender.js'
export { EventFollower } from './event-follower.js'
export type { ChainEvent, EventFollowerInit, LogSource } from './event-follower.js'
export { HubEvents, HubEventDispatcher, hubCursorKey } from './hub-events.js'
export type { HubEventsInit, HubEventOf, HubEventSubscribeOptions, HubEventsLogger } from './hub-events.js'
export { HubLogDecoder, hubEventsOfReceipt, hubEventsNamed, isHubEvent } from './hub-event-decoder.js'
export type { HubEvent, HubEventArgs, HubEventName, LogLike } from './hub-event-decoder.js'
export { queryLogsInRanges, headOf } from './log-ranges.js'
export type { HeadSource, LogRangesOptions } from './log-ranges.js'
export { JsonFileCursorStore, MemoryCursorStore } from './cursor-store.js'
export type { Cursor, CursorStore } from './cursor-store.js'
export { deployLocalSwarmChain } from './deploy.js'
export type { FundSpec, LocalSwarmChain, LocalSwarmChainOptions, SwarmChainConfig } from './deploy.js'
export { startLocalChain, freePort, portIsFree, rpcChainId, anvilBinary, ANVIL_MNEMONIC, ANVIL_PACKAGE } from './local-chain.js'
export type { AnvilLookup } from './local-chain.js'
export type { LocalChain, LocalChainOptions } from './local-chain.js'
export { isDevChain, mineDevBlock, DEV_CHAIN_ID } from './dev-chain.js'
export { ChainError, isChainError } from './errors.js'
export type { ChainErrorCode } from './errors.js'
export { isTransientRpcError, isWsUrl } from './rpc.js'
export { WsTransport } from './ws-transport.js'
export type { RpcSubscriber, Subscription, SubscriptionHandlers } from './ws-transport.js'
export { defaultRpcOptions, defaultTxSenderOptions, defaultEventFollowerOptions, defaultHubEventsOptions } from './options.js'
export type { RpcOptions, TxSenderOptions, EventFollowerOptions, HubEventsOptions } from './options.js'
export { hubInterface, rlcInterface } from '../../contracts-abi/index.js'
export type { Hub, RLC } from '../../contracts-abi/index.js'
export { chainProfile, DEV_CHAIN_IDS } from './profile.js'
export type { ChainProfile } from './profile.js'
export { queryHubLogs, lastHubLog } from './hub-logs.js'
export type { HubLogReader } from './hub-logs.js'
export { findFinalizedTask } from './finalized-task.js'
export type { FinalizedTaskLog } from './finalized-task.js'
