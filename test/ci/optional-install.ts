/**
 * CI check (issue 24): an install without the optional anvil package (what
 * `npm ci` gives on any platform but Linux x86-64) builds, says
 * LOCAL_CHAIN_UNAVAILABLE for a local chain, and runs a node that joins the
 * chain of another process: anvil from this checkout's install, the hub
 * deployed by the copy's CLI, the node funded, deposited and shown.
 * Run from the repo root: node --import tsx test/ci/optional-install.ts
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JsonRpcProvider, NonceManager, Wallet, parseEther } from 'ethers'
import { RLC__factory } from '../../contracts-abi/index.js'
import { startLocalChain, ANVIL_PACKAGE, type LocalChain } from '../../node/chain/local-chain.js'

const STEP_TIMEOUT_MS = 300_000

function fail (msg: string): never {
  throw new Error(`optional-install check: ${msg}`)
}

function run (cmd: string, args: string[], opts: { cwd?: string, env?: NodeJS.ProcessEnv, timeoutMs?: number } = {}): { code: number | null, stdout: string, stderr: string } {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, encoding: 'utf8', timeout: opts.timeoutMs ?? STEP_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 })
  if (r.error !== undefined) fail(`${cmd} ${args.join(' ')}: ${r.error.message}`)
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

async function main (): Promise<void> {
  const repo = process.cwd()
  const tmp = await mkdtemp(join(tmpdir(), 'iexec-optional-install-'))
  let chain: LocalChain | undefined
  let node: ChildProcess | undefined
  try {
    // a copy of the tracked files, as a user's clone would be
    const files = run('git', ['ls-files', '-z'], { cwd: repo }).stdout.split('\0').filter((f) => f !== '' && existsSync(join(repo, f)))
    const tar = spawnSync('tar', ['-cf', '-', '--null', '-T', '-'], { cwd: repo, input: files.join('\0'), maxBuffer: 1 << 30 })
    if (tar.status !== 0) fail(`tar: ${tar.stderr.toString()}`)
    const untar = spawnSync('tar', ['-xf', '-'], { cwd: tmp, input: tar.stdout })
    if (untar.status !== 0) fail(`untar: ${untar.stderr.toString()}`)

    // The lock must mark the package optional: that is what lets `npm ci`
    // skip it on a platform its os/cpu fields exclude, instead of failing.
    const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8')) as { packages: Record<string, { optional?: boolean, dependencies?: Record<string, string>, optionalDependencies?: Record<string, string> }> }
    if (lock.packages[`node_modules/${ANVIL_PACKAGE}`]?.optional !== true) fail(`package-lock.json does not mark ${ANVIL_PACKAGE} optional`)
    if (lock.packages['']?.dependencies?.[ANVIL_PACKAGE] !== undefined || lock.packages['']?.optionalDependencies?.[ANVIL_PACKAGE] === undefined) fail(`${ANVIL_PACKAGE} must be an optionalDependency only`)
    // The install the copy gets is this one's without the anvil package.
    // `npm ci --omit=optional` cannot stand in for another platform: it also
    // drops optional native addons a node loads (node-datachannel's), which
    // npm installs on every platform for its own os and cpu.
    await mkdir(join(tmp, 'node_modules', '.bin'), { recursive: true })
    for (const entry of await readdir(join(repo, 'node_modules'))) {
      if (entry === '.bin' || entry === '.package-lock.json' || entry === ANVIL_PACKAGE.split('/')[0]) continue
      await symlink(join(repo, 'node_modules', entry), join(tmp, 'node_modules', entry))
    }
    for (const entry of await readdir(join(repo, 'node_modules', '.bin'))) {
      if (entry === 'anvil') continue
      await symlink(join(repo, 'node_modules', '.bin', entry), join(tmp, 'node_modules', '.bin', entry))
    }
    console.log(`optional-install: an install without ${ANVIL_PACKAGE} in ${tmp}; building it...`)
    const build = run('npm', ['run', 'build'], { cwd: tmp })
    if (build.code !== 0) fail(`npm run build in the copy failed:\n${build.stdout}\n${build.stderr}`)
    if (existsSync(join(tmp, 'node_modules', ANVIL_PACKAGE))) fail(`${ANVIL_PACKAGE} is in the copy's install`)
    const bin = join(tmp, 'dist', 'node', 'cli', 'bin.js')
    if (!existsSync(bin)) fail('the copy has no dist/node/cli/bin.js after npm ci')
    // no anvil anywhere for the copy's CLI: only the node's own binary on PATH
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: join(process.execPath, '..') }
    delete env.IEXEC_P2P_ANVIL
    const cli = (args: string[]): { code: number | null, stdout: string, stderr: string } => run(process.execPath, [bin, ...args], { env, cwd: tmp })

    const up = cli(['swarm', 'up', '--dir', join(tmp, 'swarm'), '--json'])
    if (up.code !== 1 || !up.stderr.includes('"LOCAL_CHAIN_UNAVAILABLE"')) fail(`swarm up without anvil: expected LOCAL_CHAIN_UNAVAILABLE, got ${up.code}: ${up.stderr}`)

    // the other process's chain: anvil from this checkout's install
    chain = await startLocalChain({ accounts: 1 })
    const keyFile = join(tmp, 'deployer.key')
    await writeFile(keyFile, `${chain.privateKeys[0]}\n`, { mode: 0o600 })
    const dep = cli(['contracts', 'deploy', '--rpc', chain.rpcUrl, '--key-file', keyFile, '--local', '--json'])
    if (dep.code !== 0) fail(`contracts deploy: ${dep.stderr}`)
    const deployed = JSON.parse(dep.stdout) as { hub: string, rlc: string, blockNumber: number }
    const dataDir = join(tmp, 'node')
    const init = cli(['init', '--data-dir', dataDir, '--dev-unprotected-key', '--rpc', chain.rpcUrl, '--hub', deployed.hub, '--from-block', String(deployed.blockNumber), '--json'])
    if (init.code !== 0) fail(`init: ${init.stderr}`)
    const address = (JSON.parse(init.stdout) as { address: string }).address

    const provider = new JsonRpcProvider(chain.rpcUrl, chain.chainId, { staticNetwork: true })
    const deployer = new NonceManager(new Wallet(chain.privateKeys[0], provider))
    await (await deployer.sendTransaction({ to: address, value: parseEther('1') })).wait()
    await (await RLC__factory.connect(deployed.rlc, deployer).mint(address, 10n ** 10n)).wait()
    provider.destroy()

    node = spawn(process.execPath, [bin, 'start', '--data-dir', dataDir, '--json'], { env, cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    node.stdout?.on('data', (d: Buffer) => { out += d.toString() })
    node.stderr?.on('data', (d: Buffer) => { err += d.toString() })
    const deadline = Date.now() + 120_000
    while (!out.includes('\n')) {
      if (node.exitCode !== null) fail(`the node exited: ${err}`)
      if (Date.now() > deadline) fail(`the node was not ready in time: ${err}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const deposit = cli(['account', 'deposit', '5RLC', '--data-dir', dataDir, '--json'])
    if (deposit.code !== 0) fail(`account deposit: ${deposit.stderr}`)
    const show = cli(['account', 'show', '--data-dir', dataDir, '--json'])
    if (show.code !== 0) fail(`account show: ${show.stderr}`)
    const account = JSON.parse(show.stdout) as { address: string, balance: string }
    if (account.address !== address || account.balance !== '5000000000') fail(`account show: ${show.stdout}`)
    const api = JSON.parse(readFileSync(join(dataDir, 'api.json'), 'utf8')) as { pid: number }
    console.log(`optional-install: ok: no ${ANVIL_PACKAGE}; swarm up says LOCAL_CHAIN_UNAVAILABLE; node pid ${api.pid} joined ${chain.rpcUrl} and deposited 5 RLC`)
  } finally {
    if (node !== undefined && node.exitCode === null) {
      const exited = new Promise((resolve) => { node?.once('exit', resolve) })
      node.kill('SIGTERM')
      const t = setTimeout(() => { node?.kill('SIGKILL') }, 15_000)
      await exited
      clearTimeout(t)
    }
    await chain?.stop()
    await rm(tmp, { recursive: true, force: true })
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err)
  process.exit(1)
})
