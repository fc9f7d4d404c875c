#!/usr/bin/env bash
# End to end for AnalysisService (issue 5): the real gradzoo-server on a free port, driven by the
# real gradzoo CLI. Trains seed 001's mul2 zoo (lambda in {0, 0.1, ..., 0.5} x 5 seeds, 4-32-32-2
# ReLU) through the CLI, checks the lambda sweep of the functional orthogonality score (>= 0.6 at
# lambda 0, <= 0.1 at 0.5, Spearman <= -0.85 in every hidden layer), its table and SVG, then pca,
# plsr, cka and scaffold, bad input getting the right codes while the server keeps serving, and
# a clean shutdown on SIGTERM.
#   usage: analysis_e2e_test.sh SERVER_BIN CLI_BIN
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

py() { /usr/bin/python3 - "$@"; }

"$SERVER_BIN" --listen 127.0.0.1:0 --port-file "$WORK/port" --data-dir "$WORK/data" \
  --device cpu >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do [[ -s "$WORK/port" ]] && break; sleep 0.1; done
CLI="$CLI_BIN --server 127.0.0.1:$(cat "$WORK/port")"
for _ in $(seq 1 100); do $CLI health >/dev/null 2>&1 && break; sleep 0.1; done
$CLI --help >"$WORK/help.txt"; grep -q "orthogonality (MODEL | --zoo ZOO)" "$WORK/help.txt"; check "--help lists orthogonality" $?

start=$(date +%s)
$CLI train sweep --lambdas 0,0.1,0.2,0.3,0.4,0.5 --seeds 1,2,3,4,5 --hidden 32,32 --steps 1000 \
  --batch 256 --lr 0.004 --train-examples 4096 --validation-examples 512 >"$WORK/train.out" 2>&1
check "train seed 001's zoo through the CLI ($(($(date +%s) - start)) s)" $?
$CLI --json models sweep >"$WORK/models.json"
py "$WORK/models.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["models"]
assert len(m) == 30, len(m)
worst = max(x["validation_loss"] for x in m)
print("   worst validation MSE %.2e" % worst)
assert worst < 3e-4, worst
PY
check "30 models, every validation MSE < 3e-4" $?

# The lambda sweep: JSON numbers, the table and the SVG.
$CLI --json orthogonality --zoo sweep >"$WORK/sweep.json"; check "orthogonality --zoo --json" $?
py "$WORK/sweep.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["models_scored"] == 30 and d["method"] == "ORTHOGONALITY_METHOD_FUNCTIONAL", d.get("method")
layers = [l["index"] for l in d["layers"]]
assert layers == [1, 2], layers
for i, l in enumerate(layers):
    means = {round(s.get("lambda", 0.0), 3): s["mean"] for s in d["settings"] if s["layer"]["index"] == l}
    assert len(means) == 6, means
    rho = d["spearman_with_lambda"][i]
    print("   h%d: mean at 0 = %.3f, at 0.5 = %.3f, spearman %.3f" % (l, means[0.0], means[0.5], rho))
    assert means[0.0] >= 0.6 and means[0.5] <= 0.1 and rho <= -0.85, (l, means, rho)
PY
check "seed 001: >= 0.6 at lambda 0, <= 0.1 at 0.5, spearman <= -0.85 (h1, h2)" $?
$CLI orthogonality --zoo sweep --svg "$WORK/sweep.svg" >"$WORK/sweep.txt"; check "orthogonality --zoo --svg" $?
[[ $(grep -cE '^mul2 +0\.[0-5]00 ' "$WORK/sweep.txt") -eq 6 ]] && grep -q "spearman(lambda)" "$WORK/sweep.txt"
check "table: one row per lambda and the Spearman row" $?
grep -q '<svg' "$WORK/sweep.svg" && [[ $(grep -o 'class="series"' "$WORK/sweep.svg" | wc -l) -eq 2 ]] \
  && [[ $(grep -o 'class="legend-entry"' "$WORK/sweep.svg" | wc -l) -eq 2 ]]
check "SVG: one line per hidden layer with a legend" $?
$CLI --json orthogonality --zoo sweep --method cos --layers 0,1:pre >"$WORK/cos.json"
py "$WORK/cos.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert [l.get("index", 0) for l in d["layers"]] == [0, 1] and d["layers"][1]["side"] == "LAYER_SIDE_PRE"
x0 = [s["mean"] for s in d["settings"] if s["layer"].get("index", 0) == 0 and s.get("lambda", 0) == 0][0]
assert x0 > 0.8, x0  # input gradients of independent tasks are nearly orthogonal
PY
check "cos method on the input and z1" $?

