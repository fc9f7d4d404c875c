#!/usr/bin/env bash
# End to end for the gradient analyses: the real gradzoo-server on a free port, driven by the
# real gradzoo CLI: linear regions, exact partitions (+ SVG), adjacent-layer Jacobians (+ CSV),
# the computational graph (JSON, DOT, SVG via graphviz or the .dot fallback), path rarity, and
# bad input getting the right status codes while the server keeps serving.
#   usage: gradient_e2e_test.sh SERVER_BIN CLI_BIN
set -uo pipefail
source "$(dirname "$0")/lib.sh"
SERVER_BIN=$1
CLI_BIN=$2
WORK=$(mktemp -d)
export OMP_WAIT_POLICY=PASSIVE
SERVER_PID=""
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill -9 "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT


"$SERVER_BIN" --listen 127.0.0.1:0 --port-file "$WORK/port" --data-dir "$WORK/data" \
  --device cpu >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do [[ -s "$WORK/port" ]] && break; sleep 0.1; done
CLI="$CLI_BIN --server 127.0.0.1:$(cat "$WORK/port")"
for _ in $(seq 1 100); do $CLI health >/dev/null 2>&1 && break; sleep 0.1; done

$CLI train ga --hidden 16,16 --steps 600 >/dev/null 2>&1; check "train a 4-16-16-2 mul2 zoo" $?
$CLI train gt --hidden 8 --activation tanh --steps 50 >/dev/null 2>&1; check "train a tanh zoo" $?

# Regions on a 201 x 201 grid of the (x1, x2) slice.
$CLI --json regions ga/m0000 --grid 0:0:1:201,1:0:1:201 --per-layer >"$WORK/regions.json"
check "regions --json" $?
/usr/bin/python3 - "$WORK/regions.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert int(d["points"]) == 201 * 201, d
assert int(d["regions"]) > 1 and not d.get("clustered", False), d
assert sum(int(s) for s in d["region_sizes"]) == 201 * 201, d
assert len(d["layers"]) == 2, d
PY
check "regions: counts add up, exact, per-layer splintering" $?
$CLI regions ga/m0000 --per-layer | grep -q "hidden layer 1"; check "regions table" $?
$CLI --json regions gt/m0000 --tolerance 0.01 | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["clustered"] and abs(d["tolerance"]-0.01)<1e-12, d'
check "tanh regions are clustered" $?

# Exact partition of the same slice, drawn as SVG.
$CLI --json partition ga/m0000 --slice 0:0:1,1:0:1 --svg "$WORK/p.svg" >"$WORK/partition.json"
check "partition --json --svg" $?
/usr/bin/python3 - "$WORK/partition.json" "$WORK/regions.json" "$WORK/p.svg" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
r = json.load(open(sys.argv[2]))
svg = open(sys.argv[3]).read()
assert abs(p["area_sum"] - 1.0) < 1e-9 and p["slice_area"] == 1.0, p["area_sum"]
assert p["regions"] >= int(r["regions"]), (p["regions"], r["regions"])  # sampling never exceeds
assert svg.count('class="region"') == p["regions"], svg.count('class="region"')
PY
check "partition: areas sum to the slice, >= sampled regions, one polygon each" $?
expect_error "partition of a tanh model" FAILED_PRECONDITION partition gt/m0000

# Adjacent-layer Jacobians.
$CLI --json jacobians ga/m0000 --layer 1 --pca --components 3 --normalize --grid 0:0:1:11,1:0:1:11 \
  --csv "$WORK/j.csv" >"$WORK/j.json"
check "jacobians --pca --csv" $?
/usr/bin/python3 - "$WORK/j.json" "$WORK/j.csv" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["rows"] == 3 and d["cols"] == 16 and d["examples"] == 121, d
dots = d["intra_layer_dots"]
assert all(abs(dots[i][i] - 1) < 1e-4 or dots[i][i] == 0 for i in range(3)), dots  # unit rows
lines = open(sys.argv[2]).read().splitlines()
assert len(lines) == 1 + 121 * 3 and lines[0].startswith("example,row,d0"), len(lines)
PY
check "jacobians: shapes, normalised rows, CSV rows" $?

