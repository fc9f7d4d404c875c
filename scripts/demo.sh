#!/usr/bin/env bash
# The flagship demo: start gradzoo-server on the embedded store, run `gradzoo demo` (the seeds'
# tour: mul2 training, the input-gradient field of the lambda = 0 model against the exact
# gradient (x2, x1) and (x4, x3), exact linear regions, the lambda sweep's task orthogonality,
# the computational graph; plots and index.html in demo-out/), then stop the server cleanly.
#   usage: scripts/demo.sh BUILD_DIR PORT DATA_DIR
set -euo pipefail
BUILD=${1:-build}
PORT=${2:-50551}
DATA=${3:-gradzoo-data}
OUT=${DEMO_OUT:-demo-out}
SERVER_BIN="$BUILD/gradzoo-server"
CLI="$BUILD/gradzoo --server 127.0.0.1:$PORT"
mkdir -p "$OUT"
export OMP_WAIT_POLICY=PASSIVE

echo "== starting gradzoo-server on 127.0.0.1:$PORT (data dir $DATA)"
"$SERVER_BIN" --listen "127.0.0.1:$PORT" --data-dir "$DATA" --device auto >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
stop_server() {
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" && echo "== server stopped cleanly (exit 0)" || echo "== server exited with $?"
  fi
}
trap stop_server EXIT
for _ in $(seq 1 150); do
  if $CLI health >/dev/null 2>&1; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "server failed to start:"; cat "$OUT/server.log"; exit 1
  fi
  sleep 0.2
done
$CLI health

$CLI demo --out "$OUT"
echo "demo done: open $OUT/index.html in a browser"
