import { IexecError } from '../common/errors.js'

export type DbErrorCode =
  /** the level store cannot be opened (e.g. another process holds its lock) */
  | 'DB_OPEN_FAILED'
  /** the level store's files are damaged (a truncated CURRENT or MANIFEST, a missing table): it does not open */
  | 'DB_CORRUPT'
  /** used after close(), or before open() */
  | 'DB_CLOSED'
  /** a stored value does not decode (corrupt or written by another version) */
  | 'DB_BAD_VALUE'
  /** a repository key or prefix is empty or contains the separator */
  | 'DB_BAD_KEY'

export class DbError extends IexecError<DbErrorCode> {}