# The computational graph.
$CLI graph ga/m0000 --query "0.2,0.3,0.5,0.5;9,-9,9,-9" --graph-json "$WORK/g.json" \
  --dot "$WORK/g.dot" --svg "$WORK/g.svg" >"$WORK/graph.out" 2>"$WORK/graph.err"
check "graph with queries, JSON, DOT, SVG" $?
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["nodes"]) == 38 and len(d["links"]) > 0, len(d["nodes"])' "$WORK/g.json"
check "graph JSON: 4+16+16+2 nodes" $?
grep -q '^digraph' "$WORK/g.dot"; check "graph DOT" $?
if command -v dot >/dev/null; then
  grep -q '<svg' "$WORK/g.svg"; check "graph SVG via graphviz" $?
else
  [[ -s "$WORK/g.dot" ]] && grep -q "dot -Tsvg" "$WORK/graph.err"; check "no graphviz: wrote the .dot and said so" $?
fi
grep -q "query 2" "$WORK/graph.out"; check "graph: per-query sub-graphs" $?
$CLI --json graph ga/m0000 --clusters --components 5 --query "0.2,0.3,0.5,0.5" >"$WORK/gc.json"
check "graph --clusters" $?
/usr/bin/python3 - "$WORK/gc.json" <<'PY'
import json, sys
from collections import defaultdict
g = json.load(open(sys.argv[1]))
layer = {n["id"]: n.get("layer", 0) for n in g["nodes"]}
per_layer = defaultdict(int)
for n in g["nodes"]:
    per_layer[n.get("layer", 0)] += 1
assert per_layer[0] == 1 and per_layer[3] == 1 and 1 <= per_layer[1] <= 6 and 1 <= per_layer[2] <= 6, per_layer
sums = defaultdict(float)
for e in g["edges"]:
    sums[layer[e["from"]]] += e["weight"]
assert all(abs(v - 1) < 1e-9 for v in sums.values()) and len(sums) == 3, sums
sub = g["subgraphs"][0]
assert len(sub["node_ids"]) == 4 and len(sub["edge_indices"]) == 3, sub
PY
check "cluster graph: x, <= 5+other per layer, y; weights sum to 1 per layer; query path" $?
$CLI --json rarity ga/m0000 --query "0.2,0.3,0.5,0.5;9,-9,9,-9" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
s = d["scores"]
assert s[1]["surprisal_bits"] > s[0]["surprisal_bits"], s
assert len(d["reference"]["quantiles"]) == 9, d
'
check "rarity: the far-away input is rarer" $?

# Bad input: the right codes, and the server keeps serving.
expect_error "regions of an unknown model" NOT_FOUND regions ga/m9999
expect_error "partition on one input twice" INVALID_ARGUMENT partition ga/m0000 --slice 0:0:1,0:0:1
expect_error "jacobians past the last layer" INVALID_ARGUMENT jacobians ga/m0000 --layer 9
expect_error "oversize region grid" RESOURCE_EXHAUSTED regions ga/m0000 --grid 0:0:1:100000,1:0:1:100000
expect_error "too many partition regions" RESOURCE_EXHAUSTED partition ga/m0000 --slice 0:-1000:1000,1:-1000:1000 --max-regions 3
expect_error "graph with a bad max_edges" INVALID_ARGUMENT graph ga/m0000 --max-edges -1
$CLI health >/dev/null; check "still SERVING after bad input" $?

kill -TERM "$SERVER_PID"; wait "$SERVER_PID"; check "SIGTERM: clean exit 0" $?
SERVER_PID=""
echo "gradient e2e: $passes passed, $failures failed"
[[ $failures -eq 0 ]]
