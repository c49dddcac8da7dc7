import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Signature, Transaction, Wallet } from 'ethers'
import { signTransaction } from '../../../node/chain/raw-tx.js'
import type { UnsignedTx } from '../../../node/chain/raw-tx.js'
import { isIexecError } from '../../../node/common/errors.js'

const hex = (n: number): string => '0x' + randomBytes(n).toString('hex')
const big = (bytes: number): bigint => (bytes === 0 ? 0n : BigInt(hex(bytes)))
const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)]

/** The same transaction signed by ethers (its Transaction and SigningKey). */
function byEthers (tx: UnsignedTx, wallet: Pick<Wallet, 'signingKey'>): { serialized: string, hash: string } {
  const t = Transaction.from({
    to: tx.to,
    data: tx.data,
    value: tx.value,
    gasLimit: tx.gasLimit,
    nonce: tx.nonce,
    chainId: tx.chainId,
    ...('maxFeePerGas' in tx.fees ? { type: 2, ...tx.fees } : { type: 0, gasPrice: tx.fees.gasPrice })
  })
  t.signature = Signature.from(wallet.signingKey.sign(t.unsignedHash))
  return { serialized: t.serialized, hash: t.hash as string }
}

describe('chain: raw transactions', () => {
  it('signs and serializes both types byte for byte as ethers does, on random fields and calldata of every RLP length class', () => {
    for (let i = 0; i < 200; i++) {
      const wallet = Wallet.createRandom()
      const key = Buffer.from(wallet.privateKey.slice(2), 'hex')
      const dataBytes = pick([0, 1, 2, 55, 56, 57, 255, 256, 1024, 70_000])
      let data = hex(dataBytes)
      // a single byte below 0x80 is its own RLP encoding
      if (dataBytes === 1 && i % 2 === 0) data = '0x' + (i % 0x80).toString(16).padStart(2, '0')
      const priority = big(pick([0, 1, 4]))
      const tx: UnsignedTx = {
        chainId: pick([1, 31337, 134, 2 ** 31 - 1]),
        nonce: pick([0, 1, 127, 128, 255, 256, 65_535, 2 ** 31]),
        gasLimit: big(pick([0, 1, 3, 8])),
        to: hex(20),
        value: big(pick([0, 1, 9, 32])),
        data,
        fees: i % 3 === 0 ? { gasPrice: big(pick([0, 1, 5, 12])) } : { maxFeePerGas: priority + big(pick([0, 1, 6, 12])), maxPriorityFeePerGas: priority }
      }
      assert.deepEqual(signTransaction(tx, key), byEthers(tx, wallet), JSON.stringify({ ...tx, data: `${dataBytes} bytes`, gasLimit: String(tx.gasLimit), value: String(tx.value), fees: Object.fromEntries(Object.entries(tx.fees).map(([k, v]) => [k, String(v)])) }))
      assert.equal(Transaction.from(signTransaction(tx, key).serialized).from, wallet.address, 'ethers parses it back to its signer')
    }
  })

  it('refuses a malformed recipient or calldata with INVALID_ARGUMENT', () => {
    const key = randomBytes(32)
    const base: UnsignedTx = { chainId: 1, nonce: 0, gasLimit: 21_000n, to: hex(20), value: 0n, data: '0x', fees: { gasPrice: 1n } }
    for (const bad of [{ to: hex(19) }, { to: '0x' + 'zz'.repeat(20) }, { data: '0x123' }, { data: '0x12zz' }, { data: 'abcd' }]) {
      assert.throws(() => signTransaction({ ...base, ...bad }, key), (err: unknown) => isIexecError(err, 'INVALID_ARGUMENT'), JSON.stringify(bad))
    }
  })
})
