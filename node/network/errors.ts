import { IexecError } from '../common/errors.js'

export type NetworkErrorCode =
  /** a listen or bootstrap address does not parse (or a bootstrap address lacks /p2p/<peerId>) */
  | 'BAD_MULTIADDR'
  /** the swarm key file given does not exist */
  | 'SWARM_KEY_MISSING'
  /** the swarm key file is not a libp2p pnet key (`/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits) */
  | 'SWARM_KEY_INVALID'
  /** a listen port is already taken by another process */
  | 'LISTEN_PORT_IN_USE'
  /** libp2p failed to start for another reason */
  | 'NETWORK_START_FAILED'
  /** an operation needs a started network */
  | 'NETWORK_NOT_STARTED'
  /** a DHT key has no record reachable */
  | 'DHT_NOT_FOUND'
  /** a DHT or dial operation ran out of time */
  | 'NETWORK_TIMEOUT'
  /** a peer id string does not parse */
  | 'BAD_PEER_ID'

export class NetworkError extends IexecError<NetworkErrorCode> {}
