// Gas of every hub call on a real anvil, and per task for trust 1 (one task,
// a bag of 100) and trust 3. Writes bench-results/gas.json.
import { keccak256, toUtf8Bytes, type TransactionReceipt } from 'ethers'
import { resultHash, resultSeal, taskId } from '../../protocols/eip712.js'
import { printTable, writeResults } from './harness.js'
import { setupFixture, send, registerAssets, makeOrders, match, authorize, increaseTime, RLC_UNIT, type Fixture, type AppSetup } from '../contracts/fixture.js'

/** iExec PoCo v5's own gas report (from issue 3), for comparison */
const IEXEC = {
  matchOrders: 760_842,
  initialize: 225_507,
  contribute: 346_973,
  reveal: 78_544,
  finalize: 403_856,
  contributeAndFinalize: 642_656,
  perTaskTrust1: 1_800_000,
  perTaskBoost: 730_000
}

const digestOf = (s: string): string => keccak256(toUtf8Bytes(s))
const gas = (r: TransactionReceipt): number => Number(r.gasUsed)

/** intrinsic gas of a transaction: 21000 plus calldata (16 per non-zero byte, 4 per zero byte) */
async function intrinsic (f: Fixture, r: TransactionReceipt): Promise<number> {
  const tx = await f.provider.getTransaction(r.hash)
  const bytes = Buffer.from((tx?.data ?? '0x').slice(2), 'hex')
  let g = 21_000
  for (const b of bytes) g += b === 0 ? 4 : 16
  return g
}

