/**
 * Gossipsub v1.1 peer scoring for the market topics. node/network builds
 * gossipsub; it passes `marketScoring(topics)` as
 * `gossipsub({ ..., scoreParams, scoreThresholds })`. Without per-topic
 * params gossipsub scores no topic at all, and a REJECT from our validators
 * would punish nobody.
 *
 * The market's traffic is low-rate and bursty (a few orders a minute, bids in
 * bursts after each request), and anyone can make a valid order with a fresh
 * key. So the score is built to punish invalid messages hard and to reward
 * almost nothing: rewards would be farmed by spamming valid junk.
 *
 * With these values one invalid message costs 10, two cost 40, three cost
 * 90: a peer that forwards three forged orders in a row falls below the
 * graylist threshold (-80) and everything it sends is ignored until the
 * counter decays (half-life 10 minutes).
 *
 * Caveat found in @libp2p/gossipsub 17.1.1: `retainScore` keeps a
 * disconnected peer's stats, but `PeerScore.addPeer` replaces them when the
 * peer reconnects, so a graylisted peer can wash its score by reconnecting.
 * The adapter's PeerRejectTracker (gossip-adapter.ts) counts REJECTs per
 * peer id independently of gossipsub; past its limit the node hangs up on
 * the peer and its libp2p connection gater refuses it from then on.
 */
import type { PeerScoreParams, PeerScoreThresholds, TopicScoreParams } from '@libp2p/gossipsub/score'
import type { TopicName } from '../../protocols/topics.js'

/** What gossipsub's constructor takes. */
export interface MarketScoring {
  scoreParams: Partial<PeerScoreParams>
  scoreThresholds: PeerScoreThresholds
}

export interface MarketScoringOptions {
  /**
   * IPs exempt from the IP-colocation penalty. Loopback is always exempt: a
   * local swarm (tests, `swarm up`) puts every node on 127.0.0.1, and a peer
   * on our own machine gains nothing by being counted apart.
   */
  ipColocationWhitelist?: readonly string[]
}

/** Score every invalid delivery costs, before squaring: see the file comment. */
const INVALID_WEIGHT = -10
/** Per decay interval (1 s): 0.5^(1/600), the counter halves in 10 minutes. */
const INVALID_DECAY = Math.pow(0.5, 1 / 600)

/** The topic params of one market topic. */
function topicParams (weight: number): TopicScoreParams {
  return {
    // how much this topic counts against the others: requests and bids carry
    // money decisions; app/dataset orders and cancels matter as much to forge
    topicWeight: weight,
    // P1, the only reward: a small bonus for staying in the mesh (0.01 per
    // second, capped at 10 minutes = +6), so stable honest peers are kept at
    // pruning time; the cap and topicScoreCap keep it from buying forgiveness
    timeInMeshWeight: 0.01,
    timeInMeshQuantum: 1_000,
    timeInMeshCap: 600,
    // P2 off: rewarding first deliveries pays whoever creates the most
    // messages, and orders are free to create
    firstMessageDeliveriesWeight: 0,
    firstMessageDeliveriesDecay: 0.5,
    firstMessageDeliveriesCap: 1,
    // P3/P3b off: a delivery-rate quota suits steady high-rate topics
    // (Ethereum's beacon blocks); here a quiet minute is normal and would
    // punish honest mesh peers
    meshMessageDeliveriesWeight: 0,
    meshMessageDeliveriesDecay: 0.5,
    meshMessageDeliveriesCap: 1,
    meshMessageDeliveriesThreshold: 1,
    meshMessageDeliveriesWindow: 10,
    meshMessageDeliveriesActivation: 60_000,
    meshFailurePenaltyWeight: 0,
    meshFailurePenaltyDecay: 0.5,
    // P4: the point of the exercise; squared, so it escalates fast
    invalidMessageDeliveriesWeight: INVALID_WEIGHT,
    invalidMessageDeliveriesDecay: INVALID_DECAY
  }
}

/** Weight of each market topic. */
const TOPIC_WEIGHTS: Record<TopicName, number> = {
  apporder: 1,
  datasetorder: 1,
  requestorder: 1,
  bid: 1,
  cancel: 1
}

/**
 * The score params and thresholds for the market topics (full topic strings
 * by name, as `swarmTopics(swarmId)` returns them).
 */
export function marketScoring (topics: Record<TopicName, string>, options: MarketScoringOptions = {}): MarketScoring {
  const perTopic: Record<string, TopicScoreParams> = {}
  for (const [name, topic] of Object.entries(topics) as Array<[TopicName, string]>) perTopic[topic] = topicParams(TOPIC_WEIGHTS[name])
  return {
    scoreParams: {
      topics: perTopic,
      // positive topic score (P1 only) is capped: good behaviour on five
      // topics cannot offset more than one invalid message
      topicScoreCap: 10,
      // P5 unused for now; a later version may weigh on-chain stake here
      appSpecificScore: () => 0,
      appSpecificWeight: 1,
      // P6: gossipsub's defaults (Sybils crowding one IP), loopback exempt
      IPColocationFactorWeight: -5,
      IPColocationFactorThreshold: 10,
      IPColocationFactorWhitelist: new Set(['127.0.0.1', '::1', ...(options.ipColocationWhitelist ?? [])]),
      // P7: gossipsub's defaults (GRAFT during backoff, broken IHAVE promises)
      behaviourPenaltyWeight: -10,
      behaviourPenaltyThreshold: 0,
      behaviourPenaltyDecay: 0.2,
      decayInterval: 1_000,
      decayToZero: 0.01,
      // keep a disconnected peer's score for an hour (see the caveat above:
      // gossipsub 17.1.1 still resets it on reconnect)
      retainScore: 3_600_000
    },
    scoreThresholds: {
      // one invalid message (-10) keeps a peer fully served: a version skew
      // or a race should not cut anyone off; two (-40) stop gossip to it
      gossipThreshold: -20,
      // below -40 (two invalid messages) we no longer publish our own orders through it
      publishThreshold: -40,
      // three invalid messages (-90): everything from the peer is ignored
      graylistThreshold: -80,
      // peer exchange only from peers that have been in our mesh for minutes
      acceptPXThreshold: 5,
      // graft better peers when the mesh's median score is under 3 (a mesh of newcomers or penalized peers)
      opportunisticGraftThreshold: 3
    }
  }
}
