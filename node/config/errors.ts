import { IexecError } from '../errors.js'

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

export class ConfigError extends IexecError<ConfigErrorCode> {}
