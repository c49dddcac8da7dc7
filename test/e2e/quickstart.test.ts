import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isAlive } from '../../node/cli/processes.js'
import { assertBuilt, processesMentioning, runCli, runCommand, type RunResult } from './cli-helpers.js'

/** `-0.5 RLC` / `+0.1275 RLC` / `400.2 RLC` -> nRLC, as the earnings table prints them (formatRlc). */
function nrlc (text: string): bigint {
  const m = /^([+-]?)(\d+)(?:\.(\d{1,9}))? RLC$/.exec(text)
  assert.ok(m !== null, `an RLC amount: "${text}"`)
  const n = BigInt(m[2]) * 10n ** 9n + BigInt((m[3] ?? '').padEnd(9, '0'))
  return m[1] === '-' ? -n : n
}

/** The lines of stdout from the one that is `title` to the next blank line. */
function section (stdout: string, title: string): string[] {
  const lines = stdout.split('\n')
  const start = lines.indexOf(title)
  assert.ok(start >= 0, `stdout has a "${title}" section:\n${stdout}`)
  const end = lines.indexOf('', start)
  return lines.slice(start + 1, end < 0 ? undefined : end)
}

/**
 * The README's quick start as a user runs it: `npm start -- --once`, human
 * output (the only difference is a dir of its own). cli-market.test.ts checks
 * the same run's `--json` document; this one checks what a person reads: the
 * live progress, the two results, the earnings table, the closing lines, and
 * that `--once` leaves no process behind.
 */