# One model: every method; layer sides; points from a grid.
$CLI --json orthogonality sweep/m0000 --layer 1 --method functional | py -c 'import json,sys; d=json.load(sys.stdin); assert 0.6 <= d["score"] <= 1, d'
check "orthogonality MODEL --layer 1 --method functional" $?
$CLI orthogonality sweep/m0000 --layer 2:pre --method pca | grep -q "angles"; check "pca method prints principal angles" $?
$CLI --json orthogonality sweep/m0029 --layer 1 --method gram --grid 0:0:1:9,2:0:1:9 | py -c 'import json,sys; d=json.load(sys.stdin); assert 0 <= d.get("score", 0) <= 0.2, d'
check "gram on a grid slice (lambda 0.5 model: ~0)" $?

# Layer structure.
$CLI --json pca sweep/m0000 --layer 1 --second 2 | py -c '
import json,sys; d=json.load(sys.stdin); r=d["explained_variance_ratio"]
assert len(r) == 32 and abs(sum(r) - 1) < 1e-9 and r == sorted(r, reverse=True), r
assert d["pc_correlation"]["shape"] == ["32", "32"], d["pc_correlation"]["shape"]'
check "pca: 32 ratios summing to 1, PC correlation with h2" $?
$CLI pca sweep/m0000 --layer 1 --components 4 | grep -qE "^3 "; check "pca table" $?
$CLI --json plsr sweep/m0000 --layer 1 --components 3 --scale | py -c '
import json,sys; d=json.load(sys.stdin); e=d["explained_variance"]
assert len(e) == 3 and 0 < sum(e) <= 1 + 1e-9, e
assert d["x_weights"]["shape"] == ["32", "3"] and d["pc_overlap"]["shape"] == ["3", "32"], d["x_weights"]["shape"]'
check "plsr: 3 components, weights and PC overlap" $?
$CLI plsr sweep/m0000 --layer 1 | grep -q "TOP OVERLAPS"; check "plsr table" $?
$CLI --json cka sweep/m0000 --layer 1 | py -c 'import json,sys; d=json.load(sys.stdin); assert d["cka"] == 1.0, d'
check "cka of a layer with itself = 1" $?
$CLI --json cka sweep/m0000 sweep/m0001 --all-layers | py -c '
import json,sys; d=json.load(sys.stdin)
assert d["matrix"]["shape"] == ["4", "4"] and len(d["matrix_layers_a"]) == 4, d["matrix"]["shape"]
assert -0.2 <= d.get("cka", 0) <= 1, d.get("cka")'
check "cka across seeds, all layers" $?
$CLI --json scaffold sweep/m0000 --layer 1 | py -c '
import json,sys; d=json.load(sys.stdin)
n = int(d["points_used"]); sizes = [int(c["size"]) for c in d.get("clusters", [])]
assert n == 512 and len(d["assignments"]) == 512, n
assert sum(sizes) + int(d.get("zero_gradients", 0)) == n and d["clusters_found"] == len(sizes) >= 1, sizes'
check "scaffold: every point clustered or zero" $?
$CLI scaffold sweep/m0000 --layer 1 --component 1 | grep -q "^clusters"; check "scaffold table" $?

# Bad input: the right codes, and the server keeps serving.
expect_error "unknown model" NOT_FOUND orthogonality sweep/m9999
expect_error "unknown zoo" NOT_FOUND orthogonality --zoo nope
expect_error "output layer" INVALID_ARGUMENT orthogonality sweep/m0000 --layer 3
expect_error "same outputs" INVALID_ARGUMENT orthogonality sweep/m0000 --outputs 1,1
expect_error "threshold out of range" INVALID_ARGUMENT orthogonality sweep/m0000 --method pca --threshold 2
expect_error "oversize grid" RESOURCE_EXHAUSTED orthogonality --zoo sweep --grid 0:0:1:1000,1:0:1:1000
expect_error "too many PLS components" INVALID_ARGUMENT plsr sweep/m0000 --components 40
expect_error "unknown second model" NOT_FOUND cka sweep/m0000 sweep/m0999
expect_error "scaffold target before source" INVALID_ARGUMENT scaffold sweep/m0000 --layer 2 --target 1
$CLI orthogonality sweep/m0000 --method bogus >/dev/null 2>&1; [[ $? -eq 2 ]]; check "bad --method is a usage error (exit 2)" $?
$CLI health >/dev/null; check "still SERVING after bad input" $?

kill -TERM "$SERVER_PID"; wait "$SERVER_PID"; check "SIGTERM: clean exit 0" $?
SERVER_PID=""
grep -qE 'rpc /gradzoo.v1.AnalysisService/ScoreZooOrthogonality OK' "$WORK/server.log"; check "analysis RPCs logged" $?

echo "analysis e2e: $passes passed, $failures failed"
[[ $failures -eq 0 ]]
