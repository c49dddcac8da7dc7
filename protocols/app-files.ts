/**
 * Names an app's output folder holds besides what the app writes: the
 * captured streams, as iExec's worker names them. The worker writes them and
 * the result digest (node/storage/digest.ts) reads them, so they are part of
 * what an app and its requester see, not of the worker alone.
 */
export const STDOUT_FILE = 'stdout.txt'
export const STDERR_FILE = 'stderr.txt'

/** Paths the app sees (iExec's conventions). */
export const IEXEC_IN = '/iexec_in'
export const IEXEC_OUT = '/iexec_out'
