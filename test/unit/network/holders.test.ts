import assert from 'node:assert/strict'
import { HolderDialer } from '../../../node/network/holders.js'
import type { HolderDialerInit } from '../../../node/network/holders.js'

const SELF = '0x00000000000000000000000000000000000000AA'

function dialer (over: Partial<HolderDialerInit> = {}): { d: HolderDialer, dialled: string[] } {
  const dialled: string[] = []
  const d = new HolderDialer({
    self: SELF,
    resolve: async (a) => a === '0xgone' ? undefined : `peer-${a}`,
    dial: async (peer, o) => {
      assert.ok(o.signal instanceof AbortSignal, 'each dial is bounded')
      if (peer === 'peer-0xdown') throw new Error('unreachable')
      dialled.push(peer)
    },
    appOwner: async (app) => app === 'mine' ? SELF.toLowerCase() : '0xowner',
    dealWorkers: async () => ['0xw1', SELF, '0xdown', '0xgone', '0xw2'],
    ...over
  })
  return { d, dialled }
}

describe('network: HolderDialer (dial whoever holds what is about to be fetched)', () => {
  it('dials an app\'s owner, not itself', async () => {
    const { d, dialled } = dialer()
    await d.reachAppHolders('app')
    await d.reachAppHolders('mine')
    assert.deepEqual(dialled, ['peer-0xowner'])
  })

  it('lets a failed dial of the app\'s owner throw (the worker logs it)', async () => {
    const { d } = dialer({ appOwner: async () => '0xdown' })
    await assert.rejects(d.reachAppHolders('app'), /unreachable/)
  })

  it('dials every other worker of a result\'s deal, skipping those it cannot reach', async () => {
    const { d, dialled } = dialer()
    await d.reachResultHolders({ dealid: '0xd' })
    assert.deepEqual(dialled.sort(), ['peer-0xw1', 'peer-0xw2'])
  })

  it('does nothing for a result without its deal', async () => {
    let asked = false
    const { d, dialled } = dialer({ dealWorkers: async () => { asked = true; return ['0xw1'] } })
    await d.reachResultHolders({})
    assert.equal(asked, false)
    assert.deepEqual(dialled, [])
  })
})
