import { IexecError } from '../common/errors.js'

/** `HOST:PORT` or `[IPV6]:PORT`; port 0 = any free port. @throws IexecError CONFIG_INVALID */
export function parseMetricsListen (raw: string): { host: string, port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(raw.trim())
  const port = m !== null ? Number(m[3]) : NaN
  if (m === null || port > 65535) throw new IexecError('CONFIG_INVALID', `metricsListen must be HOST:PORT (e.g. 127.0.0.1:9464), got "${raw}"`, { field: 'metricsListen' })
  return { host: m[1] ?? m[2], port }
}
