#!/usr/bin/env bash
# Lookup benchmark of the network embeddings (tests/bench/embed_README.md): the real
# gradzoo-server on a free port, a poly1d zoo and an embedder trained through the CLI, then
#   1. `gradzoo embed-bench` (client/cli/cmd_embed_bench.cc): p50/p99 of single EmbedModels
#      calls with 1, 4 and 16 concurrent clients (cached and uncached) and embeddings/second of
#      batch calls, all through gRPC;
#   2. after the server stopped, tests/bench/embed_bench.cc on the same data directory: the same
#      lookups straight on core::EmbedderRegistry (no RPC), for the in-process cost.
#   usage: tests/bench/embed_bench.sh [BUILD_DIR=build] [SEEDS=50] [CALLS=400] [TORCH_THREADS=2]
# Not part of `make test`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
SEEDS=${2:-50}
CALLS=${3:-400}
THREADS=${4:-2}
# shellcheck source=tests/bench/server_lib.sh
source "$ROOT/tests/bench/server_lib.sh"
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$THREADS

ninja -C "$BUILD" gradzoo gradzoo-server gradzoo_core >/dev/null
# The in-process side compiles and links like gradzoo_core_tests, without gtest.
ninja -C "$BUILD" -t commands tests/gradzoo_core_tests >"$WORK/commands.txt"
compile=$(grep -m1 -- '_test.cc.o -c ' "$WORK/commands.txt")
compile=$(echo "$compile" | sed -E 's# -MD -MT [^ ]+ -MF [^ ]+##; s# -o [^ ]+ -c [^ ]+$##')
link=$(grep -m1 -- "-o tests/gradzoo_core_tests " "$WORK/commands.txt" | sed -e 's/^: && //' -e 's/ && .*$//')
link=$(echo "$link" | sed -E 's# tests/CMakeFiles/gradzoo_core_tests.dir/core/[a-z0-9_]+_test.cc.o##g; s#[^ ]*libgtest_main.a##; s#[^ ]*libgmock.a##; s#[^ ]*libgtest.a##')
link=$(echo "$link" | sed -E "s# -o tests/gradzoo_core_tests # $WORK/bench.o -o $WORK/embed_bench #")
(cd "$BUILD" && eval "$compile -o $WORK/bench.o -c $ROOT/tests/bench/embed_bench.cc" && eval "$link")

start_server --torch_threads "$THREADS"
CLI="$BUILD/gradzoo --server 127.0.0.1:$PORT --timeout 600"

VAL=$((SEEDS / 5))
seeds=$(seq -s, 0 $((SEEDS - 1)))
vseeds=$(seq -s, $((SEEDS - VAL)) $((SEEDS - 1)))
echo "== training: poly1d 10 families x $SEEDS seeds (1-16-16-1) and an embedder (48 points, size 16)"
$CLI train poly --task poly1d --families 10 --family-seed 1 --seeds "$seeds" \
  --validation-seeds "$vseeds" --hidden 16,16 --steps 1500 --batch 128 --lr 0.01 \
  --train-examples 256 --validation-examples 64 >/dev/null 2>&1
$CLI embedder train poly-e --zoo poly --points 48 --size 16 --steps 300 --hidden 48 \
  --lr 0.003 --seed 1 --wait >/dev/null 2>&1

echo "== through the server (gRPC, loopback, $THREADS torch threads, 2 query threads)"
$CLI embed-bench poly-e --zoo poly --clients 1,4,16 --requests "$CALLS" --samples 4 | tee "$WORK/rpc.txt"
stop_server

echo "== in process (core::EmbedderRegistry on the same data directory, no RPC)"
"$WORK/embed_bench" "$WORK/data" poly-e poly 4 "$CALLS" 3 2>/dev/null | grep -v '^\[' | tee "$WORK/inproc.txt"

/usr/bin/python3 - "$WORK/rpc.txt" "$WORK/inproc.txt" <<'PY'
import sys
rpc = {}
for line in open(sys.argv[1]):
    p = line.split()
    if p and p[0] in ("single-cached", "single-uncached") and p[1] == "1":
        rpc[p[0]] = float(p[2])
inproc = {}
for line in open(sys.argv[2]):
    p = line.split()
    if p and p[0].startswith("inprocess-single-"):
        inproc[p[0][len("inprocess-single-"):]] = float(p[2])
print("== RPC overhead at 1 client (p50, ms): RPC minus in-process")
for k in ("cached", "uncached"):
    if "single-" + k in rpc and k in inproc:
        r, i = rpc["single-" + k], inproc[k]
        print("  %-9s rpc %.3f  in-process %.3f  overhead %.3f" % (k, r, i, r - i))
PY
