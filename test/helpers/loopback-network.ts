import type { PrivateKey } from '@libp2p/interface'
import { createNetwork, resourceDhtRules } from '../../node/network/index.js'
import type { Network, NetworkOptions } from '../../node/network/index.js'

/**
 * A started libp2p node on loopback with the resource records' DHT rules,
 * stopped by `cleanup` (the test's after hook runs it in reverse).
 */
export async function startLoopbackNetwork (
  opts: { privateKey: PrivateKey, bootstrap: string[], swarmId: string, kBucketSize?: number },
  cleanup: Array<() => Promise<void>>
): Promise<Network> {
  const rules = resourceDhtRules()
  const options: NetworkOptions = {
    privateKey: opts.privateKey, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: opts.bootstrap, swarmId: opts.swarmId,
    ...(opts.kBucketSize !== undefined ? { kBucketSize: opts.kBucketSize } : {}),
    dhtValidators: rules.validators, dhtSelectors: rules.selectors
  }
  const net = await createNetwork(options)
  cleanup.push(async () => { await net.stop() })
  await net.start()
  return net
}
