// The remembered address checksum (protocols/address.ts) answers as ethers
// does, for inputs it has seen and inputs it has not: lowercase, uppercase and
// valid checksums pass and come back checksummed; a wrong mixed-case checksum,
// a short or long hex string, garbage and non-strings are refused, twice.
import assert from 'node:assert/strict'
import { Wallet, getAddress, isAddress } from 'ethers'
import { checksumAddress, isAddressLike } from '../../../protocols/address.js'

describe('protocols: remembered address checksums', () => {
  it('agrees with ethers on valid and invalid addresses, first and second time', () => {
    const addr = Wallet.createRandom().address
    const lower = addr.toLowerCase()
    const upper = '0x' + lower.slice(2).toUpperCase()
    // flip the case of one letter of a checksummed address: a wrong checksum
    const i = [...addr].findIndex((c, k) => k > 1 && /[a-fA-F]/.test(c))
    const flipped = addr.slice(0, i) + (addr[i] === addr[i].toLowerCase() ? addr[i].toUpperCase() : addr[i].toLowerCase()) + addr.slice(i + 1)
    const inputs: unknown[] = [addr, lower, upper, flipped, lower.slice(0, 41), lower + '0', '0x', 'hello', '', 42, null, undefined, { address: addr }]
    for (let round = 0; round < 2; round++) {
      for (const v of inputs) {
        const ethersSays = typeof v === 'string' && isAddress(v) ? getAddress(v) : undefined
        assert.equal(checksumAddress(v), ethersSays, `${String(v)} (round ${round})`)
        assert.equal(isAddressLike(v), ethersSays !== undefined)
      }
    }
    assert.equal(checksumAddress(lower), addr)
    assert.equal(checksumAddress(flipped), undefined, 'a wrong checksum is refused')
  })

  it('stays right past its memory bound', () => {
    const addrs = Array.from({ length: 4100 }, (_, k) => '0x' + k.toString(16).padStart(40, '0'))
    for (const w of addrs) assert.equal(checksumAddress(w), getAddress(w))
    for (const w of addrs.slice(0, 10)) assert.equal(checksumAddress(w), getAddress(w))
  })
})
