#!/usr/bin/env bash
# End to end: the real gradzoo-server binary on a free port, driven by the real gradzoo CLI,
# including bad input (wrong shapes, NaN, unknown names, oversize requests) getting the right
# status while the server keeps serving, a refused second server on the same port, and a clean
# shutdown on SIGTERM.
#   usage: cli_e2e_test.sh SERVER_BIN CLI_BIN
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
  --device cpu --max_points_per_query 1000000 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do [[ -s "$WORK/port" ]] && break; sleep 0.1; done
PORT=$(cat "$WORK/port")
CLI="$CLI_BIN --server 127.0.0.1:$PORT"
echo "server on port $PORT"

$CLI health >/dev/null; check "health SERVING" $?
$CLI --json info | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["blas"] != "reference", d; assert d["device"] == "cpu"'
check "info --json (OpenBLAS, cpu)" $?
$CLI --help >"$WORK/help.txt"; grep -q "field (MODEL" "$WORK/help.txt"; check "--help explains commands" $?

$CLI train e2e --lambdas 0,0.5 --seeds 0,1 --validation-seeds 1 --hidden 64,64 --steps 4000 \
  --batch 512 --lr 0.003 --train-examples 8192 >"$WORK/train.out" 2>"$WORK/train.err"
check "train through the CLI" $?
grep -q SUCCEEDED "$WORK/train.out"; check "job SUCCEEDED" $?

$CLI --json zoos | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); z=d["zoos"][0]; assert z["name"]=="zoos/e2e" and z["model_count"]==4, d'
check "zoos --json lists the zoo" $?
$CLI --json models e2e | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["models"])==4; assert d["models"][3]["split"]=="SPLIT_VALIDATION", d'
check "models --json" $?

$CLI --json field e2e/m0000 --grid 0:0:1:21,1:0:1:21 --theory --svg "$WORK/f.svg" --csv "$WORK/f.csv" >"$WORK/field.json"
check "field with theory, svg and csv" $?
/usr/bin/python3 - "$WORK/field.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
f = d["fields"][0]
assert f["points"] == 441 and f["inputs"] == 4 and f["outputs"] == 2, f
assert f["summary"]["mean_relative_error"] < 0.3, f["summary"]
PY
check "lambda=0 model: mean relative error vs (x2,x1),(x4,x3) < 0.3" $?
grep -q '<svg' "$WORK/f.svg" && [[ $(grep -o 'class="arrow"' "$WORK/f.svg" | wc -l) -eq 441 ]]
check "quiver SVG has one arrow per grid point" $?
[[ $(wc -l <"$WORK/f.csv") -eq 442 ]]; check "CSV has a header and one row per point" $?
$CLI field e2e/m0000 --theory --fail-above 0.000001 >/dev/null 2>&1
[[ $? -eq 3 ]]; check "--fail-above exits 3 when exceeded" $?

# Bad input: the right codes, and the server keeps serving.
expect_error "unknown model" NOT_FOUND field e2e/m9999
expect_error "unknown zoo" NOT_FOUND zoo get nope
expect_error "malformed zoo name" INVALID_ARGUMENT models "zoos/Bad Name"
expect_error "grid axis out of range (wrong shape)" INVALID_ARGUMENT field e2e/m0000 --grid 7:0:1:3
expect_error "NaN grid bound" INVALID_ARGUMENT field e2e/m0000 --grid 0:nan:1:3
expect_error "NaN lambda" INVALID_ARGUMENT train bad --lambdas nan
expect_error "unknown task" INVALID_ARGUMENT train bad --task nope
expect_error "oversize grid" RESOURCE_EXHAUSTED field e2e/m0000 --grid 0:0:1:100000,1:0:1:100000
expect_error "too many models" RESOURCE_EXHAUSTED train big --seeds "$(seq -s, 0 20000)"
expect_error "duplicate zoo" ALREADY_EXISTS train e2e
expect_error "unknown job" NOT_FOUND job get trainingJobs/none
$CLI health >/dev/null; check "still SERVING after bad input" $?

