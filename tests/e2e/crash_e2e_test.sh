#!/usr/bin/env bash
# Crash safety of the embedded store, with the real binaries:
#  - kill -9 the server mid-training: after a restart every zoo completed before is intact and
#    queryable, and the interrupted job is FAILED with a clear reason;
#  - a kill -9 loop while small zoos train and save: after every restart, every listed zoo loads
#    (none CORRUPT) and answers a gradient query;
#  - a corrupted blob makes that zoo DATA_LOSS while every other zoo still serves.
#   usage: crash_e2e_test.sh SERVER_BIN CLI_BIN
set -uo pipefail
source "$(dirname "$0")/lib.sh"
SERVER_BIN=$1
CLI_BIN=$2
WORK=$(mktemp -d)
DATA="$WORK/data"
export OMP_WAIT_POLICY=PASSIVE
SERVER_PID=""
trap '[[ -n "$SERVER_PID" ]] && kill -9 "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"' EXIT

start() {
  rm -f "$WORK/port"
  "$SERVER_BIN" --listen 127.0.0.1:0 --port-file "$WORK/port" --data-dir "$DATA" --device cpu \
    >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do [[ -s "$WORK/port" ]] && break; sleep 0.05; done
  CLI="$CLI_BIN --server 127.0.0.1:$(cat "$WORK/port")"
  for _ in $(seq 1 200); do $CLI health >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "server did not start"; cat "$WORK/server.log"; return 1
}
crash() { kill -9 "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""; }

start || exit 1
$CLI train keep --lambdas 0,0.5 --seeds 0,1 --hidden 16,16 --steps 200 >/dev/null 2>&1
check "train zoo 'keep'" $?
$CLI --json field keep/m0000 --grid 0:0:1:5,1:0:1:5 >"$WORK/before.json"
LONG=$($CLI train long --steps 10000000 --no-wait)
for _ in $(seq 1 100); do $CLI job get "$LONG" | grep -q RUNNING && break; sleep 0.05; done
crash
start || exit 1
$CLI --json field keep/m0000 --grid 0:0:1:5,1:0:1:5 >"$WORK/after.json"
cmp -s "$WORK/before.json" "$WORK/after.json"; check "zoo trained before kill -9 is intact and answers the same" $?
$CLI --json job get "$LONG" >"$WORK/long.json"
/usr/bin/python3 - "$WORK/long.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["job"] if "job" in json.load(open(sys.argv[1])) else json.load(open(sys.argv[1]))
assert j["state"] == "JOB_STATE_FAILED", j
assert "server stopped while this job was RUNNING" in j["error"], j
PY
check "interrupted job is FAILED with the reason" $?
$CLI zoo get long >/dev/null 2>&1; [[ $? -eq 1 ]]; check "the interrupted job published nothing" $?

# kill -9 loop during training and saving of small zoos.
for i in $(seq 1 6); do
  $CLI train "loop$i" --seeds 0,1,2 --hidden 8 --steps 40 --no-wait >/dev/null 2>&1
  sleep "0.$((RANDOM % 9 + 1))"
  crash
  start || exit 1
  bad=0
  for z in $($CLI --json zoos | /usr/bin/python3 -c 'import json,sys; print(" ".join(z["name"] for z in json.load(sys.stdin).get("zoos", [])))'); do
    if ! $CLI field "${z#zoos/}/m0000" --grid 0:0:1:3 >/dev/null 2>&1; then
      echo "   $z does not answer after crash $i"; bad=1
    fi
  done
  $CLI --json zoos | grep -q CORRUPT && bad=1
  check "after kill -9 #$i every listed zoo loads and answers" $bad
done
$CLI zoo get keep >/dev/null; check "'keep' survived the whole loop" $?

# Corrupt one blob: that zoo is DATA_LOSS, the others still serve.
crash
BLOB=$(ls "$DATA"/blobs/*.gzoo | head -1)
/usr/bin/python3 - "$BLOB" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0xFF
open(p, "wb").write(bytes(b))
PY
start || exit 1
dl=0; okz=0
for z in $($CLI --json zoos | /usr/bin/python3 -c 'import json,sys; print(" ".join(z["name"] for z in json.load(sys.stdin).get("zoos", [])))'); do
  if $CLI zoo get "$z" >/dev/null 2>"$WORK/err"; then okz=$((okz + 1));
  elif grep -q "DATA_LOSS" "$WORK/err"; then dl=$((dl + 1)); fi
done
[[ $dl -eq 1 && $okz -ge 1 ]]; check "one corrupted blob: exactly that zoo is DATA_LOSS ($dl), the others serve ($okz)" $?
$CLI health >/dev/null; check "server still SERVING" $?
kill -TERM "$SERVER_PID"; wait "$SERVER_PID"; check "clean shutdown" $?; SERVER_PID=""

echo "crash e2e: $passes passed, $failures failed"
[[ $failures -eq 0 ]]
