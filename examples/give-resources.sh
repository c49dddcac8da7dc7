#!/usr/bin/env bash
# User story: give resources. Start a provider by hand, join a running swarm,
# get paid for a task.
#
#   examples/give-resources.sh [DIR]
#
# A swarm with a local chain runs (here `swarm up --nodes 2`: a requester and
# a provider). A new provider initialises its data dir, is funded from the
# swarm chain's dev account, starts with the swarm's bootstrap address, swarm
# key and chain settings, offers 1 CPU in region:eu, deposits and stakes. The
# other nodes find it in the DHT; a task asked for region:eu is run by it.
# Everything lives in DIR (default: a temp dir, removed at the end).
set -euo pipefail
# shellcheck source=examples/lib.sh
source "$(dirname "$0")/lib.sh"

work_dir "${1:-}"
SWARM="$WORK/swarm"
PROVIDER="$WORK/provider"
cleanup() {
  local rc=$?
  stop_nodes
  if [ -f "$SWARM/swarm.json" ]; then
    timeout 90 "${CLI[@]}" swarm down --dir "$SWARM" >/dev/null 2>&1 || echo "give-resources: swarm down failed; see $SWARM" >&2
  fi
  if [ "$rc" -ne 0 ]; then
    echo "give-resources: failed (exit $rc); logs are in $WORK" >&2
  elif [ "$WORK_IS_TEMP" = 1 ]; then
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "a swarm to join: anvil with the hub, a requester (node-0) and a provider (node-1)"
p2p swarm up --nodes 2 --dir "$SWARM"

# what a new provider needs, all in swarm.json: chain settings, key, an address to dial
RPC=$(json_get 'd.chain.rpc' <"$SWARM/swarm.json")
HUB=$(json_get 'd.chain.hub' <"$SWARM/swarm.json")
FROM=$(json_get 'd.chain.blockNumber' <"$SWARM/swarm.json")
KEY=$(json_get 'd.swarmKeyFile' <"$SWARM/swarm.json")
BOOT=$(json_get 'd.nodes[0].multiaddrs[0]' <"$SWARM/swarm.json")
REQUESTER=$(json_get 'd.nodes[0].dataDir' <"$SWARM/swarm.json")
OTHER=$(json_get 'd.nodes[1].dataDir' <"$SWARM/swarm.json")
echo "chain $RPC, hub $HUB (deployed in block $FROM)"
echo "bootstrap $BOOT"

say "the new provider: init (a dev key, unencrypted: fine for a local swarm only)"
ADDRESS=$(p2p init --data-dir "$PROVIDER" --dev-unprotected-key --json | json_get 'd.address')
echo "provider wallet $ADDRESS"

say "fund it from the swarm chain's dev account: ETH for gas, RLC to stake"
p2p swarm fund "$ADDRESS" --dir "$SWARM" --rlc 1000RLC --eth 5

say "start it: bootstrap, swarm key, chain settings, 1 CPU at 2 nRLC a task, in region:eu"
start_node "$PROVIDER" --bootstrap "$BOOT" --swarm-key "$KEY" \
  --rpc "$RPC" --hub "$HUB" --from-block "$FROM" \
  --cpus 1 --price 2 --tag region:eu
PEER=$(json_get 'd.peerId' <"$PROVIDER.out")
echo "provider peer id $PEER"

say "deposit RLC in the hub and stake: a provider must stake to bid and to be drawn as scheduler"
p2p account deposit 200RLC --data-dir "$PROVIDER"
p2p stake 100RLC --data-dir "$PROVIDER"
p2p wallet show --data-dir "$PROVIDER"

listed_in_eu() {
  p2p resources --data-dir "$OTHER" --tag region:eu --json | json_get "d.some((r) => r.peerId === '$PEER')" | grep -qx true
}
say "wait until another node (node-1) finds it with resources --tag region:eu"
wait_until 60 "node-1 to list the provider in region:eu" listed_in_eu
p2p resources --data-dir "$OTHER" --tag region:eu

say "the requester publishes an app, then asks for a task in region:eu"
p2p app publish "$EXAMPLES_DIR/apps/primes/primes.wasm" --name primes --data-dir "$REQUESTER"
timeout 240 "${CLI[@]}" task submit --app primes --args 300 --tag region:eu --bidding-window 3000 --watch --json --data-dir "$REQUESTER" >"$WORK/task.json"
json_get 'd' <"$WORK/task.json"

say "check: the deal's workers include the new provider"
WORKERS=$(json_get 'd.workers.map((w) => w.toLowerCase()).join(" ")' <"$WORK/task.json")
echo "workers: $WORKERS"
case " $WORKERS " in
  *" $(echo "$ADDRESS" | tr 'A-F' 'a-f') "*) echo "the task ran on the new provider $ADDRESS" ;;
  *) echo "the new provider $ADDRESS is not among the workers" >&2; exit 1 ;;
esac
TASK=$(json_get 'd.tasks[0].taskId' <"$WORK/task.json")
p2p task show "$TASK" --data-dir "$REQUESTER"
p2p wallet show --data-dir "$PROVIDER"

say "stop the provider, then the swarm"
stop_nodes
p2p swarm down --dir "$SWARM"
echo "give-resources: ok"
