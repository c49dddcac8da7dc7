#!/usr/bin/env bash
# User story: publish a dataset (encrypted) and use it.
#
#   examples/publish-dataset.sh [DIR]
#
# Starts a local swarm (anvil with the hub, a requester and three providers),
# has provider node-3 publish examples/datasets/sample.txt as a dataset:
# encrypted with a fresh AES-256-GCM key that stays in node-3's data dir,
# added to Helia, registered on the hub and offered with a signed order.
# node-1 publishes the wordcount app. The requester (node-0) runs wordcount
# over the dataset at trust 3: each worker fetches the ciphertext over
# bitswap and gets the key from node-3, sealed to its own Ethereum key.
# Then node-3 unpublishes the dataset and a new request for it is refused.
# Everything lives in DIR (default: a temp dir, removed at the end).
set -euo pipefail
# shellcheck source=examples/lib.sh
source "$(dirname "$0")/lib.sh"

work_dir "${1:-}"
SWARM="$WORK/swarm"
cleanup() {
  local rc=$?
  if [ -f "$SWARM/swarm.json" ]; then
    timeout 90 "${CLI[@]}" swarm down --dir "$SWARM" >/dev/null 2>&1 || echo "publish-dataset: swarm down failed; see $SWARM" >&2
  fi
  if [ "$rc" -ne 0 ]; then
    echo "publish-dataset: failed (exit $rc); logs are in $WORK" >&2
  elif [ "$WORK_IS_TEMP" = 1 ]; then
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "a local swarm of 4 nodes: node-0 is the requester, node-1..3 are providers"
p2p swarm up --nodes 4 --dir "$SWARM"
REQUESTER=$(json_get 'd.nodes[0].dataDir' <"$SWARM/swarm.json")
DEVELOPER=$(json_get 'd.nodes[1].dataDir' <"$SWARM/swarm.json")
COPIER=$(json_get 'd.nodes[2].dataDir' <"$SWARM/swarm.json")
OWNER=$(json_get 'd.nodes[3].dataDir' <"$SWARM/swarm.json")

say "node-1 publishes the wordcount app, node-2 an app that copies its dataset to its result"
p2p app publish "$EXAMPLES_DIR/apps/wordcount/wordcount.wasm" --name wordcount --json --data-dir "$DEVELOPER" >"$WORK/app.json"
APP=$(json_get 'd.address' <"$WORK/app.json")
echo "wordcount $APP"
p2p app publish "$EXAMPLES_DIR/apps/copy/copy.wasm" --name copy --json --data-dir "$COPIER" >"$WORK/copy-app.json"
COPY=$(json_get 'd.orderHash' <"$WORK/copy-app.json")

say "node-3 publishes the dataset, encrypted, readable by wordcount only; the key never leaves its data dir"
p2p dataset publish "$EXAMPLES_DIR/datasets/sample.txt" --name notebook --price 0.2RLC --app "$APP" --json --data-dir "$OWNER" >"$WORK/dataset.json"
DATASET=$(json_get 'd.address' <"$WORK/dataset.json")
echo "dataset $DATASET"
echo "cid     $(json_get 'd.cid' <"$WORK/dataset.json") (ciphertext)"
echo "sha256  $(json_get 'd.checksum' <"$WORK/dataset.json") (of the plaintext, on chain)"
p2p dataset list --data-dir "$OWNER"

say "the requester sees the dataset and its order"
# orders_on_requester YES|NO: succeeds when node-0's orderbook has (YES) or lacks (NO) a live order of the dataset
orders_on_requester() {
  p2p dataset show "$DATASET" --json --data-dir "$REQUESTER" | json_get "(d.orders.length > 0) === ('$1' === 'YES') || undefined" >/dev/null
}
wait_until 30 "the dataset order on node-0" orders_on_requester YES
p2p dataset show "$DATASET" --data-dir "$REQUESTER"

say "the copy app over the dataset is refused: the owner allowed wordcount only"
copy_order_on_requester() {
  p2p orderbook app --json --data-dir "$REQUESTER" | json_get "d.orders.some((o) => o.orderHash === '$COPY') || undefined" >/dev/null
}
wait_until 30 "the copy app's order on node-0" copy_order_on_requester
if "${CLI[@]}" task submit --app copy --dataset "$DATASET" --bidding-window 1000 --data-dir "$REQUESTER" 2>"$WORK/copy.txt"; then
  echo "a request with an app the owner did not allow was matched" >&2
  exit 1
fi
cat "$WORK/copy.txt"

say "wordcount over the dataset at trust 3, followed to its result"
timeout 240 "${CLI[@]}" task submit --app wordcount --dataset "$DATASET" --trust 3 --watch --json --data-dir "$REQUESTER" >"$WORK/task.json"
STATUS=$(json_get 'd.tasks[0].status' <"$WORK/task.json")
echo "deal    $(json_get 'd.dealId' <"$WORK/task.json")"
echo "workers $(json_get 'd.workers.join(" ")' <"$WORK/task.json")"
echo "task    $(json_get 'd.tasks[0].taskId' <"$WORK/task.json"): $STATUS"
[ "$STATUS" = COMPLETED ] || { echo "the task did not complete" >&2; exit 1; }
echo "the app's stdout:"
json_get 'd.tasks[0].result.stdout' <"$WORK/task.json"

say "node-3 unpublishes the dataset: its order is cancelled on chain, its key removed"
p2p dataset unpublish "$DATASET" --data-dir "$OWNER"

say "a new request for it is refused"
wait_until 30 "the cancelled order gone from node-0" orders_on_requester NO
if "${CLI[@]}" task submit --app wordcount --dataset "$DATASET" --bidding-window 1000 --data-dir "$REQUESTER" 2>"$WORK/refused.txt"; then
  echo "a request for an unpublished dataset was matched" >&2
  exit 1
fi
cat "$WORK/refused.txt"

say "stop the swarm"
p2p swarm down --dir "$SWARM"
echo "publish-dataset: ok"
