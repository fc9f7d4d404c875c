#!/usr/bin/env bash
# End to end: the real gradzoo-server with --tokens-file and --metrics-port, driven by the real
# CLI with and without tokens (--token-file, $GRADZOO_TOKEN, --token), two users and an admin
# (tenancy: others get NOT_FOUND), a refused start on a bad tokens file and on a bad TLS key,
# TLS through the CLI (--tls-ca), and a scrape of /metrics.
#   usage: auth_e2e_test.sh SERVER_BIN CLI_BIN
set -uo pipefail
source "$(dirname "$0")/lib.sh"
SERVER_BIN=$1
CLI_BIN=$2
WORK=$(mktemp -d)
export OMP_WAIT_POLICY=PASSIVE
unset GRADZOO_TOKEN GRADZOO_SERVER
SERVER_PID=""
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill -9 "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_server LOG ARGS...: starts it, waits for the port file; returns 1 if it exits instead.
start_server() {
  local log=$1; shift
  rm -f "$WORK/port"
  "$SERVER_BIN" --listen 127.0.0.1:0 --port-file "$WORK/port" --device cpu "$@" >"$log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    [[ -s "$WORK/port" ]] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { SERVER_PID=""; return 1; }
    sleep 0.1
  done
  return 1
}

ALICE=$(openssl rand -hex 32); BOB=$(openssl rand -hex 32); ROOT=$(openssl rand -hex 32)
printf '# users\nalice %s user\nbob %s user\nroot %s admin\n' "$ALICE" "$BOB" "$ROOT" >"$WORK/tokens"
chmod 600 "$WORK/tokens"
echo "$ALICE" >"$WORK/alice.token"
echo "$BOB" >"$WORK/bob.token"

# Refusals: fail closed with a message naming the file.
printf 'alice short user\n' >"$WORK/weak"
"$SERVER_BIN" --listen 127.0.0.1:0 --data-dir "$WORK/d0" --device cpu --tokens-file "$WORK/weak" \
  >"$WORK/weak.log" 2>&1
rc=$?; [[ $rc -ne 0 ]] && grep -q "line 1" "$WORK/weak.log"; check "weak tokens file refuses to start" $?
echo "not a key" >"$WORK/bad.key"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$WORK/tls.key" \
  -out "$WORK/tls.pem" -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost >/dev/null 2>&1
"$SERVER_BIN" --listen 127.0.0.1:0 --data-dir "$WORK/d0" --device cpu --tls-cert "$WORK/tls.pem" \
  --tls-key "$WORK/bad.key" >"$WORK/badkey.log" 2>&1
rc=$?; [[ $rc -ne 0 ]] && grep -q "bad.key" "$WORK/badkey.log"; check "bad TLS key refuses to start" $?
grep -q "$ALICE" "$WORK/weak.log" "$WORK/badkey.log"; [[ $? -ne 0 ]]; check "no token in logs" $?

METRICS_PORT=$(free_port)
start_server "$WORK/server.log" --data-dir "$WORK/data" --tokens-file "$WORK/tokens" \
  --metrics-port "$METRICS_PORT"
check "server starts with --tokens-file and --metrics-port" $?
PORT=$(cat "$WORK/port")
CLI="$CLI_BIN --server 127.0.0.1:$PORT"
echo "server on port $PORT, metrics on $METRICS_PORT"

$CLI health >/dev/null; check "health needs no token" $?
expect_error_cmd "info without a token" UNAUTHENTICATED $CLI info
expect_error_cmd "zoos without a token" UNAUTHENTICATED $CLI zoos
expect_error_cmd "zoos with a wrong token" UNAUTHENTICATED $CLI --token "$(openssl rand -hex 32)" zoos
$CLI --token-file "$WORK/alice.token" info >/dev/null; check "info with --token-file" $?
GRADZOO_TOKEN=$BOB $CLI zoos >/dev/null; check "zoos with \$GRADZOO_TOKEN" $?
$CLI --token "$ROOT" zoos >/dev/null; check "zoos with --token" $?

$CLI --token-file "$WORK/alice.token" train alices --lambdas 0 --seeds 1,2 --validation-seeds 2 \
  --hidden 8 --steps 100 --train-examples 256 >"$WORK/train.out" 2>"$WORK/train.err"
check "alice trains a zoo" $?
$CLI --token-file "$WORK/alice.token" --json zoo get alices | /usr/bin/python3 -c \
  'import json,sys; d=json.load(sys.stdin); assert d["owner"]=="alice", d'
