import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { assertBuilt, jsonError, runCli } from './cli-helpers.js'

const HUB = '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512'
const PEER = '12D3KooWGDB4jYhmcKjJs6Kv13stX28RYcjRUWxZjFmKiCcwnQnp'

/** The CLI's discovery and NAT flags, up to where they fail or are written (no node runs). */
describe('e2e: bootstrap from a chain profile, NAT flags refused with codes', function () {
  this.timeout(120_000)
  let dir = ''
  before(async () => {
    assertBuilt()
    dir = await mkdtemp(join(tmpdir(), 'iexec-natflags-'))
  })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('init --chain writes the profile\'s bootstrap list into a config that has none', async () => {
    const chains = join(dir, 'chains.json')
    const bootstrap = [`/ip4/45.0.0.1/tcp/4001/p2p/${PEER}`, '/dnsaddr/bootstrap.example.org']
    await writeFile(chains, JSON.stringify({ chains: { edge: { rpc: 'http://127.0.0.1:1', chainId: 31337, hub: HUB, bootstrap } } }))
    const r = await runCli(['init', '--data-dir', join(dir, 'n'), '--dev-unprotected-key', '--chain', 'edge', '--chains-file', chains, '--offline', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const cfg = JSON.parse(await readFile(join(dir, 'n', 'config.json'), 'utf8')) as { bootstrap: string[], nat: { relayServer: string } }
    assert.deepEqual(cfg.bootstrap, bootstrap)
    assert.equal(cfg.nat.relayServer, 'auto')
  })

  it('start refuses a bad --relay-server mode, a bad --announce and a bad --bootstrap before anything starts', async () => {
    const d = join(dir, 'n')
    const mode = await runCli(['start', '--data-dir', d, '--relay-server', 'maybe', '--json'])
    assert.equal(mode.code, 2, mode.stderr)
    assert.equal(jsonError(mode).code, 'CLI_BAD_OPTION')
    const ann = await runCli(['start', '--data-dir', d, '--announce', '/ip4/1.2.3.4/udp/1', '--json'])
    assert.equal(jsonError(ann).code, 'BAD_MULTIADDR')
    const boot = await runCli(['start', '--data-dir', d, '--bootstrap', '/ip4/1.2.3.4/tcp/1', '--json'])
    assert.equal(jsonError(boot).code, 'BAD_MULTIADDR')
  })
})
