# Shared by the end-to-end scripts in tests/e2e (sourced, not run): pass/fail bookkeeping and
# the CLI error check. The sourcing script sets WORK (a scratch directory) and, for
# expect_error, CLI (the gradzoo command line with its --server flag).
passes=0
failures=0

# check NAME EXIT_CODE: records a pass when EXIT_CODE is 0.
check() {
  if [[ $2 -eq 0 ]]; then passes=$((passes + 1)); echo "ok   $1"; else failures=$((failures + 1)); echo "FAIL $1"; fi
}

# expect_error_cmd NAME CODE COMMAND...: COMMAND exits 1 and its stderr names the gRPC code.
expect_error_cmd() {
  local name=$1 code=$2; shift 2
  "$@" >"$WORK/out" 2>"$WORK/err"
  local rc=$?
  if [[ $rc -eq 1 ]] && grep -q "error: $code" "$WORK/err"; then
    check "$name -> $code" 0
  else
    echo "   rc=$rc stderr: $(cat "$WORK/err")"
    check "$name -> $code" 1
  fi
}

# expect_error NAME CODE ARGS...: the same for `$CLI ARGS...`.
expect_error() {
  local name=$1 code=$2; shift 2
  # shellcheck disable=SC2086  # CLI is a command line
  expect_error_cmd "$name" "$code" $CLI "$@"
}

# A free loopback TCP port.
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
