# Sourced (not run) by the tests/bench drivers that measure through a real gradzoo-server: a
# scratch directory WORK, removed on exit with the server stopped, and start_server / stop_server.
# The sourcing script sets BUILD (the build directory) first.
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_server [FLAG...]: BUILD/gradzoo-server on a free loopback port (CPU, data in WORK/data,
# log in WORK/server.log) with the extra flags; sets SERVER_PID and PORT.
start_server() {
  "$BUILD/gradzoo-server" --listen 127.0.0.1:0 --port-file "$WORK/port" --data-dir "$WORK/data" \
    --device cpu "$@" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do [[ -s "$WORK/port" ]] && break; sleep 0.1; done
  if [[ ! -s "$WORK/port" ]]; then
    cat "$WORK/server.log" >&2
    echo "gradzoo-server did not start" >&2
    exit 1
  fi
  PORT=$(cat "$WORK/port")
}

# stop_server: stops it and waits for it to exit.
stop_server() {
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