describe('e2e: the README quick start, human output (npm start -- --once)', function () {
  this.timeout(360_000)
  let dir = ''
  let qs = ''
  let r: RunResult

  before(async () => {
    assertBuilt()
    dir = await mkdtemp(join(tmpdir(), 'iexec-e2e-quickstart-'))
    qs = join(dir, 'swarm')
    const t0 = Date.now()
    r = await runCommand('npm', ['start', '--', '--once', '--dir', qs], 300_000)
    console.info(`      npm start -- --once (human output): ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  })

  after(async () => {
    // a failed run may leave its swarm: stop it, then any process of this dir by its PID
    if (qs !== '' && existsSync(join(qs, 'swarm.json'))) await runCli(['swarm', 'down', '--dir', qs], 60_000).catch(() => {})
    if (qs !== '') {
      for (const pid of processesMentioning(qs)) {
        try { process.kill(pid, 'SIGKILL') } catch {}
      }
    }
    if (dir !== '') await rm(dir, { recursive: true, force: true })
  })

  it('exits 0 and prints human output, not a JSON document', () => {
    assert.equal(r.code, 0, `exit ${r.code}; stderr:\n${r.stderr}`)
    assert.doesNotMatch(r.stdout, /^\{/m, 'no --json: no JSON document on stdout')
  })

  it('live progress on stderr: swarm up, discovery, publishing, bids and deals, each task to its checked result, swarm down', () => {
    const e = r.stderr
    for (const i of [0, 1, 2, 3]) assert.match(e, new RegExp(`^swarm: node-${i} ready in \\d+\\.\\d s: 12D3KooW\\w+ http://127\\.0\\.0\\.1:\\d+$`, 'm'))
    assert.match(e, /^swarm: every node deposits 500 RLC in the hub; every provider stakes 100 RLC\.\.\.$/m)
    assert.match(e, /^quickstart: every node sees every provider \(\d+\.\d s\)$/m)
    assert.match(e, /^quickstart: node-\d publishes the app primes \(\d+ bytes, cid baf\w+\)/m)
    assert.match(e, /^quickstart: node-\d publishes the app wordcount \(\d+ bytes, cid baf\w+\)/m)
    assert.match(e, /^quickstart: node-\d publishes the dataset sample-notebook encrypted \(AES-256-GCM, cid baf\w+\)/m)
    for (const name of ['wordcount over the encrypted dataset, trust 3', 'primes up to 2000000, trust 1']) {
      assert.match(e, new RegExp(`^quickstart: node-0 \\(requester\\) asks for ${name}; providers bid\\.\\.\\.$`, 'm'))
      assert.match(e, new RegExp(`^quickstart: ${name}: deal 0x[0-9a-f]{8}… mined in \\d+\\.\\d s, scheduler 0x[0-9a-fA-F]{8}…, \\d worker\\(s\\)$`, 'm'))
      assert.match(e, new RegExp(`^quickstart: ${name}: task 0x[0-9a-f]{6}…[0-9a-f]{4}: finalized: result on the swarm$`, 'm'))
      assert.match(e, new RegExp(`^quickstart: ${name}: task 0x[0-9a-f]{6}…[0-9a-f]{4}: fetching the result baf\\w+ and checking it against the chain$`, 'm'))
    }
    // --once: the swarm is stopped at the end, after the results
    assert.match(e, /^swarm: stopping 4 node\(s\)$/m)
    assert.match(e, /^swarm: stopping anvil \(pid \d+\)$/m)
    assert.ok(e.lastIndexOf('checking it against the chain') < e.indexOf('swarm: stopping 4 node(s)'), 'the swarm stops after the last result')
  })

  it('the swarm table, the apps, the dataset, then the wordcount and primes results with their deals', async () => {
    const o = r.stdout
    const nodes = [...o.matchAll(/^node-(\d)\s+(requester|provider)\s+12D3KooW\w+\s+http:\/\/127\.0\.0\.1:\d+\s+(\d+)$/gm)]
    assert.deepEqual(nodes.map((m) => [m[1], m[2]]), [['0', 'requester'], ['1', 'provider'], ['2', 'provider'], ['3', 'provider']])
    // every process the table names is gone after --once
    for (const m of nodes) assert.equal(await isAlive(Number(m[3])), false, `node-${m[1]} (pid ${m[3]}) was stopped`)
    assert.equal(section(o, 'peers of node-0 (requester):').length, 1 + 3, 'node-0 is connected to the 3 providers')
    assert.equal(section(o, 'providers found through the DHT:').length, 1 + 3)
    const apps = section(o, 'apps (WASI modules in Helia, registered on chain):')
    assert.match(apps[1], /^primes\s+node-\d\s+0x[0-9a-fA-F]{40}\s+baf\w+\s+0\.1 RLC$/)
    assert.match(apps[2], /^wordcount\s+node-\d\s+0x[0-9a-fA-F]{40}\s+baf\w+\s+0\.1 RLC$/)
    assert.match(o, /^ {2}cid baf\w+: ciphertext only; the key is released to authorized workers only$/m)

    const sample = await readFile('examples/datasets/sample.txt', 'utf8')
    const words = sample.split(/\s+/).filter((w) => w.length > 0).length
    const wc = section(o, 'wordcount over the encrypted dataset, trust 3')
    assert.match(wc[0], /^ {2}deal 0x[0-9a-f]{64} \(mined \d+\.\d s after the request; results \d+\.\d s after the deal\)$/)
    const wcWorkers = /^ {2}scheduler node-[1-3], workers (node-[1-3](?:, node-[1-3])*)$/.exec(wc[1])
    assert.ok(wcWorkers !== null, wc[1])
    assert.ok(wcWorkers[1].split(', ').length >= 2, 'trust 3 needs at least 2 agreeing workers')
    assert.match(wc[2], /^ {2}task 0x[0-9a-f]{64} COMPLETED, result baf\w+$/)
    assert.equal(wc[3], `    | dataset lines=${sample.split('\n').length - 1} words=${words} bytes=${Buffer.byteLength(sample)}`)

    const pr = section(o, 'primes up to 2000000, trust 1')
    assert.match(pr[0], /^ {2}deal 0x[0-9a-f]{64} \(mined \d+\.\d s after the request; results \d+\.\d s after the deal\)$/)
    assert.match(pr[1], /^ {2}scheduler node-[1-3], workers node-[1-3]$/)
    assert.match(pr[2], /^ {2}task 0x[0-9a-f]{64} COMPLETED, result baf\w+$/)
    // 148933 primes below 2,000,000, the last 1999993
    assert.equal(pr[3], '    | count=148933 last=1999993')
  })

  it('the earnings table: one row per node with what it did; what the requester paid is what the others earned', () => {
    const o = r.stdout
    const rows = section(o, 'what each party earned (hub balance + stake):')
    assert.match(rows[0], /^NODE\s+ROLE\s+DID\s+EARNED\s+HUB BALANCE\s+STAKE$/)
    const parsed = rows.slice(1).map((line) => {
      const m = /^(node-\d)\s+(requester|provider)\s+(\S.*?)\s+([+-]\d+(?:\.\d+)? RLC)\s+(\d+(?:\.\d+)? RLC)\s+(\d+(?:\.\d+)? RLC)$/.exec(line)
      assert.ok(m !== null, `an earnings row: "${line}"`)
      return { node: m[1], role: m[2], did: m[3].split(', '), earned: nrlc(m[4]), stake: nrlc(m[6]) }
    })
    assert.deepEqual(parsed.map((p) => [p.node, p.role]), [['node-0', 'requester'], ['node-1', 'provider'], ['node-2', 'provider'], ['node-3', 'provider']])
    assert.deepEqual(parsed[0].did, ['requester'])
    assert.ok(parsed[0].earned < 0n, 'the requester paid')
    const roleOf = (part: string): string[] => parsed.filter((p) => p.did.includes(part)).map((p) => p.node)
    assert.equal(roleOf('primes owner').length, 1)
    assert.equal(roleOf('wordcount owner').length, 1)
    assert.equal(roleOf('dataset owner').length, 1)
    // the roles agree with the deals printed above
    const dealNodes = (title: string, what: 'scheduler' | 'workers'): string[] => {
      const line = section(o, title)[1]
      const m = /^ {2}scheduler (node-\d), workers (.+)$/.exec(line)
      assert.ok(m !== null, line)
      return what === 'scheduler' ? [m[1]] : m[2].split(', ')
    }
    const titles = ['wordcount over the encrypted dataset, trust 3', 'primes up to 2000000, trust 1']
    assert.deepEqual(roleOf('scheduler').sort(), [...new Set(titles.flatMap((t) => dealNodes(t, 'scheduler')))].sort())
    assert.deepEqual(roleOf('worker').sort(), [...new Set(titles.flatMap((t) => dealNodes(t, 'workers')))].sort())
    for (const p of parsed.slice(1)) {
      assert.ok(p.earned > 0n, `${p.node} (${p.did.join(', ')}) earned`)
      assert.equal(p.stake, 100n * 10n ** 9n, `${p.node} staked 100 RLC`)
    }
    assert.equal(parsed.reduce((s, p) => s + p.earned, 0n), 0n, 'RLC is conserved between the parties')
  })

  it('ends with the "what happened" paragraph; --once leaves no swarm and no process', () => {
    const o = r.stdout
    const table = o.indexOf('what each party earned')
    const what = o.indexOf('\nwhat happened: a libp2p swarm found its providers in the DHT;')
    assert.ok(table >= 0 && what > table, 'the paragraph follows the earnings table')
    assert.ok(o.trimEnd().endsWith('the requester fetched each result and checked it against the chain.'), `the last line of stdout:\n${o.slice(-200)}`)
    assert.doesNotMatch(o, /the swarm keeps running/, '--once does not leave the swarm running')
    assert.equal(existsSync(join(qs, 'swarm.json')), false, 'swarm down removed swarm.json')
    assert.deepEqual(processesMentioning(qs), [], 'no node and no anvil of this quick start is left')
  })
})
