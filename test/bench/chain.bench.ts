// What an idle node costs its JSON-RPC endpoint, and what confirmations
// cost in latency, per chain profile and transport. One provider node
// (IexecNode) at a time on anvil with a block every 2 s, through a proxy
// that counts every call: the remote profile (chain id 134: 3
// confirmations, a 4 s poll) and the dev profile (chain id 31337: 0
// confirmations, a 100 ms poll), each over HTTP (polling) and over
// WebSocket (eth_subscribe). After the idle window, a hub deposit: the
// time from its receipt to the node's follower delivering its event.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wallet } from 'ethers'
import { deployLocalSwarmChain, startLocalChain } from '../../node/chain/index.js'
import { chainProfile } from '../../node/chain/profile.js'
import { RpcProxy } from '../helpers/rpc-proxy.js'
import { hubDepositPoke, measureIdleNode, type IdleFigures } from '../helpers/chain-idle.js'
import { median, printTable, writeResults } from './harness.js'

const WINDOW_MS = Number(process.env.BENCH_CHAIN_WINDOW_MS ?? 30_000)
/** hub events timed per profile and transport */
const EVENTS = Number(process.env.BENCH_CHAIN_EVENTS ?? 5)
const BLOCK_TIME_S = 2

interface Row extends Omit<IdleFigures, 'eventLatencyMs' | 'eventLatenciesMs'> {
  profile: string
  chainId: number
  confirmations: number
  pollIntervalMs: number
  blockTimeS: number
  eventLatencyP50Ms: number
  eventLatenciesMs: number[]
}

export async function run (): Promise<void> {
  const rows: Row[] = []
  for (const [profile, chainId] of [['remote', 134], ['dev', 31337]] as const) {
    const root = await mkdtemp(join(tmpdir(), `iexec-bench-chain-${profile}-`))
    const anvil = await startLocalChain({ accounts: 2, chainId, blockTime: BLOCK_TIME_S })
    const proxy = await RpcProxy.start(anvil.rpcUrl)
    try {
      const chain = await deployLocalSwarmChain({ rpcUrl: anvil.rpcUrl, deployerKey: anvil.privateKeys[0], fund: [{ address: new Wallet(anvil.privateKeys[1]).address, rlc: 10n ** 12n }] })
      const poker = await hubDepositPoke(chain, anvil.privateKeys[1])
      try {
        const p = chainProfile(chainId)
        for (const transport of ['http', 'ws'] as const) {
          const f = await measureIdleNode({ dataDir: join(root, transport), chain, proxy, transport, windowMs: WINDOW_MS, poke: poker.poke, pokes: EVENTS })
          const { eventLatencyMs: _, eventLatenciesMs, ...idle } = f
          const latencies = eventLatenciesMs ?? []
          const row: Row = { profile, chainId, confirmations: p.confirmations, pollIntervalMs: p.eventPollIntervalMs, blockTimeS: BLOCK_TIME_S, ...idle, eventLatencyP50Ms: median(latencies), eventLatenciesMs: latencies }
          process.stdout.write(`${profile} ${transport}: ${JSON.stringify(row)}\n`)
          rows.push(row)
        }
      } finally {
        await poker.close()
      }
    } finally {
      await proxy.close()
      await anvil.stop()
      await rm(root, { recursive: true, force: true })
    }
  }
  printTable(`idle node: JSON-RPC cost and hub-event latency (a block every ${BLOCK_TIME_S} s, ${WINDOW_MS / 1000} s window)`, rows.map((r) => ({
    profile: r.profile,
    transport: r.transport,
    confirmations: r.confirmations,
    pollMs: r.pollIntervalMs,
    'http req/s': r.httpRequestsPerSecond,
    'ws msg/s': r.wsMessagesPerSecond,
    'calls/s': r.callsPerSecond,
    'event p50 ms': r.eventLatencyP50Ms
  })))
  await writeResults('chain', { windowMs: WINDOW_MS, blockTimeS: BLOCK_TIME_S, rows })
}
