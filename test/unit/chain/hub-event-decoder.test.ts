import assert from 'node:assert/strict'
import { Wallet, zeroPadValue } from 'ethers'
import { hubInterface } from '../../../contracts-abi/index.js'
import { hubEventsNamed, hubEventsOfReceipt, isHubEvent } from '../../../node/chain/hub-event-decoder.js'

const HUB = Wallet.createRandom().address
const OTHER = Wallet.createRandom().address

function log (address: string, name: string, args: unknown[], index: number): { address: string, topics: string[], data: string, blockNumber: number, blockHash: string, index: number, transactionHash: string } {
  const iface = hubInterface()
  const { topics, data } = iface.encodeEventLog(name, args)
  return { address, topics, data, blockNumber: 7, blockHash: zeroPadValue('0x07', 32), index, transactionHash: zeroPadValue('0x99', 32) }
}

describe('chain: the hub receipt decoder', () => {
  const app = Wallet.createRandom().address
  const owner = Wallet.createRandom().address
  const checksum = zeroPadValue('0x01', 32)
  const receipt = {
    logs: [
      log(HUB, 'Deposit', [owner, 5n], 0),
      // a lookalike from another contract never counts
      log(OTHER, 'AppRegistered', [app, owner, 'fake', 'bafy', checksum], 1),
      log(HUB, 'AppRegistered', [app, owner, 'wordcount', 'bafyapp', checksum], 2),
      // a log the hub's ABI does not know
      { ...log(HUB, 'Deposit', [owner, 1n], 3), topics: [zeroPadValue('0xdead', 32)] }
    ]
  }

  it('decodes only the hub\'s own known logs, in order, with their positions', () => {
    const events = hubEventsOfReceipt(receipt, HUB.toLowerCase())
    assert.deepEqual(events.map((e) => [e.name, e.logIndex]), [['Deposit', 0], ['AppRegistered', 2]])
    assert.equal(events[0].blockNumber, 7)
  })

  it('finds events by name, their arguments typed', () => {
    const [registered, ...more] = hubEventsNamed(receipt, HUB, 'AppRegistered')
    assert.equal(more.length, 0)
    assert.equal(registered.args.app, app)
    assert.equal(registered.args.name, 'wordcount')
    const deposit = hubEventsOfReceipt(receipt, HUB)[0]
    assert.ok(isHubEvent(deposit, 'Deposit'))
    assert.equal(deposit.args.amount, 5n)
    assert.equal(isHubEvent(deposit, 'Withdraw'), false)
  })
})
