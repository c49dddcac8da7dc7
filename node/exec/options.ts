/** Options of the exec channel (node/exec/exec-channel.ts). */

export interface ExecChannelOptions {
  /** bound of one exchange (dial, write, read the answer) */
  timeoutMs: number
  /** streams served at once; more are refused by libp2p (a flood cannot pile up handlers) */
  maxInboundStreams: number
  /** an outbound stream unused this long is closed (the answering side closes one idle twice as long) */
  idleMs: number
  /** idle outbound streams kept per peer for the next exchanges */
  maxIdlePerPeer: number
}

export const defaultExecChannelOptions: ExecChannelOptions = {
  // a local or LAN peer answers in milliseconds; handlers only record and ack
  // (work runs after the answer), so 10 s means the peer is gone or stuck
  timeoutMs: 10_000,
  // a scheduler of a 32-worker deal gets bursts of heartbeats; 64 leaves headroom
  maxInboundStreams: 64,
  // a deal's scheduler and workers talk every heartbeat (2 s): 30 s keeps their streams open
  // through a deal, and a swarm's idle pairs do not hold streams for long
  idleMs: 30_000,
  // exchanges that run at once (a tick's assignments, reports, upload requests) each take a stream
  maxIdlePerPeer: 4
}
