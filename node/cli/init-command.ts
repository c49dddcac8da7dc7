import { resolve } from 'node:path'
import { defaultDataDir } from '../config/paths.js'
import { printJson, type CliIo } from './output.js'
import { resolvePassword } from './parse.js'

export interface InitCommandOptions {
  dataDir?: string
  passwordFile?: string
  devUnprotectedKey?: boolean
  json?: boolean
}

/** `iexec-p2p init`: creates the data dir (keys, wallet, config, API token); idempotent. */
export async function initCommand (io: CliIo, opts: InitCommandOptions): Promise<void> {
  const dataDir = resolve(opts.dataDir ?? defaultDataDir())
  const password = await resolvePassword(opts.passwordFile)
  // loaded here, not at CLI start: ethers and libp2p crypto cost ~0.5 s to import
  const { initDataDir } = await import('../config/index.js')
  const result = await initDataDir({
    dataDir,
    ...(password !== undefined ? { password } : {}),
    ...(opts.devUnprotectedKey === true ? { devUnprotectedKey: true } : {})
  })
  if (opts.json === true) {
    printJson(io, result)
    return
  }
  io.out(`${result.created ? 'initialised' : 'already initialised:'} ${result.dataDir}\n`)
  io.out(`peer id  ${result.peerId}\naddress  ${result.address}\n`)
  if (result.unprotected) io.err('iexec-p2p: warning: the wallet key is stored unprotected (dev only): do not hold real funds with it\n')
}
