# Shared by the examples/*.sh walkthroughs: sourced, not run.
# Gives: p2p (the CLI), say (a walkthrough line), json_get (a field of a JSON
# document on stdin), wait_until (a bounded poll), start_node/stop_nodes
# (background nodes, stopped by PID whatever happens).

# The CLI: $IEXEC_P2P when set (e.g. "iexec-p2p" once installed), else the
# compiled one of this checkout (`npm ci` builds it).
EXAMPLES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -n "${IEXEC_P2P:-}" ]; then
  read -r -a CLI <<<"$IEXEC_P2P"
else
  CLI=(node "$EXAMPLES_DIR/../dist/node/cli/bin.js")
fi
p2p() { "${CLI[@]}" "$@"; }

say() { printf '\n== %s\n' "$*"; }

# json_get EXPR: evaluates EXPR (JavaScript, the document is `d`) on the JSON
# read from stdin and prints the result (strings raw, anything else as JSON).
json_get() {
  node -e '
    const d = JSON.parse(require("fs").readFileSync(0, "utf8"))
    const v = (0, eval)("(d) => " + process.argv[1])(d)
    if (v === undefined) process.exit(3)
    console.log(typeof v === "string" ? v : JSON.stringify(v))
  ' "$1"
}

# wait_until SECONDS WHAT CMD...: runs CMD every 0.5 s until it succeeds;
# fails after SECONDS (no unbounded wait in these scripts).
wait_until() {
  local secs=$1 what=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "timed out after ${secs} s waiting for: $what" >&2
      return 1
    fi
    sleep 0.5
  done
}

# Background nodes started by start_node: PID and data dir of each.
NODE_PIDS=()
NODE_DIRS=()

# start_node DATADIR ARGS...: `start --json` in the background, its output in
# DATADIR.out / DATADIR.err; returns once the node printed its ready line.
start_node() {
  local dir=$1
  shift
  # a simple command in the background: $! is the node process itself
  "${CLI[@]}" start --data-dir "$dir" --json "$@" >"$dir.out" 2>"$dir.err" &
  local pid=$!
  NODE_PIDS+=("$pid")
  NODE_DIRS+=("$dir")
  wait_until 90 "node $dir to be ready" node_ready "$pid" "$dir.out" || {
    echo "node $dir did not start; its stderr:" >&2
    tail -n 20 "$dir.err" >&2 || true
    return 1
  }
}

node_ready() {
  if ! kill -0 "$1" 2>/dev/null; then
    echo "node pid $1 exited; its stderr:" >&2
    tail -n 20 "${2%.out}.err" >&2 || true
    exit 1
  fi
  [ -s "$2" ]
}

# stop_nodes: asks each node to shut down, waits (bounded), then SIGTERM,
# then SIGKILL. Safe to call twice, and from a trap.
stop_nodes() {
  local i pid
  for i in "${!NODE_PIDS[@]}"; do
    pid=${NODE_PIDS[$i]}
    kill -0 "$pid" 2>/dev/null || continue
    timeout 15 "${CLI[@]}" shutdown --data-dir "${NODE_DIRS[$i]}" >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
  done
  # plus any background job not recorded yet (a trap between `&` and the
  # record): bash's own job table knows it
  local pids=("${NODE_PIDS[@]}") job
  for job in $(jobs -p); do
    case " ${pids[*]} " in *" $job "*) ;; *) kill -TERM "$job" 2>/dev/null || true; pids+=("$job") ;; esac
  done
  for pid in "${pids[@]}"; do
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 5))
      while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  NODE_PIDS=()
  NODE_DIRS=()
}

# work_dir [DIR]: DIR (created) or a fresh temp dir; WORK_IS_TEMP says which.
work_dir() {
  if [ -n "${1:-}" ]; then
    mkdir -p "$1"
    WORK=$(cd "$1" && pwd)
    WORK_IS_TEMP=0
  else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/iexec-p2p-example.XXXXXX")
    WORK_IS_TEMP=1
  fi
}
