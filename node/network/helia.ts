import { createHeliaLight } from 'helia'
import type { HeliaInit } from 'helia'
import { withBitswap } from '@helia/bitswap'
import { withHTTP } from '@helia/http'
import type { HTTPOptions } from '@helia/http'
import { withLibp2pLight } from '@helia/libp2p'
import type { CreateLibp2pOptions, HeliaWithLibp2p } from '@helia/libp2p'
import type { ServiceMap } from '@libp2p/interface'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import * as json from 'multiformats/codecs/json'
import { sha512 } from 'multiformats/hashes/sha2'

/**
 * Helia's `createHelia` for a libp2p config that sets every key of Helia's
 * public-IPFS default (addresses, transports, encrypters, muxers, discovery,
 * services): the same node (codecs, hashers, HTTP block broker, libp2p,
 * bitswap, in createHelia's order), without calling `libp2pDefaults`, whose
 * options this config replaces wholesale anyway. A bundle (build-bundle.ts)
 * then leaves out what only those defaults use (WebRTC, TLS, auto-TLS and its
 * ACME client, delegated routing, HTTP over libp2p), which a node would
 * otherwise load and evaluate at each start.
 */
export function createSwarmHelia<M extends ServiceMap> (init: HeliaInit & { libp2p: CreateLibp2pOptions<M>, http?: HTTPOptions }): HeliaWithLibp2p<M> {
  const { libp2p, http, ...rest } = init
  const base = createHeliaLight({ ...rest, codecs: [dagCbor, dagJson, json, ...(rest.codecs ?? [])], hashers: [sha512, ...(rest.hashers ?? [])] })
  return withBitswap(withLibp2pLight(withHTTP(base, http), libp2p))
}
