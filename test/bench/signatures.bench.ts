// The per-message crypto every node pays on the market's hot path: the
// EIP-712 digest of a request order, recovering its signer, signing a bid;
// protocols/eip712.ts + protocols/secp256k1.ts (WebAssembly libsecp256k1)
// against ethers (TypedDataEncoder, recoverAddress, Wallet.signTypedData).
// Medians of 7 rounds of 300 calls each, ms per call; ratio = ethers / ours.
// Writes bench-results/signatures.json.
import { TypedDataEncoder, Wallet, hexlify, randomBytes, recoverAddress } from 'ethers'
import { HUB_TYPES, ZERO_ADDRESS, ZERO_BYTES32, hashOrder, hubDomain, signOrder } from '../../protocols/eip712.js'
import type { Bid, RequestOrder } from '../../protocols/eip712.js'
import { recoverDigestSigner } from '../../protocols/secp256k1.js'
import { median, printTable, writeResults } from './harness.js'

const ROUNDS = 7
const CALLS = 300

async function perCall (fn: (i: number) => unknown): Promise<number> {
  const rounds: number[] = []
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now()
    for (let i = 0; i < CALLS; i++) await fn(i)
    rounds.push((performance.now() - t0) / CALLS)
  }
  return median(rounds)
}

export async function run (): Promise<void> {
  const wallet = Wallet.createRandom()
  const domain = hubDomain(31337, Wallet.createRandom().address)
  const ethersDomain = { name: domain.name, version: domain.version, chainId: domain.chainId, verifyingContract: domain.verifyingContract }
  const request: RequestOrder = {
    app: Wallet.createRandom().address, appmaxprice: 0n, dataset: ZERO_ADDRESS, datasetmaxprice: 0n, workerpool: ZERO_ADDRESS, workerpoolmaxprice: 10n ** 9n,
    requester: wallet.address, volume: 1n, tag: ZERO_BYTES32, category: 0n, trust: 1n, beneficiary: wallet.address, callback: ZERO_ADDRESS,
    params: '{"iexec_args":"run 1","iexec_input_files":["bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"]}', salt: hexlify(randomBytes(32))
  }
  const salts = Array.from({ length: CALLS }, () => hexlify(randomBytes(32)))
  const digest = hashOrder(domain, 'RequestOrder', request)
  const sign = (await signOrder(wallet, domain, 'RequestOrder', request)).sign
  const bid = (i: number): Bid => ({ requestHash: digest, worker: wallet.address, price: 1n, volume: 1n, salt: salts[i] })

  const rows = [
    {
      op: 'request order digest (EIP-712)',
      ethersMs: await perCall((i) => TypedDataEncoder.hash(ethersDomain, { RequestOrder: HUB_TYPES.RequestOrder }, { ...request, salt: salts[i] })),
      oursMs: await perCall((i) => hashOrder(domain, 'RequestOrder', { ...request, salt: salts[i] }))
    },
    {
      op: 'recover the signer of a digest',
      ethersMs: await perCall(() => recoverAddress(digest, sign)),
      oursMs: await perCall(() => recoverDigestSigner(digest, sign))
    },
    {
      op: 'sign a bid (digest + signature)',
      ethersMs: await perCall(async (i) => await wallet.signTypedData(ethersDomain, { Bid: HUB_TYPES.Bid }, bid(i))),
      oursMs: await perCall(async (i) => await signOrder(wallet, domain, 'Bid', bid(i)))
    }
  ].map((r) => ({ ...r, ethersMs: Number(r.ethersMs.toFixed(3)), oursMs: Number(r.oursMs.toFixed(3)), ratio: Number((r.ethersMs / r.oursMs).toFixed(1)) }))
  printTable(`market crypto per call (median of ${ROUNDS} rounds x ${CALLS} calls, ms)`, rows)
  await writeResults('signatures', { rounds: ROUNDS, callsPerRound: CALLS, ops: rows })
}
