/**
 * EIP-712 typed data under the hub's domain: hashing, signing and the one
 * strict signature recovery every signed type goes through (hub types,
 * cancels, key requests, failure reports, exec-peer proofs).
 *
 * Recovery is secp256k1.ts's recoverDigestSigner, as strict as the hub
 * (OpenZeppelin's ECDSA.tryRecover): 65 bytes, v 27 or 28, low s. A
 * signature the hub would refuse is refused for every type alike
 * (EIP712_INVALID_SIGNATURE), where ethers' verifyTypedData would accept
 * a high-s twin, another v or a 64-byte compact form.
 *
 * Signing: an ethers Wallet's key signs the digest here (the same
 * deterministic signature ethers would make, faster); any other signer
 * gets the typed data.
 *
 * @example
 * ```ts
 * const domain = hubDomain(31337, hubAddress)
 * const signed = await signOrder(wallet, domain, 'AppOrder', appOrder)
 * const signer = recoverOrderSigner(domain, 'AppOrder', appOrder, signed.sign)
 * ```
 */
import { TypedDataEncoder, id, isAddress, keccak256, toUtf8Bytes } from 'ethers'
import type { TypedDataDomain, TypedDataField } from 'ethers'
import { ProtocolError } from './errors.js'
import { privateKeyOf, recoverDigestSigner, signDigest } from './secp256k1.js'
import { HUB_TYPES, typeString, validateTyped } from './hub-types.js'
import type { Authorization, Eip712ErrorCode, HubDomain, OrderByKind, OrderKind, Signed } from './hub-types.js'

/** The hub's domain as ethers takes it. */
export function toEthersDomain (domain: HubDomain): TypedDataDomain {
  return { name: domain.name, version: domain.version, chainId: domain.chainId, verifyingContract: domain.verifyingContract }
}

/** Anything that signs EIP-712 typed data (an ethers Wallet or Signer). */
export interface TypedDataSigner {
  signTypedData: (domain: TypedDataDomain, types: Record<string, TypedDataField[]>, value: Record<string, unknown>) => Promise<string>
}

/** The EIP-712 digest of a value of `types` under the hub's domain (ethers' encoder: for the types outside HUB_TYPES). */
export function hashTypedData (domain: HubDomain, types: Record<string, TypedDataField[]>, value: Record<string, unknown>): string {
  return TypedDataEncoder.hash(toEthersDomain(domain), types, value)
}

/** Signs `digest`, the EIP-712 digest of `value`: here with a Wallet's key, else by the signer's signTypedData. */
async function signDigestOrTyped (signer: TypedDataSigner, digest: string, domain: HubDomain, types: Record<string, TypedDataField[]>, value: () => Record<string, unknown>): Promise<string> {
  const key = privateKeyOf(signer)
  if (key !== undefined) {
    try {
      return signDigest(key, digest)
    } finally {
      key.fill(0)
    }
  }
  return await signer.signTypedData(toEthersDomain(domain), types, value())
}

/** Signs a value of `types` under the hub's domain. */
export async function signTypedData (signer: TypedDataSigner, domain: HubDomain, types: Record<string, TypedDataField[]>, value: Record<string, unknown>): Promise<string> {
  return await signDigestOrTyped(signer, hashTypedData(domain, types, value), domain, types, () => value)
}

/**
 * The address that signed a value of `types` under the hub's domain.
 * @throws ProtocolError EIP712_INVALID_SIGNATURE when the signature is malformed, malleable (high s), has another v, or recovers nothing
 */
export function recoverTypedDataSigner (domain: HubDomain, types: Record<string, TypedDataField[]>, value: Record<string, unknown>, sign: string): string {
  return recoverDigestSigner(hashTypedData(domain, types, value), sign)
}

/** Keeps only the typed fields (a `Signed<T>` may be passed: `sign` is not part of the hash). */
function typedValue<K extends OrderKind | 'Authorization'> (kind: K, value: Record<string, unknown>): Record<string, unknown> {
  validateTyped(kind, value)
  const out: Record<string, unknown> = {}
  for (const { name } of HUB_TYPES[kind]) out[name] = value[name]
  return out
}

/*
 * EIP-712 hashing, done here rather than by ethers' TypedDataEncoder: the
 * types are fixed (HUB_TYPES), so each struct is one buffer of 32-byte
 * words, typeHash first, hashed once; the domain separator is computed once
 * per domain. TypedDataEncoder rebuilds its encoder for every call, several
 * times slower (`npm run bench -- signatures`). A unit test checks both agree on
 * every kind, and the contract tests check the hub agrees.
 */
const TYPE_HASH = Object.fromEntries(Object.keys(HUB_TYPES).map((k) => [k, Buffer.from(id(typeString(k as OrderKind)).slice(2), 'hex')])) as Record<OrderKind | 'Authorization', Buffer>
const DOMAIN_TYPE_HASH = Buffer.from(id('EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)').slice(2), 'hex')
const domainSeparators = new Map<string, Buffer>()

