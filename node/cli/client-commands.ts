import { readFile } from 'node:fs/promises'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ApiClient, verifyApiIdentity } from '../api/index.js'
import type { ResourceQuery } from '../api/index.js'
import { dataDirPaths, defaultDataDir } from '../config/paths.js'
import { CliError, UsageError } from './errors.js'
import { printJson, table, type CliIo } from './output.js'

/** Options every client command takes. */
export interface ClientCommandOptions {
  api?: string
  tokenFile?: string
  dataDir?: string
  json?: boolean
}

export function parseApiUrlOption (raw: string): string {
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    throw new UsageError('CLI_BAD_OPTION', `--api must be a URL like http://127.0.0.1:5081, got "${raw}"`)
  }
  if (u.protocol !== 'http:') throw new UsageError('CLI_BAD_OPTION', `--api must be an http:// URL, got "${raw}"`)
  return u.origin
}

/**
 * The API client for a client command: URL from --api or the running node's
 * <data-dir>/api.json, token from --token-file or <data-dir>/api-token.
 */
export async function clientFor (opts: ClientCommandOptions): Promise<ApiClient> {
  const dataDir = opts.dataDir ?? defaultDataDir()
  const paths = dataDirPaths(dataDir)
  let url: string
  if (opts.api !== undefined) {
    url = parseApiUrlOption(opts.api)
  } else {
    url = await readApiUrl(paths.apiInfo, dataDir)
    // api.json may be stale (a node killed by SIGKILL leaves it) and its port another process's:
    // that process must prove it holds this data dir's peer key before it gets the token
    await verifyApiIdentity(url, await expectedPeerId(paths.peerKey, paths.apiInfo))
  }
  const tokenFile = opts.tokenFile ?? paths.apiToken
  let token: string
  try {
    token = (await readFile(tokenFile, 'utf8')).trim()
  } catch (err) {
    throw new CliError('API_TOKEN_MISSING', `cannot read the API token file ${tokenFile} (${(err as NodeJS.ErrnoException).code ?? String(err)}): pass --token-file or --data-dir`, { file: tokenFile })
  }
  if (token.length === 0) throw new CliError('API_TOKEN_MISSING', `the API token file ${tokenFile} is empty`, { file: tokenFile })
  return new ApiClient(url, token)
}

/**
 * The peer id the node of a data dir has: from its peer key (what the node
 * signs with), else from api.json (written by that node) when the key file
 * cannot be read by this user.
 */
async function expectedPeerId (peerKeyFile: string, apiInfoFile: string): Promise<string> {
  try {
    return peerIdFromPrivateKey(privateKeyFromProtobuf(await readFile(peerKeyFile))).toString()
  } catch {
    try {
      const info = JSON.parse(await readFile(apiInfoFile, 'utf8')) as { peerId?: unknown }
      if (typeof info.peerId === 'string') return info.peerId
    } catch {}
  }
  throw new CliError('NODE_NOT_RUNNING', `neither ${peerKeyFile} nor ${apiInfoFile} names the node's peer id; pass --api URL`, { file: apiInfoFile })
}

async function readApiUrl (file: string, dataDir: string): Promise<string> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    throw new CliError('NODE_NOT_RUNNING', `no running node for data dir ${dataDir} (no api.json): start one with \`iexec-p2p start\`, or pass --api URL`, { dataDir })
  }
  try {
    const info = JSON.parse(text) as { url?: unknown }
    if (typeof info.url === 'string') return parseApiUrlOption(info.url)
  } catch {
    // fall through to the error below
  }
  throw new CliError('NODE_NOT_RUNNING', `${file} does not hold the node's API URL; pass --api URL`, { file })
}

export async function statusCommand (io: CliIo, opts: ClientCommandOptions): Promise<void> {
  const api = await clientFor(opts)
  const s = await api.status()
  if (opts.json === true) {
    printJson(io, s)
    return
  }
  io.out([
    `peer id      ${s.peerId}`,
    `address      ${s.address}`,
    `role         ${s.role}`,
    `version      ${s.version}`,
    `connections  ${s.connections}`,
    ...(s.nat !== undefined ? [`reachability ${s.nat.reachability}${s.nat.relayServer ? ' (serving relays)' : ''}`] : []),
    ...(s.nat?.relayAddrs ?? []).map((m, i) => `${i === 0 ? 'via relay   ' : '            '} ${m}`),
    `api          ${api.url}`,
    ...s.multiaddrs.map((m, i) => `${i === 0 ? 'listening   ' : '            '} ${m}`)
  ].join('\n') + '\n')
}

export async function peersCommand (io: CliIo, opts: ClientCommandOptions): Promise<void> {
  const api = await clientFor(opts)
  const peers = await api.peers()
  if (opts.json === true) {
    printJson(io, peers)
    return
  }
  if (peers.length === 0) {
    io.out('no peers connected\n')
    return
  }
  io.out(table(['PEER ID', 'LATENCY', 'LINK', 'ADDRESS'], peers.map((p) => [
    p.peerId,
    p.latencyMs === null ? '-' : `${p.latencyMs.toFixed(1)} ms`,
    p.limited === true ? 'relayed' : 'direct',
    p.multiaddrs[0] ?? '-'
  ])))
}

export async function resourcesCommand (io: CliIo, opts: ClientCommandOptions & { query: ResourceQuery }): Promise<void> {
  const api = await clientFor(opts)
  const list = await api.resources(opts.query)
  if (opts.json === true) {
    printJson(io, list)
    return
  }
  if (list.length === 0) {
    io.out('no provider found in the DHT for this query\n')
    return
  }
  io.out(table(['PEER ID', 'CPUS', 'MEMORY', 'CATEGORY', 'PRICE FLOOR', 'EXECUTORS', 'TAGS'], list.map((r) => [
    r.peerId,
    String(r.cpus),
    `${r.memoryMb} MB`,
    String(r.category),
    `${r.priceFloor} nRLC`,
    r.executors.join(','),
    r.tags.length > 0 ? r.tags.join(',') : '-'
  ])))
}

export async function shutdownCommand (io: CliIo, opts: ClientCommandOptions): Promise<void> {
  const api = await clientFor(opts)
  await api.shutdown()
  if (opts.json === true) printJson(io, { ok: true, api: api.url })
  else io.out(`the node at ${api.url} is stopping\n`)
}
