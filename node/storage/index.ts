/**
 * Storage: datasets encrypted with a chunked AES-256-GCM stream cipher,
 * deterministic archives of folders, ECIES to Ethereum keys, dataset keys
 * in the owner's data dir, the key-release protocol (owner's decision,
 * stream handler, worker's request), results encrypted to the requester,
 * and Helia content helpers.
 *
 * What it protects against: anyone who fetches the dataset's blocks (every
 * swarm node can) sees only ciphertext; the key goes only to a worker the
 * deal's scheduler authorized for a task of a deal that uses the dataset,
 * sealed to that worker's Ethereum key. What it does not: without a TEE,
 * the host of an authorized worker can read what it computes on (iExec
 * uses SGX enclaves for that).
 *
 * @example Publishing a dataset (owner)
 * ```ts
 * const key = generateContentKey()
 * const { checksum } = await encryptDataset('./data/', 'data.enc', key) // a file or a folder
 * const { cid } = await addFile(network.helia, 'data.csv.enc')
 * await provideContent(network.helia, cid)
 * await keyStore.put(datasetAddress, new DatasetKey(key))
 * await network.handle(KEY_RELEASE_PROTOCOL, createKeyReleaseHandler({ domain, now: Date.now, seenNonces: new MemoryNonceRegistry(), chain, keyStore }))
 * ```
 *
 * @example Publishing through the node (what `POST /v1/datasets` does)
 * ```ts
 * // encrypt (streaming) -> add + pin + provide -> registerDataset -> key filed -> DatasetOrder signed and gossiped
 * const routes = datasetRoutes( // node/api/routes/dataset.ts{ market: () => market, helia: () => network.helia, keyStore, store: new DatasetStore(db), tmpDir, announce: () => announcer.announceNow() })
 * ```
 *
 * @example Finding the owner (worker): adverts first, then the providers of the owner CID
 * ```ts
 * const key = await fetchKeyFromOwner({
 *   owner,
 *   candidates: ownerCandidates({ network, swarmId, owner, selfPeerId: network.peerId, known: () => peers.resolve(owner) }),
 *   fetchFrom: (peer) => fetchDatasetKey((p, o) => network.dialProtocol(peer, p, o), wallet, domain, req),
 *   header: () => ciphertextHeader(network.helia, cid) // a key from a wrong peer fails the header's key check: the next candidate is tried
 * })
 * ```
 *
 * @example Using it (worker)
 * ```ts
 * await fetchToFile(network.helia, cid, 'in.enc')
 * const key = await fetchDatasetKey((p, o) => network.dialProtocol(ownerPeerId, p, o), wallet, domain, { dataset, dealid, idx, authorization })
 * await decryptDataset('in.enc', 'in/dataset', key)
 * ```
 */
export {
  generateContentKey, encryptStream, decryptStream, encryptFile, encryptToFile, decryptFile, hashingTap, ciphertextSize,
  contentKindOf, CONTENT_KEY_BYTES, CIPHER_HEADER_BYTES, CIPHER_TAG_BYTES
} from './chunked-cipher.js'
export type { HashingTap, EncryptFileResult, ContentKind } from './chunked-cipher.js'
export { encryptDataset, decryptDataset, isEncryptedContent, placePlainDataset } from './dataset-cipher.js'
export type { EncryptDatasetResult } from './dataset-cipher.js'
export { packFolder, packTree, readTreeSync, unpackArchive, safeEntryPath } from './archive.js'
export type { PackOptions, ReadTree, TreeEntry, UnpackResult } from './archive.js'
export { eciesEncrypt, eciesDecrypt, compressPublicKey, recoverPublicKey } from './ecies.js'
export type { EciesPrivateKey } from './ecies.js'
export { encryptResult, decryptResult, encryptResultFolder, decryptResultToFolder } from './result-cipher.js'
export type { ResultCipherOptions } from './result-cipher.js'
export { DatasetKey, FileKeyStore, MemoryKeyStore } from './key-store.js'
export type { KeyStore } from './key-store.js'
export {
  decideKeyRelease, createKeyReleaseHandler, buildKeyReleaseRequest, sendKeyReleaseRequest, openReleasedKey,
  fetchDatasetKey, MemoryNonceRegistry, dealAllowedBy
} from './key-release.js'
export type {
  KeyReleaseChainView, DealView, DatasetOrderRules, NonceRegistry, KeyReleaseOwnerContext, KeyReleaseDecision,
  KeyReleaseHandlerOptions, KeyReleaseDialer
} from './key-release.js'
export { createHubKeyReleaseView } from './hub-view.js'
export type { HubKeyReleaseViewOptions } from './hub-view.js'
export { addStream, addBytes, addFile, catContent, fetchToFile, provideContent, parseCid } from './content.js'
export type { ContentHelia, AddOptions, AddResult, FetchOptions } from './content.js'
export { StorageError } from './errors.js'
export type { StorageErrorCode } from './errors.js'
export { CIPHER_DEFAULTS, ARCHIVE_DEFAULTS, KEY_RELEASE_DEFAULTS, CONTENT_DEFAULTS, DATASET_DEFAULTS } from './options.js'
export type { CipherOptions, UnpackOptions, KeyReleaseOptions, ContentOptions, DatasetOptions } from './options.js'
export { DatasetStore } from './dataset-store.js'
export type { DatasetRecord, SignedDatasetOrderRecord } from './dataset-store.js'
export { DatasetOwnerAnnouncer, ownerCandidates, keyFitsHeader, fetchKeyFromOwner, ciphertextHeader } from './dataset-owner.js'
export type { OwnerNetwork, DatasetOwnerAnnouncerInit, OwnerAttempt } from './dataset-owner.js'
export { DatasetKeyResolver } from './dataset-key-resolver.js'
export type { DatasetKeyRequest, DatasetKeyResolverInit } from './dataset-key-resolver.js'
export { BlockRetention } from './retention.js'
export type { RetentionHelia, RetainedRecord, BlockRetentionInit } from './retention.js'
export { KEY_RELEASE_PROTOCOL } from '../../protocols/key-release.js'
