/**
 * Options and defaults of the storage module, each with the reason for its
 * value.
 */

/** Options of the chunked AES-256-GCM cipher. */
export interface CipherOptions {
  /** plaintext bytes per sealed chunk */
  chunkSize: number
}

export const CIPHER_DEFAULTS = {
  // 64 KiB: one AES-GCM call per chunk costs ~20 µs; the 16-byte tag adds
  // 0.02 % of overhead; memory per stream stays at a couple of chunks. Larger
  // chunks barely speed up GCM and delay the first authenticated byte.
  chunkSize: 64 * 1024,
  // Upper bound a decryptor accepts from a header: the header is attacker
  // controlled and the decryptor buffers one chunk, so it must be bounded.
  maxChunkSize: 16 * 1024 * 1024,
  // Lower bound: tiny chunks would make the tag overhead absurd and are
  // only useful to an attacker probing the format.
  minChunkSize: 16
} as const

/** Options of the archive reader. */
export interface UnpackOptions {
  /** bound on the sum of file sizes, bytes (a result or dataset bomb stops here) */
  maxBytes: number
  /** bound on the number of entries */
  maxEntries: number
}

export const ARCHIVE_DEFAULTS: UnpackOptions & { readSize: number } = {
  // 4 GiB: datasets may be large; callers with tighter bounds (results) pass theirs
  maxBytes: 4 * 1024 * 1024 * 1024,
  // 100k files keeps a hostile archive from exhausting inodes
  maxEntries: 100_000,
  // file read size while packing: 64 KiB matches the cipher's chunk
  readSize: 64 * 1024
}

/** Options of the key-release protocol (both sides). */
export interface KeyReleaseOptions {
  /** a request older or newer than this (seconds, vs the owner's clock) is STALE_REQUEST */
  maxRequestAgeSeconds: number
  /** bound on one length-prefixed message, bytes */
  maxMessageBytes: number
  /** bound on one whole exchange (dial, request, answer), ms */
  timeoutMs: number
}

export const KEY_RELEASE_DEFAULTS: KeyReleaseOptions = {
  // 2 minutes covers clock skew between hosts synced by NTP plus a slow
  // dial; the nonce cache must remember nonces for at least this long.
  maxRequestAgeSeconds: 120,
  // a request is ~600 bytes of JSON and an answer ~300: 16 KiB is generous
  // and keeps a hostile peer from making the owner buffer megabytes
  maxMessageBytes: 16 * 1024,
  // a loopback exchange takes milliseconds, a WAN one well under a second;
  // the owner answers after a few eth_calls (~15 ms each on anvil)
  timeoutMs: 10_000
}

/** Options of the content helpers. */
export interface ContentOptions {
  /** bound on a whole fetch by CID, ms (callers that fetch big content scale it by size: FetchOptions.minBytesPerSecond) */
  fetchTimeoutMs: number
  /** a fetch by CID reads the file this many bytes at a time (a window's blocks in parallel); bounds the memory a fetch holds */
  fetchWindowBytes: number
  /** a fetch that receives no byte for this long is stopped, ms */
  fetchStallTimeoutMs: number
}

export const CONTENT_DEFAULTS: ContentOptions = {
  // bitswap moved 10 MiB between local nodes in ~0.5-0.9 s (STACK-NOTES);
  // 5 minutes allows a GiB over a modest WAN link
  fetchTimeoutMs: 5 * 60_000,
  // a missing block costs a provider lookup (DHT walk: up to ~10 s on a WAN), a dial and one
  // 1 MiB leaf; 30 s covers that on a slow link, and ends a fetch whose peers went away long
  // before any whole-fetch bound would
  fetchStallTimeoutMs: 30_000,
  // 8 MiB: 8 leaves of 1 MiB asked for at once keep bitswap busy, and a fetch holds about
  // that much; a whole-file read held memory in proportion to the file (dataset bench)
  fetchWindowBytes: 8 * 1024 * 1024
}

/** Options of dataset publishing, owner lookup and block retention. */
export interface DatasetOptions {
  /** how long a worker keeps (and provides) the blocks of a dataset or app it fetched for a task, ms */
  retentionMs: number
  /** how often expired retained content is dropped, ms */
  retentionSweepMs: number
  /** a retained content is provided again (DHT walk) at most this often, however many tasks use it, ms */
  retentionReprovideMs: number
  /** bound on finding the dataset owner's peers in the DHT, ms */
  ownerLookupTimeoutMs: number
  /** at most this many peers answering for an owner are tried */
  maxOwnerCandidates: number
  /** bound on one DHT provide (owner announcement, retained content), ms */
  provideTimeoutMs: number
  /** volume of the dataset order a publish signs (uses before it must be re-signed) */
  orderVolume: bigint
}

export const DATASET_DEFAULTS: DatasetOptions = {
  // a day: the deals of a popular dataset come in bursts of hours, so a day
  // of copies spreads the load off the owner's node, while the disk a
  // provider gives to other people's data stays bounded by what it ran in a day
  retentionMs: 24 * 60 * 60_000,
  // ten minutes: expiry is not urgent; a sweep walks a level prefix and a few DAGs
  retentionSweepMs: 10 * 60_000,
  // a bag of 200 tasks on one app provided that app 200 times (a DHT walk and
  // 20 ADD_PROVIDER calls each) while one provide record lasts hours
  retentionReprovideMs: 10 * 60_000,
  // findProviders answers in milliseconds on local nodes; 10 s covers a WAN walk
  ownerLookupTimeoutMs: 10_000,
  // anyone may provide the owner's CID: a handful of decoys must not hide the owner,
  // a flood of them must not keep a worker dialing for minutes
  maxOwnerCandidates: 8,
  // a local DHT provide takes well under a second; 10 s bounds a slow walk without hanging a publish
  provideTimeoutMs: 10_000,
  // as apps' orders (market routes): effectively unlimited uses until unpublished
  orderVolume: 1_000_000n
}
