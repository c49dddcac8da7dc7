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
  /** bound on a whole fetch by CID, ms */
  fetchTimeoutMs: number
}

export const CONTENT_DEFAULTS: ContentOptions = {
  // bitswap moved 10 MiB between local nodes in ~0.5-0.9 s (STACK-NOTES);
  // 5 minutes allows a GiB over a modest WAN link and still ends a stalled fetch
  fetchTimeoutMs: 5 * 60_000
}
