#!/usr/bin/env bash
# End to end: two gradzoo-server replicas (separate data directories) behind nginx grpc_pass with
# deploy/nginx/gradzoo.conf, everything on loopback ports, driven by the real gradzoo CLI
# through nginx. Checks that stateless calls (health, info) reach both replicas, that a user's
# stateful calls (train, then field on the trained zoo) stay on one replica, and that the
# stateless calls fail over when a replica dies.
#   usage: nginx_e2e_test.sh SERVER_BIN CLI_BIN
# Needs nginx (Debian package nginx, installed by scripts/setup.sh; as root this script
# installs it when missing).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
SERVER_BIN=$1
CLI_BIN=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
export OMP_WAIT_POLICY=PASSIVE
PIDS=()
NGINX_PID=""
cleanup() {
  [[ -n "$NGINX_PID" ]] && kill "$NGINX_PID" 2>/dev/null
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

die() { echo "FAIL $*"; echo "0 passed, 1 failed"; exit 1; }

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [[ ! -x $NGINX ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "nginx missing: apt-get install nginx (add it to scripts/setup.sh)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null 2>&1
  fi
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
  [[ -x $NGINX ]] || die "nginx is not installed (scripts/setup.sh installs the Debian package nginx)"
fi


# Two replicas on free loopback ports, each with its own store.
for r in a b; do
  "$SERVER_BIN" --listen 127.0.0.1:0 --port-file "$WORK/port-$r" --data-dir "$WORK/data-$r" \
    --device cpu --query_threads 1 >"$WORK/server-$r.log" 2>&1 &
  PIDS+=($!)
done
PID_A=${PIDS[0]}
PID_B=${PIDS[1]}
for _ in $(seq 1 300); do [[ -s "$WORK/port-a" && -s "$WORK/port-b" ]] && break; sleep 0.1; done
PORT_A=$(cat "$WORK/port-a" 2>/dev/null)
PORT_B=$(cat "$WORK/port-b" 2>/dev/null)
[[ -n "$PORT_A" && -n "$PORT_B" ]] || die "replicas did not start: $(tail -3 "$WORK"/server-*.log)"

# nginx with the deployed site config, replica and listen addresses substituted.
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx/tmp"
chmod 711 "$WORK"
chmod 1777 "$WORK/nginx/tmp"
sed -e "s/127\.0\.0\.1:50561/127.0.0.1:$PORT_A/; s/127\.0\.0\.1:50562/127.0.0.1:$PORT_B/" \
    -e "s/listen 127\.0\.0\.1:50551/listen 127.0.0.1:$NGINX_PORT/" \
    "$ROOT/deploy/nginx/gradzoo.conf" >"$WORK/nginx/gradzoo.conf"
grep -q "127.0.0.1:$PORT_A" "$WORK/nginx/gradzoo.conf" && grep -q "127.0.0.1:$NGINX_PORT" "$WORK/nginx/gradzoo.conf"
check "site config has the replica and listen addresses" $?
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log info;
events { worker_connections 128; }
http {
  access_log $WORK/nginx/access.log;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  include $WORK/nginx/gradzoo.conf;
}
EOF
"$NGINX" -t -q -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" \
  >"$WORK/nginx-t.log" 2>&1
check "nginx -t accepts deploy/nginx/gradzoo.conf" $?
"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" \
  >"$WORK/nginx.out" 2>&1 &
NGINX_PID=$!
CLI="$CLI_BIN --server 127.0.0.1:$NGINX_PORT --timeout 20"
echo "replicas on $PORT_A, $PORT_B; nginx on $NGINX_PORT"
ready=1
for _ in $(seq 1 100); do
  if $CLI health >/dev/null 2>&1; then ready=0; break; fi
  sleep 0.1
done
check "health through nginx" $ready

# Stateless calls go round-robin (one worker process): two in a row hit both replicas.
for i in 1 2; do $CLI --json info >"$WORK/info-$i.json" 2>&1 || check "info #$i through nginx" 1; done
for i in 1 2; do $CLI health >/dev/null 2>&1 || check "health #$i through nginx" 1; done
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["device"]=="cpu", d' \
  "$WORK/info-1.json"
check "info --json through nginx" $?
for r in a b; do
  grep -q "rpc /gradzoo.v1.InfoService/GetServerInfo OK" "$WORK/server-$r.log"
  check "replica $r served GetServerInfo" $?
  grep -q "rpc /grpc.health.v1.Health/Check OK" "$WORK/server-$r.log"
  check "replica $r served Health/Check" $?
done

# Stateful calls are pinned: the training job, its watch and the field all reach one replica.
$CLI train proxied --lambdas 0,0.5 --seeds 0 --hidden 8,8 --steps 200 --train-examples 512 \
  >"$WORK/train.out" 2>"$WORK/train.err"
check "train through nginx (create + watch)" $?
grep -q SUCCEEDED "$WORK/train.out"; check "job SUCCEEDED" $?
$CLI --json field proxied/m0000 --grid 0:0:1:5,1:0:1:5 --theory >"$WORK/field.json" 2>"$WORK/field.err"
check "field on the trained zoo through nginx" $?
/usr/bin/python3 - "$WORK/field.json" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))["fields"][0]
assert f["points"] == 25 and f["inputs"] == 4 and f["outputs"] == 2, f
PY
check "field has 25 points x 4 inputs x 2 outputs" $?
trained=""
for r in a b; do
  if grep -q "rpc /gradzoo.v1.TrainingJobService/CreateTrainingJob OK" "$WORK/server-$r.log"; then
    trained="$trained$r"
  fi
done
[[ $trained == a || $trained == b ]]; check "exactly one replica trained the zoo ($trained)" $?
if [[ $trained == a || $trained == b ]]; then
  grep -q "rpc /gradzoo.v1.GradientService/ComputeGradientField OK" "$WORK/server-$trained.log"
  check "the same replica answered the field" $?
  grep -q "rpc /gradzoo.v1.TrainingJobService/WatchTrainingJob" "$WORK/server-$trained.log"
  check "the same replica streamed the watch" $?
  other=$([[ $trained == a ]] && echo b || echo a)
  ! grep -q "ComputeGradientField\|CreateTrainingJob" "$WORK/server-$other.log"
  check "the other replica saw no stateful call" $?

  # Fail-over: kill the replica that holds nothing; stateless calls still answer, the zoo is
  # still reachable on its replica.
  other_pid=$([[ $other == a ]] && echo "$PID_A" || echo "$PID_B")
  kill -9 "$other_pid"
  wait "$other_pid" 2>/dev/null
  ok=0
  for i in 1 2 3 4; do $CLI info >/dev/null 2>&1 || ok=1; done
  check "info keeps answering with one replica down" $ok
  $CLI --json zoos | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert [z["name"] for z in d["zoos"]]==["zoos/proxied"], d'
  check "zoos lists the pinned replica's zoo" $?
fi

if [[ $failures -ne 0 ]]; then
  echo "--- nginx error.log"; grep "\[error\]\|\[crit\]\|\[emerg\]" "$WORK/nginx/error.log" | tail -5
  for r in a b; do echo "--- server-$r.log"; tail -5 "$WORK/server-$r.log"; done
fi
echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
