import { IexecError } from '../common/errors.js'

/** Codes of the config module: callers and tests branch on these. */
export type ConfigErrorCode =
  /** config.json (or an override) fails validation; `details.field` names the field */
  | 'CONFIG_INVALID'
  /** a data dir file exists but cannot be read or parsed */
  | 'DATA_DIR_CORRUPT'
  /** the data dir has not been initialised (no config.json / keys) */
  | 'DATA_DIR_NOT_INITIALIZED'
  /** the wallet is an encrypted keystore and no password was given */
  | 'WALLET_LOCKED'
  /** the password does not decrypt the keystore */
  | 'WALLET_BAD_PASSWORD'
  /** a new encrypted wallet needs a password */
  | 'PASSWORD_REQUIRED'
  /** wallet create / import: the data dir already has a wallet (never overwritten) */
  | 'WALLET_EXISTS'
  /** wallet import: the file is not a standard Ethereum JSON keystore */
  | 'KEYSTORE_MALFORMED'
  /** wallet import: the keystore's password does not decrypt it */
  | 'KEYSTORE_BAD_PASSWORD'
  /** wallet import: the private key file is not 0x and 64 hex digits of a valid secp256k1 key */
  | 'PRIVATE_KEY_MALFORMED'

export class ConfigError extends IexecError<ConfigErrorCode> {}
