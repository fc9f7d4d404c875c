#!/usr/bin/env bash
# The flagship demo (seed 001's vector fields): start gradzoo-server on the embedded store,
# train a mul2 zoo (y1 = x1*x2, y2 = x3*x4) with soft task mixing lambda through the CLI, query
# the input-gradient field of the lambda = 0 model, compare it with the exact gradient
# (x2, x1) and (x4, x3), draw it, and stop the server cleanly.
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
$CLI info

echo
echo "== training zoo mul2-demo: lambda in {0, 0.1, 0.25, 0.5} x seeds {0, 1, 2}, 4-64-64-2 ReLU"
$CLI zoo delete mul2-demo >/dev/null 2>&1 || true
$CLI train mul2-demo --task mul2 --lambdas 0,0.1,0.25,0.5 --seeds 0,1,2 --validation-seeds 2 \
  --hidden 64,64 --steps 4000 --batch 512 --lr 0.003 --train-examples 8192 --validation-examples 1024

echo
$CLI zoos
echo
$CLI models mul2-demo

echo
echo "== gradient field of the lambda = 0 model (zoos/mul2-demo/models/m0000) on the x1-x2 plane"
echo "   theory: dy1/dx = (x2, x1, 0, 0), dy2/dx = (0, 0, x4, x3)"
$CLI field mul2-demo/m0000 --grid 0:0:1:21,1:0:1:21 --fixed 0.5,0.5,0.5,0.5 --theory \
  --svg "$OUT/field_y1_x1x2.svg" --fail-above 0.3
echo
echo "== every model of the zoo against its own theory (lambda mixes the two products)"
$CLI field --zoo mul2-demo --grid 0:0:1:11,1:0:1:11,2:0:1:11 --theory
echo
echo "demo done: plots in $OUT/ (open $OUT/field_y1_x1x2.svg in a browser)"