check "alice's zoo is owned by alice" $?
expect_error_cmd "bob reads alice's zoo" NOT_FOUND $CLI --token-file "$WORK/bob.token" zoo get alices
expect_error_cmd "bob deletes alice's zoo" NOT_FOUND $CLI --token-file "$WORK/bob.token" zoo delete alices
GRADZOO_TOKEN=$BOB $CLI --json zoos | /usr/bin/python3 -c \
  'import json,sys; d=json.load(sys.stdin); assert all(z["name"]!="zoos/alices" for z in d.get("zoos",[])), d'
check "bob's zoo list hides alice's zoo" $?
GRADZOO_TOKEN=$ROOT $CLI --json zoos | /usr/bin/python3 -c \
  'import json,sys; d=json.load(sys.stdin); assert any(z["name"]=="zoos/alices" for z in d["zoos"]), d'
check "the admin lists alice's zoo" $?
GRADZOO_TOKEN=$BOB $CLI --json jobs | /usr/bin/python3 -c \
  'import json,sys; d=json.load(sys.stdin); assert not d.get("jobs"), d'
check "bob sees none of alice's jobs" $?

# Sharing read-only through the CLI.
$CLI --token-file "$WORK/alice.token" zoo share alices --readers bob >/dev/null
check "alice shares her zoo with bob" $?
$CLI --token-file "$WORK/bob.token" --json models alices >/dev/null; check "bob reads the shared zoo" $?
expect_error_cmd "bob re-shares alice's zoo" PERMISSION_DENIED $CLI --token-file "$WORK/bob.token" zoo share alices --readers bob
expect_error_cmd "bob deletes the shared zoo" PERMISSION_DENIED $CLI --token-file "$WORK/bob.token" zoo delete alices
$CLI --token-file "$WORK/alice.token" zoo get alices | grep -q "owner        alice, readers \[bob\]"
check "zoo get shows owner and readers" $?
$CLI --token-file "$WORK/alice.token" zoo share alices --readers "" >/dev/null; check "alice unshares" $?
expect_error_cmd "bob reads the unshared zoo" NOT_FOUND $CLI --token-file "$WORK/bob.token" zoo get alices

curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >"$WORK/metrics.txt"
check "scrape /metrics" $?
grep -q '^gradzoo_rpc_requests_total{method="/gradzoo.v1.ZooService/ListZoos",code="OK"} [1-9]' "$WORK/metrics.txt"
check "metrics: request counts per method and code" $?
grep -q '^gradzoo_rpc_duration_seconds_bucket{method="/gradzoo.v1.ZooService/GetZoo",code="NOT_FOUND",le="+Inf"} [1-9]' "$WORK/metrics.txt"
check "metrics: latency histogram per method" $?
grep -q '^gradzoo_job_queue_depth 0' "$WORK/metrics.txt"; check "metrics: job queue depth" $?
grep -Eq '^gradzoo_stored_bytes [1-9]' "$WORK/metrics.txt"; check "metrics: stored bytes" $?
grep -Eq '^gradzoo_auth_rejected_calls_total [3-9]' "$WORK/metrics.txt"; check "metrics: rejected calls" $?
grep -q "$ALICE" "$WORK/server.log" "$WORK/metrics.txt"; [[ $? -ne 0 ]]; check "no token in the log or metrics" $?
kill -TERM "$SERVER_PID"; wait "$SERVER_PID"; check "clean shutdown" $?; SERVER_PID=""

# TLS with tokens, through the CLI.
start_server "$WORK/tls.log" --data-dir "$WORK/data" --tokens-file "$WORK/tokens" \
  --tls-cert "$WORK/tls.pem" --tls-key "$WORK/tls.key"
check "server starts with TLS" $?
PORT=$(cat "$WORK/port")
$CLI_BIN --server "127.0.0.1:$PORT" --tls-ca "$WORK/tls.pem" --tls-server-name localhost \
  --token-file "$WORK/alice.token" --json zoo get alices >/dev/null
check "CLI over TLS with a token (ownership kept across restart)" $?
expect_error_cmd "plaintext CLI to a TLS server" UNAVAILABLE $CLI_BIN --timeout 3 --server "127.0.0.1:$PORT" \
  --token-file "$WORK/alice.token" zoos
expect_error_cmd "TLS without a token" UNAUTHENTICATED $CLI_BIN --server "127.0.0.1:$PORT" \
  --tls-ca "$WORK/tls.pem" --tls-server-name localhost zoos
kill -TERM "$SERVER_PID"; wait "$SERVER_PID"; SERVER_PID=""

echo "auth e2e: $passes passed, $failures failed"
[[ $failures -eq 0 ]]