async function trust1Task (f: Fixture, assets: AppSetup, label: string): Promise<{ match: number, caf: number, matchIntrinsic: number, cafIntrinsic: number }> {
  const w = f.nodes[0]
  const d = await match(f, await makeOrders(f, assets, { workers: [w], params: label }))
  const { sign } = await authorize(f, d.scheduler, w.address, d.dealid, 0)
  const r = await send(f.hub.connect(w).contributeAndFinalize(d.dealid, 0, digestOf(label), 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi', sign, '0x'))
  return { match: gas(d.receipt), caf: gas(r), matchIntrinsic: await intrinsic(f, d.receipt), cafIntrinsic: await intrinsic(f, r) }
}

export async function run (): Promise<void> {
  const f = await setupFixture({ nodes: 4 })
  try {
    const calls: Record<string, number> = {}
    const assets = await registerAssets(f)
    calls.deposit = gas(await send(f.hub.connect(f.outsider).deposit(1000n * RLC_UNIT)))
    calls.withdraw = gas(await send(f.hub.connect(f.outsider).withdraw(10n * RLC_UNIT)))
    calls.stake = gas(await send(f.hub.connect(f.outsider).stake(100n * RLC_UNIT)))
    calls.requestUnstake = gas(await send(f.hub.connect(f.outsider).requestUnstake(50n * RLC_UNIT)))
    await increaseTime(f, 61)
    calls.unstake = gas(await send(f.hub.connect(f.outsider).unstake()))
    calls.registerApp = gas(await send(f.hub.connect(f.appOwner).registerApp('app', 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi', '0x' + '11'.repeat(32))))
    calls.registerDataset = gas(await send(f.hub.connect(f.datasetOwner).registerDataset('data', 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi', '0x' + '22'.repeat(32))))
    const po = await makeOrders(f, assets)
    calls.presignAppOrder = gas(await send(f.hub.connect(f.appOwner).presignAppOrder(po.appOrder)))
    calls.cancelAppOrder = gas(await send(f.hub.connect(f.appOwner).cancelAppOrder(po.appOrder)))

    // trust 1, one task: a cold first deal (owners' balances still zero), then the steady state
    const cold = await trust1Task(f, assets, 'cold')
    const warm = await trust1Task(f, assets, 'warm')
    calls['matchOrders (trust 1, 1 bid, cold)'] = cold.match
    calls['contributeAndFinalize (cold)'] = cold.caf
    calls['matchOrders (trust 1, 1 bid)'] = warm.match
    calls.contributeAndFinalize = warm.caf
    const trust1 = warm.match + warm.caf

    // trust 1 through the long path, for comparison
    {
      const w = f.nodes[0]
      const d = await match(f, await makeOrders(f, assets, { workers: [w] }))
      const taskid = taskId(d.dealid, 0)
      calls['initialize (trust 1)'] = gas(await send(f.hub.connect(d.scheduler).initialize(d.dealid, 0)))
      const dg = digestOf('long')
      const { sign } = await authorize(f, d.scheduler, w.address, d.dealid, 0)
      calls['contribute (trust 1)'] = gas(await send(f.hub.connect(w).contribute(taskid, resultHash(taskid, dg), resultSeal(w.address, taskid, dg), sign)))
      calls['reveal (trust 1)'] = gas(await send(f.hub.connect(w).reveal(taskid, dg)))
      calls['finalize (trust 1)'] = gas(await send(f.hub.connect(d.scheduler).finalize(taskid, 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi', '0x')))
      calls['release (scheduler)'] = gas(await send(f.hub.release(d.dealid, d.scheduler.address)))
    }

    // a bag of 100 trust-1 tasks
    let bag100: number
    {
      const w = f.nodes[1]
      const d = await match(f, await makeOrders(f, assets, { workers: [w], volume: 100n }))
      calls['matchOrders (bag of 100)'] = gas(d.receipt)
      let sum = 0
      for (let i = 0; i < 100; i++) {
        const { sign } = await authorize(f, d.scheduler, w.address, d.dealid, i)
        sum += gas(await send(f.hub.connect(w).contributeAndFinalize(d.dealid, i, digestOf(`t${i}`), 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi', sign, '0x')))
      }
      calls['contributeAndFinalize (bag, mean)'] = Math.round(sum / 100)
      bag100 = Math.round((gas(d.receipt) + sum) / 100)
    }

    // the same bag committed as the worker does it: multicalls of 32 contributeAndFinalize (its maxCommitBatch)
    let bag100Batched: number
    {
      const w = f.nodes[1]
      const d = await match(f, await makeOrders(f, assets, { workers: [w], volume: 100n }))
      let sum = 0
      for (let first = 0; first < 100; first += 32) {
        const calls32: string[] = []
        for (let i = first; i < Math.min(100, first + 32); i++) {
          const { sign } = await authorize(f, d.scheduler, w.address, d.dealid, i)
          calls32.push(f.hub.interface.encodeFunctionData('contributeAndFinalize', [d.dealid, i, digestOf(`t${i}`), 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi', sign, '0x']))
        }
        sum += gas(await send(f.hub.connect(w).multicall(calls32)))
      }
      calls['contributeAndFinalize (bag, multicall of 32, mean per task)'] = Math.round(sum / 100)
      bag100Batched = Math.round((gas(d.receipt) + sum) / 100)
    }

    // trust 3 with three workers: two fresh workers agreeing reach consensus (4 * 3 > 5 * 2)
    let trust3: number
    {
      const workers = [f.nodes[0], f.nodes[1], f.nodes[2]]
      const d = await match(f, await makeOrders(f, assets, { workers, trust: 3n }))
      calls['matchOrders (trust 3, 3 bids)'] = gas(d.receipt)
      const taskid = taskId(d.dealid, 0)
      const init = gas(await send(f.hub.connect(d.scheduler).initialize(d.dealid, 0)))
      calls.initialize = init
      const dg = digestOf('t3')
      let total = gas(d.receipt) + init
      for (const [i, w] of workers.slice(0, 2).entries()) {
        const { sign } = await authorize(f, d.scheduler, w.address, d.dealid, 0)
        const g = gas(await send(f.hub.connect(w).contribute(taskid, resultHash(taskid, dg), resultSeal(w.address, taskid, dg), sign)))
        calls[i === 0 ? 'contribute' : 'contribute (reaching consensus)'] = g
        total += g
      }
      for (const w of workers.slice(0, 2)) {
        const g = gas(await send(f.hub.connect(w).reveal(taskid, dg)))
        calls.reveal = g
        total += g
      }
      const fin = gas(await send(f.hub.connect(d.scheduler).finalize(taskid, 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi', '0x')))
      calls['finalize (trust 3, 2 winners)'] = fin
      trust3 = total + fin
    }

    // failure paths
    {
      const d = await match(f, await makeOrders(f, assets, { volume: 2n }))
      await increaseTime(f, 60)
      calls.reelect = gas(await send(f.hub.reelect(d.dealid)))
      await increaseTime(f, 600)
      calls.claim = gas(await send(f.hub.claim(d.dealid, 0)))
      calls['release (worker)'] = gas(await send(f.hub.release(d.dealid, f.nodes[0].address)))
    }

    printTable('gas per call (iexec-p2p vs iExec PoCo v5)', Object.entries(calls).map(([name, g]) => {
      const base = name.split(' ')[0] as keyof typeof IEXEC
      return { call: name, gas: g, iexec: IEXEC[base] ?? '' }
    }))
    const perTask = { trust1, bag100, bag100Batched, trust3 }
    const breakdown = {
      'matchOrders: intrinsic (21000 + calldata)': warm.matchIntrinsic,
      'matchOrders: execution': warm.match - warm.matchIntrinsic,
      'contributeAndFinalize: intrinsic (21000 + calldata)': warm.cafIntrinsic,
      'contributeAndFinalize: execution': warm.caf - warm.cafIntrinsic
    }
    printTable('where the trust-1 gas goes', Object.entries(breakdown).map(([part, g]) => ({ part, gas: g })))
    printTable('gas per task', [
      { case: 'trust 1, one task (match + contributeAndFinalize)', gas: trust1, target: '< 450000', iexec: `${IEXEC.perTaskTrust1} (boost ${IEXEC.perTaskBoost})` },
      { case: 'trust 1, bag of 100 (match / 100 + contributeAndFinalize)', gas: bag100, target: '< 120000', iexec: '' },
      { case: 'trust 1, bag of 100, results in multicalls of 32', gas: bag100Batched, target: '< 120000', iexec: '' },
      { case: 'trust 3, 3 workers (match + init + 2 contribute + 2 reveal + finalize)', gas: trust3, target: '', iexec: '' }
    ])
    await writeResults('gas', { calls, perTask, breakdown, iexec: IEXEC })
  } finally {
    await f.chain.stop()
  }
}
