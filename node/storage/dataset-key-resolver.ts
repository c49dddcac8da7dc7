import type { Stream } from '@libp2p/interface'
import type { Hub } from '../../contracts-abi/index.js'
import type { HubDomain } from '../../protocols/eip712.js'
import type { ContentHelia } from './content.js'
import { ciphertextHeader, fetchKeyFromOwner, ownerCandidates } from './dataset-owner.js'
import type { OwnerNetwork } from './dataset-owner.js'
import { IexecError } from '../common/errors.js'
import { fetchDatasetKey } from './key-release.js'
import type { KeyStore } from './key-store.js'

/** A worker's request for a dataset's key: the task it is for and the scheduler's authorization. */
export interface DatasetKeyRequest {
  dataset: string
  dealid: string
  idx: number
  authorization: string
}

export interface DatasetKeyResolverInit {
  /** the dataset's registration: its owner and its content */
  hub: Pick<Hub, 'datasetOf'>
  /** this node's own datasets' keys */
  keyStore: Pick<KeyStore, 'get'>
  network: OwnerNetwork & { helia: ContentHelia, dialProtocol: (peer: string, protocol: string, options?: { signal?: AbortSignal }) => Promise<Stream> }
  swarmId: string
  /** this node's wallet: its address, and the key the owner seals the released key to */
  wallet: Parameters<typeof fetchDatasetKey>[1]
  selfPeerId: string
  domain: HubDomain
  /** an owner's peer, from its provider advert, if it has one */
  resolvePeer: (address: string) => Promise<string | undefined>
  log?: (msg: string, context?: Record<string, unknown>) => void
}

/**
 * Where a worker gets a dataset's key for a task: its own key store when
 * the dataset is its own, else the owner's node over the key-release
 * protocol (found by its provider advert, or by its owner CID for a
 * requester-role owner).
 */
export class DatasetKeyResolver {
  constructor (private readonly init: DatasetKeyResolverInit) {}

  /** @throws IexecError STORAGE_KEY_NOT_FOUND (own dataset without its key) and fetchKeyFromOwner's codes */
  async key (req: DatasetKeyRequest): Promise<Uint8Array> {
    const { hub, network, wallet } = this.init
    const asset = await hub.datasetOf(req.dataset)
    const owner = asset.owner
    if (owner.toLowerCase() === wallet.address.toLowerCase()) {
      // a worker of its own dataset's deal: the key is here (unless unpublished)
      const own = await this.init.keyStore.get(req.dataset)
      if (own === undefined) throw new IexecError('STORAGE_KEY_NOT_FOUND', `this node holds no key for its dataset ${req.dataset}`)
      return own.bytes()
    }
    // adverts map providers' addresses; a requester-role owner is found by its owner CID
    return await fetchKeyFromOwner({
      owner,
      candidates: ownerCandidates({ network, swarmId: this.init.swarmId, owner, selfPeerId: this.init.selfPeerId, known: async () => await this.init.resolvePeer(owner) }),
      fetchFrom: async (peer) => await fetchDatasetKey(async (p, o) => await network.dialProtocol(peer, p, o), wallet, this.init.domain, req),
      header: async () => await ciphertextHeader(network.helia, asset.cid),
      ...(this.init.log !== undefined ? { log: this.init.log } : {})
    })
  }
}
