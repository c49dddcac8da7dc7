import { IexecError } from '../common/errors.js'

/**
 * Error codes of the storage module. Tests and callers branch on these,
 * never on message text.
 */
export type StorageErrorCode =
  /** A caller passed a bad argument (key length, chunk size, public key...). */
  | 'STORAGE_INVALID_ARGUMENT'
  /** A fetched result does not hash to its task's on-chain result. */
  | 'RESULT_DIGEST_MISMATCH'
  /** The ciphertext does not start with a valid header (magic, version, sizes). */
  | 'STORAGE_BAD_HEADER'
  /** The key check failed: a wrong key, or an altered header (GCM alone could not tell these from tampering). */
  | 'STORAGE_WRONG_KEY'
  /** A chunk failed authentication: a flipped byte, or chunks reordered, duplicated or spliced. */
  | 'DATASET_DECRYPT_FAILED'
  /** The stream ended before its final chunk: it was truncated. */
  | 'STORAGE_TRUNCATED'
  /** Bytes follow the final chunk. */
  | 'STORAGE_TRAILING_DATA'
  /** An ECIES envelope is malformed or was not sealed to this key. */
  | 'STORAGE_NOT_RECIPIENT'
  /** An archive entry would land outside the target folder (`..`, absolute path). */
  | 'STORAGE_ARCHIVE_PATH_ESCAPE'
  /** An archive or a folder to pack holds a symlink, hard link, device or other special entry. */
  | 'STORAGE_ARCHIVE_UNSUPPORTED_ENTRY'
  /** A tar header is corrupt (checksum, size field, premature end). */
  | 'STORAGE_ARCHIVE_CORRUPT'
  /** The archive exceeds the caller's bound on bytes or entries. */
  | 'STORAGE_ARCHIVE_TOO_LARGE'
  /** A path is too long for ustar (name 100 + prefix 155). */
  | 'STORAGE_ARCHIVE_NAME_TOO_LONG'
  /** The unpack target already exists and is not an empty folder, or an entry is duplicated. */
  | 'STORAGE_ARCHIVE_TARGET_EXISTS'
  /** A file changed size while it was being packed. */
  | 'STORAGE_ARCHIVE_FILE_CHANGED'
  /** No key is stored for this dataset. */
  | 'STORAGE_KEY_NOT_FOUND'
  /** A key file is unreadable or malformed. */
  | 'STORAGE_KEY_CORRUPT'
  /** Fetching content by CID failed: aborted, a block missing offline, not a file. */
  | 'STORAGE_FETCH_FAILED'
  /** A fetch by CID received no byte for its stall bound: the peers that had it went away, or nobody has it. */
  | 'STORAGE_FETCH_STALLED'
  /** A fetch by CID did not end within its whole-fetch bound (too slow for its size). */
  | 'STORAGE_FETCH_TIMEOUT'
  /** Content fetched by CID is larger than the caller's bound (from its root's declared size, or its bytes). */
  | 'STORAGE_CONTENT_TOO_LARGE'
  /** Adding content to Helia failed. */
  | 'STORAGE_ADD_FAILED'
  /** The key-release exchange failed on the wire (timeout, oversize, malformed response). */
  | 'KEY_RELEASE_PROTOCOL_ERROR'
  /** The dataset owner refused to release the key; `details.code` holds the refusal code. */
  | 'KEY_RELEASE_REFUSED'
  /** A dataset path to publish is missing, unreadable, not absolute, or neither a file nor a folder. */
  | 'DATASET_PATH_INVALID'
  /** No peer that answers for the dataset owner's address gave a key (none found, none reachable). */
  | 'DATASET_OWNER_UNREACHABLE'
  /** A released key does not open the dataset's ciphertext (a wrong peer answered for the owner). */
  | 'DATASET_KEY_MISMATCH'
  /** The dataset is not this node's (unpublish of someone else's dataset). */
  | 'DATASET_NOT_OWNED'
  // the result digest's codes keep their worker names: failure reports carry them to requesters
  /** computed.json is not valid JSON or its deterministic-output-path is not a string. */
  | 'WORKER_DIGEST_BAD_COMPUTED'
  /** computed.json names a path outside the output directory. */
  | 'WORKER_DIGEST_PATH_ESCAPE'
  /** computed.json names a path that does not exist. */
  | 'WORKER_DIGEST_PATH_MISSING'
  /** The output holds a symbolic link or a special file, which a digest refuses. */
  | 'WORKER_DIGEST_UNSUPPORTED_ENTRY'

/** A typed error of the storage module. */
export class StorageError extends IexecError<StorageErrorCode> {}
