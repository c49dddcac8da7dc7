// protocols/eip712.ts's own EIP-712 hashing and protocols/secp256k1.ts's
// WebAssembly ECDSA against ethers (TypedDataEncoder, Wallet.signTypedData,
// verifyTypedData) on random values of every hub type: the same digests, the
// same signatures byte for byte, the same recovered signers; and recovery as
// strict as the hub (v 27 or 28, low s).
import assert from 'node:assert/strict'
import { Signature, TypedDataEncoder, Wallet, hexlify, randomBytes, verifyTypedData } from 'ethers'
import type { TypedDataDomain, TypedDataField } from 'ethers'
import { isIexecError } from '../../node/common/errors.js'
import { HUB_TYPES, hashAuthorization, hashOrder, hubDomain, recoverAuthorizationSigner, recoverOrderSigner, signAuthorization, signOrder } from '../../protocols/eip712.js'
import type { Authorization, HubDomain, OrderKind } from '../../protocols/eip712.js'
import { recoverDigestSigner, signDigest } from '../../protocols/secp256k1.js'

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

/** A random value of a hub type (addresses in mixed checksum case, uints of every size, strings with non-ASCII text). */
function randomValue (fields: TypedDataField[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const { name, type } of fields) {
    switch (type) {
      case 'address': out[name] = Wallet.createRandom().address; break
      case 'bytes32': out[name] = hexlify(randomBytes(32)); break
      case 'uint256': out[name] = BigInt(hexlify(randomBytes(1 + Math.floor(Math.random() * 32)))); break
      case 'string': out[name] = ['', 'x', '{"iexec_args":"é ü 漢字"}', 'a'.repeat(300)][Math.floor(Math.random() * 4)]; break
      default: throw new Error(`no generator for ${type}`)
    }
  }
  return out
}

const ethersDomain = (d: HubDomain): Record<string, unknown> => ({ name: d.name, version: d.version, chainId: d.chainId, verifyingContract: d.verifyingContract })

describe('protocols/eip712 fast path (against ethers)', () => {
  const wallet = Wallet.createRandom()
  const domains = [hubDomain(31337, Wallet.createRandom().address), hubDomain(1, Wallet.createRandom().address)]

  it('hashes, signs and recovers every kind as ethers does', async () => {
    for (const domain of domains) {
      for (const kind of ['AppOrder', 'DatasetOrder', 'RequestOrder', 'Bid'] as OrderKind[]) {
        for (let i = 0; i < 20; i++) {
          const value = randomValue(HUB_TYPES[kind])
          const expected = TypedDataEncoder.hash(ethersDomain(domain), { [kind]: HUB_TYPES[kind] }, value)
          assert.equal(hashOrder(domain, kind, value as never), expected, `${kind} digest`)
          const signed = await signOrder(wallet, domain, kind, value as never)
          assert.equal(signed.sign, await wallet.signTypedData(ethersDomain(domain), { [kind]: HUB_TYPES[kind] }, value), `${kind} signature`)
          assert.equal(recoverOrderSigner(domain, kind, value as never, signed.sign), verifyTypedData(ethersDomain(domain), { [kind]: HUB_TYPES[kind] }, value, signed.sign))
          assert.equal(recoverOrderSigner(domain, kind, value as never, signed.sign), wallet.address)
        }
      }
      const auth = randomValue(HUB_TYPES.Authorization) as unknown as Authorization
      assert.equal(hashAuthorization(domain, auth), TypedDataEncoder.hash(ethersDomain(domain), { Authorization: HUB_TYPES.Authorization }, auth as never))
      const sign = await signAuthorization(wallet, domain, auth)
      assert.equal(sign, await wallet.signTypedData(ethersDomain(domain), { Authorization: HUB_TYPES.Authorization }, auth as never))
      assert.equal(recoverAuthorizationSigner(domain, auth, sign), wallet.address)
    }
  })

  it('a signer that is not a Wallet signs through signTypedData', async () => {
    const calls: string[] = []
    const remote = { signTypedData: async (d: TypedDataDomain, t: Record<string, TypedDataField[]>, v: Record<string, unknown>) => { calls.push(Object.keys(t)[0]); return await wallet.signTypedData(d, t, v) } }
    const value = randomValue(HUB_TYPES.Bid)
    const signed = await signOrder(remote, domains[0], 'Bid', value as never)
    assert.deepEqual(calls, ['Bid'])
    assert.equal(recoverOrderSigner(domains[0], 'Bid', value as never, signed.sign), wallet.address)
  })

  it('recovery refuses what the hub refuses: high s, v other than 27/28, bad lengths, zero r', () => {
    const digest = hexlify(randomBytes(32))
    const good = signDigest(Buffer.from(wallet.privateKey.slice(2), 'hex'), digest)
    assert.equal(good, wallet.signingKey.sign(digest).serialized)
    assert.equal(recoverDigestSigner(digest, good), wallet.address)
    const sig = Signature.from(good)
    // the malleable twin (n - s, other v) recovers the same key: ethers takes it, the hub does not
    const highS = '0x' + sig.r.slice(2) + (N - BigInt(sig.s)).toString(16).padStart(64, '0') + (sig.v === 27 ? '1c' : '1b')
    const refused = (sign: string, what: string): void => {
      assert.throws(() => recoverDigestSigner(digest, sign), (e: unknown) => isIexecError(e, 'EIP712_INVALID_SIGNATURE'), what)
    }
    refused(highS, 'high s')
    refused(good.slice(0, -2) + '00', 'v = 0')
    refused(good.slice(0, -2) + '1d', 'v = 29')
    refused(good.slice(0, -2), '64 bytes')
    refused(good + '00', '66 bytes')
    refused('0x' + '00'.repeat(32) + good.slice(66), 'r = 0')
    refused('0x' + 'zz'.repeat(65), 'not hex')
    // a valid signature of another digest recovers another address, never throws
    assert.notEqual(recoverDigestSigner(hexlify(randomBytes(32)), good), wallet.address)
  })
})