function putUint (out: Buffer, at: number, v: bigint): void {
  out.write(v.toString(16).padStart(64, '0'), at, 32, 'hex')
}

/** `keccak256(domainSeparator ‖ ...)`'s first part, cached (a node has one domain). */
function domainSeparator (domain: HubDomain): Buffer {
  const key = `${domain.name}\u0000${domain.version}\u0000${domain.chainId}\u0000${domain.verifyingContract.toLowerCase()}`
  let sep = domainSeparators.get(key)
  if (sep === undefined) {
    if (!isAddress(domain.verifyingContract)) throw new ProtocolError<Eip712ErrorCode>('EIP712_INVALID_DOMAIN', 'verifyingContract is not an address')
    const buf = Buffer.alloc(32 * 5)
    DOMAIN_TYPE_HASH.copy(buf, 0)
    buf.write(keccak256(toUtf8Bytes(domain.name)).slice(2), 32, 32, 'hex')
    buf.write(keccak256(toUtf8Bytes(domain.version)).slice(2), 64, 32, 'hex')
    putUint(buf, 96, BigInt(domain.chainId))
    buf.write(domain.verifyingContract.slice(2), 140, 20, 'hex')
    sep = Buffer.from(keccak256(buf).slice(2), 'hex')
    // bounded: a node sees one domain, tests a few
    if (domainSeparators.size >= 64) domainSeparators.clear()
    domainSeparators.set(key, sep)
  }
  return sep
}

/** The EIP-712 digest `keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(value))` of a hub type. */
export function hubTypedDigest (domain: HubDomain, kind: OrderKind | 'Authorization', value: Record<string, unknown>): string {
  validateTyped(kind, value)
  const fields = HUB_TYPES[kind]
  const struct = Buffer.alloc(32 * (fields.length + 1))
  TYPE_HASH[kind].copy(struct, 0)
  for (const [i, { name, type }] of fields.entries()) {
    const at = 32 * (i + 1)
    const v = value[name]
    switch (type) {
      case 'address': struct.write((v as string).slice(2), at + 12, 20, 'hex'); break
      case 'bytes32': struct.write((v as string).slice(2), at, 32, 'hex'); break
      case 'uint256': putUint(struct, at, v as bigint); break
      case 'string': struct.write(keccak256(toUtf8Bytes(v as string)).slice(2), at, 32, 'hex'); break
      default: throw new ProtocolError<Eip712ErrorCode>('EIP712_INVALID_ORDER', `unsupported field type ${type}`)
    }
  }
  const outer = Buffer.alloc(66)
  outer[0] = 0x19
  outer[1] = 0x01
  domainSeparator(domain).copy(outer, 2)
  outer.write(keccak256(struct).slice(2), 34, 32, 'hex')
  return keccak256(outer)
}

/** Signs a hub type (HUB_TYPES' fast digest). */
async function signTyped (signer: TypedDataSigner, domain: HubDomain, kind: OrderKind | 'Authorization', value: Record<string, unknown>): Promise<string> {
  return await signDigestOrTyped(signer, hubTypedDigest(domain, kind, value), domain, { [kind]: HUB_TYPES[kind] }, () => typedValue(kind, value))
}

/** Signs an order or bid; returns it with its `sign` field. */
export async function signOrder<K extends OrderKind> (signer: TypedDataSigner, domain: HubDomain, kind: K, order: OrderByKind[K]): Promise<Signed<OrderByKind[K]>> {
  const sign = await signTyped(signer, domain, kind, order as unknown as Record<string, unknown>)
  return { ...order, sign }
}

/** The address that signed an order; throws EIP712_INVALID_SIGNATURE on a signature the hub would refuse. */
export function recoverOrderSigner<K extends OrderKind> (domain: HubDomain, kind: K, order: OrderByKind[K], sign: string): string {
  return recoverDigestSigner(hubTypedDigest(domain, kind, order as unknown as Record<string, unknown>), sign)
}

/** The digest the scheduler signs to authorize `worker` on `taskid`. */
export function hashAuthorization (domain: HubDomain, auth: Authorization): string {
  return hubTypedDigest(domain, 'Authorization', auth as unknown as Record<string, unknown>)
}

/** The scheduler signs an authorization for one worker and one task. */
export async function signAuthorization (signer: TypedDataSigner, domain: HubDomain, auth: Authorization): Promise<string> {
  return await signTyped(signer, domain, 'Authorization', auth as unknown as Record<string, unknown>)
}

export function recoverAuthorizationSigner (domain: HubDomain, auth: Authorization, sign: string): string {
  return recoverDigestSigner(hashAuthorization(domain, auth), sign)
}
