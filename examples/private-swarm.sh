#!/usr/bin/env bash
# User story: bootstrap a private test swarm across separately started
# processes, with a swarm key file.
#
#   examples/private-swarm.sh [DIR]
#
# Makes a swarm key, initialises three data dirs, starts a first node with the
# key, reads its address, starts two more that bootstrap from it with the
# same key, shows their peers and the providers they find through the DHT,
# then stops all three. No chain: this is the network alone. Everything lives
# in DIR (default: a temp dir, removed at the end).
set -euo pipefail
# shellcheck source=examples/lib.sh
source "$(dirname "$0")/lib.sh"

work_dir "${1:-}"
cleanup() {
  local rc=$?
  stop_nodes
  if [ "$rc" -ne 0 ]; then
    echo "private-swarm: failed (exit $rc); the node logs are in $WORK" >&2
  elif [ "$WORK_IS_TEMP" = 1 ]; then
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "a fresh swarm key: only nodes holding it can even open a connection (libp2p pnet)"
p2p swarm key --out "$WORK/swarm.key"

say "three data dirs: a libp2p key, an encrypted wallet, config.json and an API token each"
printf 'correct horse battery staple\n' >"$WORK/password"
chmod 600 "$WORK/password"
for i in 0 1 2; do
  p2p init --data-dir "$WORK/node-$i" --password-file "$WORK/password"
done

say "start node-0 in the background with the swarm key"
start_node "$WORK/node-0" --password-file "$WORK/password" --swarm-key "$WORK/swarm.key" --cpus 1
p2p status --data-dir "$WORK/node-0"

say "its multiaddr, from status --json: the bootstrap address of the others"
ADDR=$(p2p status --data-dir "$WORK/node-0" --json | json_get 'd.multiaddrs[0]')
PEER0=$(p2p status --data-dir "$WORK/node-0" --json | json_get 'd.peerId')
case "$ADDR" in */p2p/*) ;; *) ADDR="$ADDR/p2p/$PEER0" ;; esac
echo "bootstrap address: $ADDR"

say "start node-1 and node-2 with --bootstrap and the same key"
for i in 1 2; do
  start_node "$WORK/node-$i" --password-file "$WORK/password" --swarm-key "$WORK/swarm.key" --bootstrap "$ADDR" --cpus 1 --tag "example:private-swarm"
done

connected_to_both() {
  [ "$(p2p peers --data-dir "$WORK/node-0" --json | json_get 'd.length')" -ge 2 ]
}
say "wait until node-0 is connected to both"
wait_until 30 "node-0 to have 2 peers" connected_to_both
p2p peers --data-dir "$WORK/node-0"

finds_both() {
  [ "$(p2p resources --data-dir "$WORK/node-0" --tag example:private-swarm --json | json_get 'd.length')" -ge 2 ]
}
say "wait until node-0 finds the two providers' signed resource records in the swarm's DHT"
wait_until 60 "node-0 to find 2 providers in the DHT" finds_both
p2p resources --data-dir "$WORK/node-0"

say "stop the three nodes"
stop_nodes
echo "private-swarm: ok"
