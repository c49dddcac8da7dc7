import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'

const run = promisify(execFile)

/**
 * A small internet in Linux network namespaces, made and removed by a test:
 *
 * ```
 *   home1 (10.1.0.2) -- router1 [10.1.0.1 | 45.0.0.11] --\
 *                                                         bridge in `pub` (45.0.0.1: relay node, anvil)
 *   home2 (10.2.0.2) -- router2 [10.2.0.1 | 45.0.0.12] --/
 * ```
 *
 * The routers masquerade their home's traffic and drop every connection
 * the home did not open (a home router's firewall). Router 2 also forwards
 * one TCP port to its home (what UPnP or an owner's port forward does), so
 * home 2 has a public address and home 1 has none. 45.0.0.0/24 is a public
 * range (libp2p and AutoNAT treat private ranges as unreachable); nothing
 * leaves the namespaces: none of them has a route out, and none is linked
 * to the host's own namespace.
 */
export interface NatTopology {
  /** namespace names */
  pub: string
  home1: string
  home2: string
  router1: string
  router2: string
  /** IPs */
  pubIp: string
  home1Ip: string
  home2Ip: string
  router1Wan: string
  router2Wan: string
  /** the TCP port router 2 forwards to home 2 */
  forwardedPort: number
  remove: () => Promise<void>
}

async function sh (args: string[]): Promise<string> {
  const { stdout } = await run(args[0], args.slice(1), { timeout: 30_000 })
  return stdout
}

async function ns (name: string, args: string[]): Promise<string> {
  return await sh(['ip', 'netns', 'exec', name, ...args])
}

/** Why the namespaces cannot be made here, or undefined when they can. */
export async function netnsUnavailable (): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'network namespaces need root (the test runs as uid ' + String(process.getuid?.()) + ')'
  for (const tool of [['ip', '-V'], ['nft', '--version']]) {
    try {
      await sh(tool)
    } catch {
      return `\`${tool[0]}\` is missing (apt-get install iproute2 nftables; .ci/run does it)`
    }
  }
  const probe = `ixprobe${randomBytes(3).toString('hex')}`
  try {
    await sh(['ip', 'netns', 'add', probe])
  } catch (err) {
    return `cannot create a network namespace: ${(err as Error).message}`
  } finally {
    await sh(['ip', 'netns', 'del', probe]).catch(() => {})
  }
  return undefined
}

/** Makes the topology; on any failure, removes what it made and throws. */
export async function createNatTopology (forwardedPort: number): Promise<NatTopology> {
  // unique per run: two runs (or a leftover of a crashed one) never collide
  const id = `ix${randomBytes(3).toString('hex')}`
  const t: NatTopology = {
    pub: `${id}-pub`,
    home1: `${id}-h1`,
    home2: `${id}-h2`,
    router1: `${id}-r1`,
    router2: `${id}-r2`,
    pubIp: '45.0.0.1',
    home1Ip: '10.1.0.2',
    home2Ip: '10.2.0.2',
    router1Wan: '45.0.0.11',
    router2Wan: '45.0.0.12',
    forwardedPort,
    remove: async () => {
      for (const n of [t.home1, t.home2, t.router1, t.router2, t.pub]) await sh(['ip', 'netns', 'del', n]).catch(() => {})
    }
  }
  try {
    for (const n of [t.pub, t.router1, t.router2, t.home1, t.home2]) {
      await sh(['ip', 'netns', 'add', n])
      // every node's API listens on 127.0.0.1 of its namespace
      await ns(n, ['ip', 'link', 'set', 'lo', 'up'])
    }
    await ns(t.pub, ['ip', 'link', 'add', 'br0', 'type', 'bridge'])
    await ns(t.pub, ['ip', 'addr', 'add', `${t.pubIp}/24`, 'dev', 'br0'])
    await ns(t.pub, ['ip', 'link', 'set', 'br0', 'up'])
    for (const [i, router, home, wan] of [[1, t.router1, t.home1, t.router1Wan], [2, t.router2, t.home2, t.router2Wan]] as const) {
      // router <-> public bridge (veth made inside the namespaces: no name ever lives in the host's)
      await sh(['ip', 'link', 'add', 'wan', 'netns', router, 'type', 'veth', 'peer', 'name', `port${i}`, 'netns', t.pub])
      await ns(t.pub, ['ip', 'link', 'set', `port${i}`, 'master', 'br0'])
      await ns(t.pub, ['ip', 'link', 'set', `port${i}`, 'up'])
      await ns(router, ['ip', 'addr', 'add', `${wan}/24`, 'dev', 'wan'])
      await ns(router, ['ip', 'link', 'set', 'wan', 'up'])
      // router <-> home
      await sh(['ip', 'link', 'add', 'lan', 'netns', router, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', home])
      await ns(router, ['ip', 'addr', 'add', `10.${i}.0.1/24`, 'dev', 'lan'])
      await ns(router, ['ip', 'link', 'set', 'lan', 'up'])
      await ns(home, ['ip', 'addr', 'add', `10.${i}.0.2/24`, 'dev', 'eth0'])
      await ns(home, ['ip', 'link', 'set', 'eth0', 'up'])
      await ns(home, ['ip', 'route', 'add', 'default', 'via', `10.${i}.0.1`])
      await ns(router, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'])
      const rules = [
        'table ip nat {',
        '  chain pre {',
        '    type nat hook prerouting priority -100;',
        ...(i === 2 ? [`    iifname "wan" tcp dport ${forwardedPort} dnat to 10.2.0.2:${forwardedPort}`] : []),
        '  }',
        '  chain post {',
        '    type nat hook postrouting priority 100;',
        '    oifname "wan" masquerade',
        '  }',
        '}',
        'table inet fw {',
        '  chain forward {',
        '    type filter hook forward priority 0; policy drop;',
        '    ct state established,related accept',
        '    iifname "lan" oifname "wan" accept',
        ...(i === 2 ? [`    iifname "wan" oifname "lan" ip daddr 10.2.0.2 tcp dport ${forwardedPort} ct status dnat accept`] : []),
        '  }',
        '  chain input {',
        '    type filter hook input priority 0; policy drop;',
        '    iifname "lo" accept',
        '    ct state established,related accept',
        '    iifname "lan" accept',
        '  }',
        '}',
        ''
      ].join('\n')
      await new Promise<void>((resolve, reject) => {
        const child = execFile('ip', ['netns', 'exec', router, 'nft', '-f', '-'], { timeout: 30_000 }, (err) => { if (err !== null) reject(err); else resolve() })
        child.stdin?.end(rules)
      })
    }
    return t
  } catch (err) {
    await t.remove()
    throw err
  }
}