# Task options: a custom dataset from CSV; poly1d families and similarity.
/usr/bin/python3 - "$WORK/c.csv" <<'PY'
import sys
import numpy as np
x = np.random.default_rng(0).uniform(-1, 1, (200, 2))
np.savetxt(sys.argv[1], np.hstack([x, x[:, :1] * x[:, 1:]]), delimiter=",", header="x1,x2,y")
PY
$CLI train csvzoo --task custom --custom-data "$WORK/c.csv" --inputs 2 --hidden 8 --steps 50 >/dev/null 2>&1
check "train --task custom --custom-data CSV" $?
$CLI --json zoo get csvzoo | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert (d["input_dim"], d["output_dim"], d["model_count"]) == (2, 1, 1), d'
check "custom zoo is 2 -> 1" $?
$CLI train csvbad --task custom --custom-data "$WORK/c.csv" >/dev/null 2>"$WORK/err"
[[ $? -eq 2 ]] && grep -q -- "--inputs" "$WORK/err"; check "--custom-data without --inputs is a usage error" $?
$CLI train polyz --task poly1d --families 2 --similarity 0.5 --family-seed 3 --seeds 0,1 \
  --validation-seeds 1 --hidden 8 --steps 20 >/dev/null 2>&1
check "train --task poly1d --families --similarity" $?
$CLI --json zoo get polyz | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); t=d["spec"]["task"]; assert d["model_count"] == 4 and t["families"] == 2 and t["similarity"] == 0.5 and int(t["family_seed"]) == 3, d'
check "poly1d options reach the zoo spec" $?

# Embeddings (seed 003) through the CLI: one JSON document per --json command.
$CLI embedder train pe --zoo polyz --steps 30 --wait >/dev/null 2>&1; check "embedder train --wait" $?
$CLI --json embedder list | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert [e["name"] for e in d["embedders"]] == ["embedders/pe"] and d["embedders"][0]["mask_shape"] == "MASK_SHAPE_SPANS", d'
check "embedder list --json (default mask shape: spans)" $?
$CLI embedder train pg --zoo polyz --steps 5 --mask-shape groups --wait >"$WORK/pg.out" 2>&1
grep -q "mask groups" "$WORK/pg.out"; check "embedder train --mask-shape groups" $?
$CLI embedder train pb --zoo polyz --mask-shape blobs >/dev/null 2>"$WORK/err"
[[ $? -eq 2 ]] && grep -q -- "--mask-shape" "$WORK/err"; check "--mask-shape blobs is a usage error" $?
$CLI embedder delete pg >/dev/null; check "embedder delete" $?
$CLI embedder train pm --zoo polyz --steps 5 --members 2 --seed 4 --wait >"$WORK/pm.out" 2>&1 &&
  grep -q "members 2 (seeds 4..5), embeddings 64 wide" "$WORK/pm.out"
check "embedder train --members 2" $?
$CLI --json embed pm polyz/m0000 | /usr/bin/python3 -c 'import json,sys; e=json.load(sys.stdin)["embeddings"]; assert len(e[0]["embedding"]) == 64, e'
check "embed with 2 members: 2 x 32 numbers" $?
$CLI --json embedder get pm | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["members"] == 2 and d["embedding_size"] == 32, d'
check "embedder get --json reports members" $?
$CLI embedder delete pm >/dev/null
expect_error "embedder train --members 9" INVALID_ARGUMENT embedder train pn --zoo polyz --members 9
$CLI embedder train pd --zoo polyz --steps 5 --distance-weight 1 --wait >"$WORK/pd.out" 2>&1 &&
  grep -q "function-distance weight 1$" "$WORK/pd.out" &&
  $CLI --json embedder get pd | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["distance_weight"] == 1, d'
