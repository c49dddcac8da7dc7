#!/usr/bin/env bash
# User story: submit a task in requester mode and read its result.
#
#   examples/submit-task.sh [DIR]
#
# Starts a local swarm (anvil with the hub, a requester and three providers,
# wallets funded, providers staked), publishes the example app `primes`,
# submits a task from the requester and follows it to its result, fetches
# the result archive from the swarm into a folder and prints the app's
# stdout, then stops the swarm. Everything lives in DIR (default: a temp dir,
# removed at the end).
set -euo pipefail
# shellcheck source=examples/lib.sh
source "$(dirname "$0")/lib.sh"

work_dir "${1:-}"
SWARM="$WORK/swarm"
cleanup() {
  local rc=$?
  if [ -f "$SWARM/swarm.json" ]; then
    timeout 90 "${CLI[@]}" swarm down --dir "$SWARM" >/dev/null 2>&1 || echo "submit-task: swarm down failed; see $SWARM" >&2
  fi
  if [ "$rc" -ne 0 ]; then
    echo "submit-task: failed (exit $rc); logs are in $WORK" >&2
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

say "publish the app: the .wasm goes to Helia, the app to the hub, its order to the swarm"
p2p app publish "$EXAMPLES_DIR/apps/primes/primes.wasm" --name primes --data-dir "$REQUESTER"

say "submit a task (primes up to 2000, trust 1) and follow it to its end"
# the CLI bounds its own wait (the task's deadlines); timeout is a second belt
timeout 240 "${CLI[@]}" task submit --app primes --args 2000 --trust 1 --watch --json --data-dir "$REQUESTER" >"$WORK/task.json"
DEAL=$(json_get 'd.dealId' <"$WORK/task.json")
TASK=$(json_get 'd.tasks[0].taskId' <"$WORK/task.json")
STATUS=$(json_get 'd.tasks[0].status' <"$WORK/task.json")
echo "deal    $DEAL"
echo "workers $(json_get 'd.workers.join(" ")' <"$WORK/task.json")"
echo "task    $TASK: $STATUS"
echo "result  $(json_get 'd.tasks[0].resultCid' <"$WORK/task.json")"
[ "$STATUS" = COMPLETED ] || { echo "the task did not complete" >&2; exit 1; }

say "fetch the result from the swarm, check it against the chain, unpack it into $WORK/result"
p2p result get "$TASK" --out "$WORK/result" --data-dir "$REQUESTER" >"$WORK/stdout.txt"
echo "files of the result:"
(cd "$WORK/result" && find . -type f | sort)
echo "the app's stdout:"
cat "$WORK/stdout.txt"

say "stop the swarm"
p2p swarm down --dir "$SWARM"
echo "submit-task: ok"
