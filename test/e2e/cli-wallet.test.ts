import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JsonRpcProvider, NonceManager, Wallet, decryptKeystoreJson, encryptKeystoreJson, parseEther } from 'ethers'
import { RLC__factory } from '../../contracts-abi/index.js'
import { startLocalChain, type LocalChain } from '../../node/chain/local-chain.js'
import type { ContractsDeployJson } from '../../node/cli/chain-commands.js'
import type { AccountView, StakeWithdrawView, UnstakeView, WalletSendView } from '../../node/api/routes/wallet.js'
import type { WalletWriteJson } from '../../node/cli/wallet-commands.js'
import { assertBuilt, CliProcess, jsonError, runCli } from './cli-helpers.js'

const RLC = 1_000_000_000n

/**
 * A user's wallet on a chain, through the compiled CLI against a real anvil:
 * import a key into a fresh data dir, join the chain, deposit and stake, send
 * RLC and ETH, withdraw stake across the unlock delay (anvil's clock moved
 * with evm_increaseTime), export the keystore; bad input gets its code and
 * moves nothing.
 */
describe('e2e: wallet import/export/send, account show, stake withdraw (issue 24)', function () {
  this.timeout(240_000)
  let chain: LocalChain
  let provider: JsonRpcProvider
  let dir: string
  let deployed: ContractsDeployJson
  let dataDir: string
  let node: CliProcess | undefined
  const user = Wallet.createRandom()
  const recipient = Wallet.createRandom().address

  const cli = async (args: string[]): Promise<Awaited<ReturnType<typeof runCli>>> => await runCli([...args, '--data-dir', dataDir], 90_000)
  const account = async (): Promise<AccountView> => {
    const r = await cli(['account', 'show', '--json'])
    assert.equal(r.code, 0, r.stderr)
    return JSON.parse(r.stdout) as AccountView
  }
  const rpc = async (method: string, params: unknown[]): Promise<void> => { await provider.send(method, params) }

  before(async () => {
    assertBuilt()
    dir = await mkdtemp(join(tmpdir(), 'iexec-e2e-wallet-'))
    chain = await startLocalChain({ accounts: 2 })
    // no 250 ms response cache: the test reads the same balance again right after a transfer
    provider = new JsonRpcProvider(chain.rpcUrl, chain.chainId, { staticNetwork: true, cacheTimeout: -1 })
    const keyFile = join(dir, 'deployer.key')
    await writeFile(keyFile, `${chain.privateKeys[0]}\n`, { mode: 0o600 })
    const r = await runCli(['contracts', 'deploy', '--rpc', chain.rpcUrl, '--key-file', keyFile, '--local', '--json'])
    assert.equal(r.code, 0, r.stderr)
    deployed = JSON.parse(r.stdout) as ContractsDeployJson

    // the user's existing key, funded before it joins: what a faucet would do
    const deployer = new NonceManager(new Wallet(chain.privateKeys[0], provider))
    await (await deployer.sendTransaction({ to: user.address, value: parseEther('5') })).wait()
    await (await RLC__factory.connect(deployed.rlc, deployer).mint(user.address, 1000n * RLC)).wait()
  })

  after(async () => {
    await node?.stop()
    provider?.destroy()
    await chain?.stop()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it('wallet import --keystore: refused inputs change nothing; a good keystore is re-encrypted with the node password', async () => {
    dataDir = join(dir, 'node')
    const ksFile = join(dir, 'user.keystore.json')
    await writeFile(ksFile, await encryptKeystoreJson({ address: user.address, privateKey: user.privateKey }, 'keystore-pw', { scrypt: { N: 1 << 12 } }))
    const ksPw = join(dir, 'keystore.pw')
    await writeFile(ksPw, 'keystore-pw\n')
    const wrongPw = join(dir, 'wrong.pw')
    await writeFile(wrongPw, 'nope\n')
    const nodePw = join(dir, 'node.pw')
    await writeFile(nodePw, 'node-pw\n')
    const badKs = join(dir, 'bad.json')
    await writeFile(badKs, '{"version":3,"crypto":{}}')

    const cases: Array<{ args: string[], code: string, exit: number }> = [
      { args: ['--keystore', ksFile, '--keystore-password-file', wrongPw], code: 'KEYSTORE_BAD_PASSWORD', exit: 1 },
      { args: ['--keystore', badKs, '--keystore-password-file', ksPw], code: 'KEYSTORE_MALFORMED', exit: 1 },
      { args: ['--keystore', join(dir, 'missing.json'), '--keystore-password-file', ksPw], code: 'CLI_FILE_UNREADABLE', exit: 1 },
      { args: ['--keystore', ksFile, '--keystore-password-file', join(dir, 'missing.pw')], code: 'CLI_FILE_UNREADABLE', exit: 1 },
      { args: ['--keystore', ksFile], code: 'CLI_MISSING_ARGUMENT', exit: 2 },
      { args: ['--keystore', ksFile, '--keystore-password-file', ksPw, '--private-key-file', nodePw], code: 'CLI_USAGE', exit: 2 },
      { args: [], code: 'CLI_USAGE', exit: 2 },
      { args: ['--private-key-file', nodePw], code: 'PRIVATE_KEY_MALFORMED', exit: 1 }
    ]
    for (const c of cases) {
      const r = await cli(['wallet', 'import', ...c.args, '--password-file', nodePw, '--json'])
      assert.equal(r.code, c.exit, `${c.args.join(' ')}: ${r.stderr}`)
      assert.equal(jsonError(r).code, c.code, c.args.join(' '))
      assert.equal(existsSync(dataDir), false, `${c.code}: nothing written`)
    }

    const r = await cli(['wallet', 'import', '--keystore', ksFile, '--keystore-password-file', ksPw, '--password-file', nodePw, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const imported = JSON.parse(r.stdout) as WalletWriteJson
    assert.equal(imported.address, user.address)
    const stored = await readFile(join(dataDir, 'wallet.json'), 'utf8')
    assert.equal((await decryptKeystoreJson(stored, 'node-pw')).address, user.address)

    // a second import or create never replaces it
    const again = await cli(['wallet', 'create', '--password-file', nodePw, '--json'])
    assert.equal(again.code, 1)
    assert.equal(jsonError(again).code, 'WALLET_EXISTS')
    assert.equal(await readFile(join(dataDir, 'wallet.json'), 'utf8'), stored)

    const init = await cli(['init', '--password-file', nodePw, '--rpc', chain.rpcUrl, '--hub', deployed.hub, '--from-block', String(deployed.blockNumber), '--json'])
    assert.equal(init.code, 0, init.stderr)
    assert.equal((JSON.parse(init.stdout) as { address: string }).address, user.address, 'init keeps the imported wallet')
  })

  it('wallet export: the keystore opens with the node password; a wrong one is refused; --out never overwrites', async () => {
    const nodePw = join(dir, 'node.pw')
    const out = join(dir, 'export.json')
    const r = await cli(['wallet', 'export', '--password-file', nodePw, '--out', out, '--json'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal((await decryptKeystoreJson(await readFile(out, 'utf8'), 'node-pw')).privateKey, user.privateKey)
    const again = await cli(['wallet', 'export', '--password-file', nodePw, '--out', out, '--json'])
    assert.equal(jsonError(again).code, 'CLI_FILE_EXISTS')
    const wrong = await cli(['wallet', 'export', '--password-file', join(dir, 'wrong.pw'), '--json'])
    assert.equal(wrong.code, 1)
    assert.equal(jsonError(wrong).code, 'WALLET_BAD_PASSWORD')
  })

  it('a node with that wallet joins the chain: deposit, stake, account show', async () => {
    node = new CliProcess(['start', '--data-dir', dataDir, '--password-file', join(dir, 'node.pw'), '--json'])
    await node.waitFor('the ready line', () => node!.stdout.includes('\n'), 90_000)
    assert.equal((await cli(['account', 'deposit', '100RLC', '--json'])).code, 0)
    const s = await cli(['stake', '60RLC', '--json'])
    assert.equal(s.code, 0, s.stderr)
    const a = await account()
    assert.equal(a.address, user.address)
    assert.equal(a.rlc, (900n * RLC).toString())
    assert.equal(a.balance, (40n * RLC).toString())
    assert.equal(a.frozen, '0')
    assert.equal(a.stake, (60n * RLC).toString())
    assert.equal(a.pending, '0')
    assert.equal(a.unlockAt, 0)
    assert.ok(BigInt(a.eth) > 0n && BigInt(a.eth) < parseEther('5'), 'gas was paid from the imported wallet')
    const human = await cli(['account', 'show'])
    assert.match(human.stdout, /^hub balance +40 RLC \(40000000000 nRLC\)$/m)
    assert.match(human.stdout, /^pending unstake +0 RLC/m)
  })

  it('wallet send-rlc / send-eth: the recipient receives; too much, a bad address or amount moves nothing', async () => {
    const token = RLC__factory.connect(deployed.rlc, provider)
    const r = await cli(['wallet', 'send-rlc', recipient, '1.5RLC', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const sent = JSON.parse(r.stdout) as WalletSendView
    assert.equal(sent.amount, '1500000000')
    assert.equal(await token.balanceOf(recipient), 1_500_000_000n)
    assert.equal(sent.balance, (900n * RLC - 1_500_000_000n).toString())

    const e = await cli(['wallet', 'send-eth', recipient.toLowerCase(), '0.25', '--json'])
    assert.equal(e.code, 0, e.stderr)
    assert.equal(await provider.getBalance(recipient), parseEther('0.25'))
    const human = await cli(['wallet', 'send-eth', recipient, '1000wei'])
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.stdout, /^sent 0\.000000 ETH|^sent 0 ETH/m)
    assert.equal(await provider.getBalance(recipient), parseEther('0.25') + 1000n)

    const before = await account()
    const tooMuch = await cli(['wallet', 'send-rlc', recipient, '5000RLC', '--json'])
    assert.equal(tooMuch.code, 1)
    assert.equal(jsonError(tooMuch).code, 'INSUFFICIENT_FUNDS')
    const tooMuchEth = await cli(['wallet', 'send-eth', recipient, '1000', '--json'])
    assert.equal(jsonError(tooMuchEth).code, 'INSUFFICIENT_FUNDS')
    for (const args of [['send-rlc', '0x1234', '1'], ['send-eth', recipient, 'lots'], ['send-rlc', recipient, '0'], ['send-eth', recipient, '0']]) {
      const bad = await cli(['wallet', ...args, '--json'])
      assert.equal(bad.code, 2, args.join(' '))
      assert.equal(jsonError(bad).code, 'CLI_BAD_OPTION', args.join(' '))
    }
    const zero = await cli(['wallet', 'send-rlc', '0x0000000000000000000000000000000000000000', '1', '--json'])
    assert.equal(jsonError(zero).code, 'API_BAD_REQUEST')
    const after = await account()
    assert.equal(after.rlc, before.rlc, 'no RLC moved')
    assert.equal(after.eth, before.eth, 'no ETH (not even gas) spent')
    assert.equal(await token.balanceOf(recipient), 1_500_000_000n)
  })

  it('stake withdraw: out of the draw at once, unstake refused before the unlock time, accepted after it', async () => {
    const tooMuch = await cli(['stake', 'withdraw', '61RLC', '--json'])
    assert.equal(tooMuch.code, 1)
    assert.equal(jsonError(tooMuch).code, 'STAKE_INSUFFICIENT')
    const nothing = await cli(['stake', 'unstake', '--json'])
    assert.equal(jsonError(nothing).code, 'NOTHING_TO_UNSTAKE')

    const r = await cli(['stake', 'withdraw', '20RLC', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const w = JSON.parse(r.stdout) as StakeWithdrawView
    assert.equal(w.pending, (20n * RLC).toString())
    assert.equal(w.unstaked, '0')
    // the dev hub's cooldown (contracts deploy --local) is 60 s
    assert.equal(w.unlockAt - w.chainTime, 60)
    const a = await account()
    assert.equal(a.pending, (20n * RLC).toString())
    assert.equal(a.unlockAt, w.unlockAt)
    assert.equal(a.stake, (60n * RLC).toString(), 'pending stays in the stake until unstaked')
    const human = await cli(['account', 'show'])
    assert.match(human.stdout, /^unlocks at +\d{4}-\d\d-\d\dT[\d:.]+Z \(in \d+ s, chain time\)$/m)

    const early = await cli(['stake', 'unstake', '--json'])
    assert.equal(early.code, 1)
    const err = JSON.parse(early.stderr.trim()) as { error: { code: string, details?: { unlockAt?: number } } }
    assert.equal(err.error.code, 'STAKE_STILL_LOCKED')
    assert.equal(err.error.details?.unlockAt, w.unlockAt)
    assert.equal((await account()).balance, (40n * RLC).toString(), 'nothing moved')

    await rpc('evm_increaseTime', [61])
    await rpc('evm_mine', [])
    const done = await cli(['stake', 'unstake', '--json'])
    assert.equal(done.code, 0, done.stderr)
    const u = JSON.parse(done.stdout) as UnstakeView
    assert.equal(u.amount, (20n * RLC).toString())
    assert.equal(u.balance, (60n * RLC).toString())
    assert.equal(u.stake, (40n * RLC).toString())
    const end = await account()
    assert.equal(end.pending, '0')
    assert.equal(end.unlockAt, 0)

    // a request while an earlier one has unlocked returns that one first
    assert.equal((await cli(['stake', 'withdraw', '5RLC', '--json'])).code, 0)
    await rpc('evm_increaseTime', [61])
    await rpc('evm_mine', [])
    const second = await cli(['stake', 'withdraw', '5RLC'])
    assert.equal(second.code, 0, second.stderr)
    assert.match(second.stdout, /^returned 5 RLC \(5000000000 nRLC\) of an earlier, unlocked request/m)
    assert.match(second.stdout, /^unlocks at +\S+ \(in 60 s, chain time\)$/m)
    const last = await account()
    assert.equal(last.pending, (5n * RLC).toString())
    assert.equal(last.balance, (65n * RLC).toString())
    assert.equal(last.stake, (35n * RLC).toString())

    // more than the free stake once that request has unlocked: refused
    // before anything is sent, the unlocked request not returned either
    await rpc('evm_increaseTime', [61])
    await rpc('evm_mine', [])
    const refused = await cli(['stake', 'withdraw', '31RLC', '--json'])
    assert.equal(refused.code, 1)
    assert.equal(jsonError(refused).code, 'STAKE_INSUFFICIENT')
    const unchanged = await account()
    assert.equal(unchanged.pending, last.pending)
    assert.equal(unchanged.balance, last.balance)
    assert.equal(unchanged.eth, last.eth, 'no transaction sent')
  })
})
