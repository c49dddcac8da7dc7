/**
 * The hub's EIP-712 modules in one import: hub-types.ts (the domain, the
 * orders, the bid, the authorization), typed-data.ts (hashing, signing,
 * strict recovery) and ids.ts (order hashes, deal and task ids, commit
 * values). Kept because some 75 files across node/ and test/ import it;
 * new code may import the module it needs.
 */
export * from './hub-types.js'
export * from './typed-data.js'
export * from './ids.js'
