import assert from 'node:assert/strict'
import { Liveness } from '../../../node/scheduler/liveness.js'
import { W1, W2, fakeClock, knownDeal, peerOf, recordingLog, replica, task, tid } from './fakes.js'

describe('scheduler liveness: heartbeats, failures, resends', () => {
  const options = { heartbeatIntervalMs: 1_000, missedBeats: 3, resendMs: 2_000 }
  function make (): { live: Liveness, clock: ReturnType<typeof fakeClock>, lines: string[] } {
    const clock = fakeClock()
    const { log, lines } = recordingLog()
    return { live: new Liveness({ clock: clock.now, options, log }), clock, lines }
  }

  it('a failed report frees the slot and drops the replica at the next expire, with its code and count', () => {
    const { live } = make()
    const p = peerOf(W1)
    assert.equal(live.onHeartbeat({ type: 'heartbeat', tasks: [{ taskid: tid(0).toUpperCase().replace('0X', '0x'), status: 'failed', code: 'TIMEOUT' }] }, p), true)
    const rec = task(0, [replica(W1), replica(W2)])
    live.expire(knownDeal(), rec, 1_100)
    assert.equal(rec.replicas[0].dead, true)
    assert.equal(rec.replicas[0].failure, 'TIMEOUT')
    assert.equal(rec.replicas[0].failures, 1)
    assert.equal(rec.replicas[1].dead, false, 'the other worker\'s replica stays')
  })

  it('a computed report frees the slot once; a running one does not', () => {
    const { live } = make()
    const p = peerOf(W1)
    assert.equal(live.onHeartbeat({ type: 'heartbeat', tasks: [{ taskid: tid(0), status: 'running' }] }, p), false)
    assert.equal(live.isComputed(tid(0), p), false)
    assert.equal(live.onHeartbeat({ type: 'heartbeat', tasks: [{ taskid: tid(0), status: 'contributing' }] }, p), true)
    assert.equal(live.isComputed(tid(0), p), true)
    assert.equal(live.onHeartbeat({ type: 'heartbeat', tasks: [{ taskid: tid(0), status: 'contributed' }] }, p), false, 'already free')
    live.assigned(tid(0), p)
    assert.equal(live.isComputed(tid(0), p), false, 'a new assignment holds the slot again')
  })

  it('drops a replica only after missedBeats silent beats; beats keep it', () => {
    const { live, clock } = make()
    const known = knownDeal()
    const rec = task(0, [replica(W1)])
    live.expire(known, rec, 1_100)
    assert.equal(rec.replicas[0].dead, false, 'first sight starts the clock')
    clock.advance(2_500)
    live.onHeartbeat({ type: 'heartbeat', tasks: [{ taskid: tid(0), status: 'running' }] }, peerOf(W1))
    clock.advance(2_900)
    live.expire(known, rec, 1_100)
    assert.equal(rec.replicas[0].dead, false, 'a beat 2.9 s ago is within 3 beats')
    clock.advance(200)
    live.expire(known, rec, 1_100)
    assert.equal(rec.replicas[0].dead, true, '3.1 s of silence')
  })

  it('drops a pending replica a time reference after its assignment, never a contributed one', () => {
    const { live, lines } = make()
    const known = knownDeal()
    const rec = task(0, [replica(W1, { assignedAt: 1_000 }), replica(W2, { assignedAt: 1_000, contributed: true })])
    live.expire(known, rec, 1_050)
    live.expire(known, rec, 1_099)
    assert.equal(rec.replicas[0].dead, false)
    live.expire(known, rec, 1_100)
    assert.equal(rec.replicas[0].dead, true)
    assert.equal(rec.replicas[1].dead, false)
    assert.ok(lines.includes('pending replica outlived one time reference'))
  })

  it('an assignment is due when never sent, then again after resendMs', () => {
    const { live, clock } = make()
    const p = peerOf(W1)
    assert.equal(live.assignDue(tid(0), p), true)
    live.assigned(tid(0), p)
    assert.equal(live.assignDue(tid(0), p), false)
    clock.advance(1_999)
    assert.equal(live.assignDue(tid(0), p), false)
    clock.advance(1)
    assert.equal(live.assignDue(tid(0), p), true)
  })

  it('reveal requests are spaced by resendMs; a pending finalize is reported once', () => {
    const { live, clock } = make()
    assert.equal(live.revealDue(tid(0), 'p'), true)
    assert.equal(live.revealDue(tid(0), 'p'), false)
    assert.equal(live.revealDue(tid(0), 'q'), true, 'per peer')
    clock.advance(2_000)
    assert.equal(live.revealDue(tid(0), 'p'), true)
    assert.equal(live.finalizePending(tid(0)), true)
    assert.equal(live.finalizePending(tid(0)), false)
  })

  it('forgets a closed task: resends due again, no computed mark, no pending failure', () => {
    const { live } = make()
    const p = peerOf(W1)
    live.assigned(tid(0), p)
    live.onHeartbeat({ type: 'heartbeat', tasks: [{ taskid: tid(0), status: 'done' }] }, p)
    live.onHeartbeat({ type: 'heartbeat', tasks: [{ taskid: tid(1), status: 'failed' }] }, p)
    live.finalizePending(tid(0))
    live.forgetTask(tid(0), [p])
    live.forgetTask(tid(1), [p])
    assert.equal(live.assignDue(tid(0), p), true)
    assert.equal(live.isComputed(tid(0), p), false)
    assert.equal(live.finalizePending(tid(0)), true)
    const rec = task(1, [replica(W1)])
    live.expire(knownDeal(), rec, 1_100)
    assert.equal(rec.replicas[0].dead, false, 'the failure was forgotten with the task')
  })
})
