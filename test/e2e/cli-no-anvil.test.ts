import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { assertBuilt, jsonError, runCli } from './cli-helpers.js'

/**
 * An install without the optional anvil package (any platform but Linux
 * x86-64), simulated with IEXEC_P2P_ANVIL_PACKAGE=off and a PATH without
 * anvil: the local-chain commands say so with a code, before writing
 * anything. (.ci/run checks a real `npm ci --omit=optional` install.)
 */
describe('e2e: no anvil on this platform (issue 24)', function () {
  this.timeout(120_000)
  let dir: string
  const env = { ...process.env, IEXEC_P2P_ANVIL_PACKAGE: 'off', PATH: '/nonexistent-bin' }
  delete (env as Record<string, unknown>).IEXEC_P2P_ANVIL

  before(async () => {
    assertBuilt()
    dir = await mkdtemp(join(tmpdir(), 'iexec-e2e-noanvil-'))
  })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  for (const cmd of [['swarm', 'up'], ['quickstart', '--once']]) {
    it(`${cmd.join(' ')}: LOCAL_CHAIN_UNAVAILABLE at once, the swarm dir left empty`, async () => {
      const swarmDir = join(dir, cmd[0])
      const r = await runCli([...cmd, '--dir', swarmDir, '--json'], 60_000, env)
      assert.equal(r.code, 1, r.stderr)
      assert.equal(jsonError(r).code, 'LOCAL_CHAIN_UNAVAILABLE')
      assert.ok(!existsSync(swarmDir) || (await readdir(swarmDir)).length === 0, 'nothing written')
      const human = await runCli([...cmd, '--dir', swarmDir], 60_000, env)
      assert.equal(human.code, 1)
      assert.match(human.stderr, /Linux x86-64.*anvil.*PATH.*\(LOCAL_CHAIN_UNAVAILABLE\)\n$/)
    })
  }
})
