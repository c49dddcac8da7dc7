import assert from 'node:assert/strict'
import { chmod, mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { anvilBinary } from '../../../node/chain/local-chain.js'
import { isIexecError } from '../../../node/common/errors.js'

/**
 * Where a local chain's anvil comes from (issue 24): the optional package,
 * else PATH, else a coded error; simulated here by a lookup without the
 * package and a PATH of the test's making.
 */
describe('chain: anvilBinary (the optional anvil package)', () => {
  let root: string
  let fakeAnvil: string
  let binDir: string

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'iexec-anvil-'))
    binDir = join(root, 'bin')
    await mkdir(binDir)
    fakeAnvil = join(binDir, 'anvil')
    await writeFile(fakeAnvil, '#!/bin/sh\nexit 0\n')
    await chmod(fakeAnvil, 0o755)
  })
  after(async () => { await rm(root, { recursive: true, force: true }) })

  const noPackage = (): string | undefined => undefined

  it('uses the installed package on this Linux x86-64 machine', () => {
    const p = anvilBinary({ env: { PATH: '' } })
    assert.match(p, /@foundry-rs[\\/]anvil-linux-amd64[\\/]bin[\\/]anvil$/)
  })

  it('without the package: an anvil on PATH is used; a directory or a non-executable file named anvil is not', async () => {
    const dirNamedAnvil = join(root, 'dironly')
    await mkdir(join(dirNamedAnvil, 'anvil'), { recursive: true })
    const plain = join(root, 'plain')
    await mkdir(plain)
    await writeFile(join(plain, 'anvil'), 'not executable')
    const PATH = [dirNamedAnvil, plain, '', binDir].join(delimiter)
    assert.equal(anvilBinary({ packaged: noPackage, env: { PATH } }), fakeAnvil)
  })

  it('without the package nor an anvil on PATH: LOCAL_CHAIN_UNAVAILABLE, naming the platform', () => {
    assert.throws(() => anvilBinary({ packaged: noPackage, env: { PATH: join(root, 'nothing-here') } }), (e: unknown) => {
      assert.ok(isIexecError(e, 'LOCAL_CHAIN_UNAVAILABLE'), String(e))
      assert.equal(isIexecError(e) ? e.details?.platform : undefined, process.platform)
      return true
    })
    // a package whose binary is missing counts as absent
    assert.throws(() => anvilBinary({ packaged: () => join(root, 'gone', 'anvil'), env: { PATH: '' } }), (e: unknown) => isIexecError(e, 'LOCAL_CHAIN_UNAVAILABLE'))
  })

  it('IEXEC_P2P_ANVIL_PACKAGE=off ignores the installed package; IEXEC_P2P_ANVIL names a binary and must be one', () => {
    assert.throws(() => anvilBinary({ env: { PATH: '', IEXEC_P2P_ANVIL_PACKAGE: 'off' } }), (e: unknown) => isIexecError(e, 'LOCAL_CHAIN_UNAVAILABLE'))
    assert.equal(anvilBinary({ env: { PATH: binDir, IEXEC_P2P_ANVIL_PACKAGE: 'off' } }), fakeAnvil)
    assert.equal(anvilBinary({ env: { PATH: '', IEXEC_P2P_ANVIL: fakeAnvil } }), fakeAnvil)
    assert.throws(() => anvilBinary({ env: { PATH: binDir, IEXEC_P2P_ANVIL: join(root, 'plain', 'anvil') } }), (e: unknown) => isIexecError(e, 'LOCAL_CHAIN_UNAVAILABLE'))
  })
})
