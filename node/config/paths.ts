import { join } from 'node:path'
import { homedir } from 'node:os'

/** Default data dir, as `ipfs` uses ~/.ipfs. Overridden by --data-dir or IEXEC_P2P_DATA_DIR. */
export function defaultDataDir (): string {
  return process.env.IEXEC_P2P_DATA_DIR ?? join(homedir(), '.iexec-p2p')
}

/** The files of a data dir. One place names them: the node writes, the CLI reads. */
export function dataDirPaths (dataDir: string): {
  config: string
  peerKey: string
  wallet: string
  apiToken: string
  apiInfo: string
  db: string
  blocks: string
  datastore: string
  logs: string
  datasetKeys: string
} {
  return {
    config: join(dataDir, 'config.json'),
    // libp2p Ed25519 private key, protobuf-encoded, mode 0600
    peerKey: join(dataDir, 'peer.key'),
    // Ethereum wallet: encrypted JSON keystore (or a plain dev key file, flagged as such)
    wallet: join(dataDir, 'wallet.json'),
    // bearer token the local API requires on every call, mode 0600
    apiToken: join(dataDir, 'api-token'),
    // written by a running node: { url, pid, peerId }; removed on clean stop
    apiInfo: join(dataDir, 'api.json'),
    db: join(dataDir, 'db'),
    blocks: join(dataDir, 'blocks'),
    datastore: join(dataDir, 'datastore'),
    logs: join(dataDir, 'node.log'),
    // dataset encryption keys of the datasets this node owns: a file each, 0600, never logged
    datasetKeys: join(dataDir, 'dataset-keys')
  }
}