check "embedder train --distance-weight 1, reported" $?
$CLI embedder delete pd >/dev/null
expect_error "embedder train --distance-weight -1" INVALID_ARGUMENT embedder train pn --zoo polyz --distance-weight -1
$CLI --json embed pe polyz/m0000 polyz/m0001 | /usr/bin/python3 -c 'import json,sys; e=json.load(sys.stdin)["embeddings"]; assert [x["model"] for x in e] == ["zoos/polyz/models/m0000", "zoos/polyz/models/m0001"] and len(e[0]["embedding"]) == 32, e'
check "embed --json" $?
$CLI --json neighbors pe polyz/m0000 --k 2 | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); n=d["neighbors"]; assert len(n) == 2 and n[0]["similarity"] >= n[1]["similarity"], d'
check "neighbors --json, most similar first" $?
$CLI --json probe pe --zoo polyz | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); r=[s["representation"] for s in d["scores"]]; assert r[0] == "embedding" and "untrained_encoder" in r and all(s["separation"] > 0 and 0 < s["linear_p_value"] <= 1 and 0 < s["knn_p_value"] <= 1 for s in d["scores"]) and d["scores"][0]["knn_p_value"] == 1, d'
check "probe --json with baselines, separation and p-values" $?
out=$($CLI probe pe --zoo polyz) && grep -q "k-NN  separation  p(linear)  p(k-NN)" <<<"$out" &&
  grep -Eq "^embedding +[0-9.]+ +[0-9.]+ +[0-9.]+ +- +- +\(" <<<"$out" &&
  grep -Eq "^untrained_encoder +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.e-]+ +[0-9.e-]+ +\(" <<<"$out"
check "probe table has separation and p-value columns" $?
$CLI embedding-map pe --zoo polyz --out "$WORK/map.svg" >/dev/null && [[ $(grep -c 'class="point"' "$WORK/map.svg") -eq 4 ]]
check "embedding-map SVG has one point per model" $?

# Idempotent submit + quick cancel.
J1=$($CLI train long --steps 1000000 --request-id r1 --no-wait)
J2=$($CLI train long --steps 1000000 --request-id r1 --no-wait)
[[ "$J1" == "$J2" && "$J1" == trainingJobs/* ]]; check "request_id returns the same job" $?
sleep 1
$CLI job cancel "$J1" >/dev/null; check "cancel" $?
timeout 5 $CLI job watch "$J1" >"$WORK/watch.out" 2>&1
grep -q CANCELLED "$WORK/watch.out"; check "job ends CANCELLED" $?

# A second server on the same port refuses to start.
timeout 60 "$SERVER_BIN" --listen "127.0.0.1:$PORT" --data-dir "$WORK/data2" >"$WORK/second.log" 2>&1
[[ $? -ne 0 ]] && grep -q "port is taken" "$WORK/second.log"; check "second server on a taken port refuses" $?

# Restart keeps the zoo; SIGTERM stops cleanly.
kill -TERM "$SERVER_PID"; wait "$SERVER_PID"; check "SIGTERM: clean exit 0" $?
grep -q "gradzoo-server stopped" "$WORK/server.log"; check "shutdown logged" $?
grep -qE 'rpc /gradzoo.v1.ZooService/ListZoos OK' "$WORK/server.log"; check "one log line per RPC" $?
rm -f "$WORK/port"
"$SERVER_BIN" --listen 127.0.0.1:0 --port-file "$WORK/port" --data-dir "$WORK/data" --device cpu >"$WORK/server2.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do [[ -s "$WORK/port" ]] && break; sleep 0.1; done
CLI="$CLI_BIN --server 127.0.0.1:$(cat "$WORK/port")"
for _ in $(seq 1 100); do $CLI health >/dev/null 2>&1 && break; sleep 0.1; done
$CLI --json zoo get e2e | grep -q '"model_count": 4'; check "restart reloads the zoo" $?
kill -TERM "$SERVER_PID"; wait "$SERVER_PID"; SERVER_PID=""

echo "e2e: $passes passed, $failures failed"
[[ $failures -eq 0 ]]
