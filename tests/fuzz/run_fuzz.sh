#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) in build-fuzz/ and runs each for a bounded
# time from its seed corpus. Exit status 1 if any target finds a crash, a sanitizer report, a
# leak, a timeout or an out-of-memory; the reproducer is kept under build-fuzz/artifacts/.
#
#   tests/fuzz/run_fuzz.sh [SECONDS_PER_TARGET]      (default 20, or $FUZZ_SECONDS)
#   FUZZ_BUILD=DIR  build directory (default build-fuzz in the repository root)
#
# Reproduce a finding:  build-fuzz/fuzz_<target> build-fuzz/artifacts/<target>-crash-...
# The corpora (build-fuzz/corpus/<target>) grow across runs; CI may cache that directory.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECONDS_PER_TARGET=${1:-${FUZZ_SECONDS:-20}}
BUILD=${FUZZ_BUILD:-$ROOT/build-fuzz}
TARGETS=(zoo_codec idx convert)

if ! command -v clang++ >/dev/null; then
  echo "run_fuzz: clang++ not found (Debian: apt-get install clang libclang-rt-dev)" >&2
  exit 2
fi
start=$(date +%s)
if [[ ! -f $BUILD/build.ninja ]]; then
  CC=clang CXX=clang++ cmake -S "$ROOT/tests/fuzz" -B "$BUILD" -G Ninja >/dev/null
fi
if ! ninja -C "$BUILD" >"$BUILD/ninja.log" 2>&1; then
  echo "run_fuzz: the fuzz build failed (log $BUILD/ninja.log):" >&2
  grep -E "error|FAILED" "$BUILD/ninja.log" | head -20 >&2
  exit 2
fi
echo "run_fuzz: built in $(( $(date +%s) - start ))s"

mkdir -p "$BUILD/artifacts" "$BUILD/seeds"
"$BUILD/make_seeds" "$BUILD/seeds" >/dev/null

# -malloc_limit_mb: a parser that allocates by a size the input merely claims is a finding.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in "${TARGETS[@]}"; do
  corpus="$BUILD/corpus/$t"
  mkdir -p "$corpus"
  cp -n "$BUILD/seeds/$t"/* "$corpus/" 2>/dev/null || true
  # Inputs that once found a bug (tests/fuzz/regressions/<target>/) always run first.
  cp -n "$ROOT/tests/fuzz/regressions/$t"/* "$corpus/" 2>/dev/null || true
  log="$BUILD/fuzz_$t.log"
  if "$BUILD/fuzz_$t" "$corpus" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 \
      -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$BUILD/artifacts/$t-" >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    echo "ok   fuzz_$t: $runs inputs in ${SECONDS_PER_TARGET}s, $cov, corpus $(ls "$corpus" | wc -l)"
  else
    failed+=("$t")
    echo "FAIL fuzz_$t (log $log):"
    grep -E "^==[0-9]+== ?ERROR|SUMMARY|runtime error|Test unit written" "$log" | head -8
  fi
done
echo "run_fuzz: $(( ${#TARGETS[@]} - ${#failed[@]} ))/${#TARGETS[@]} targets clean, $(( $(date +%s) - start ))s in all"
[[ ${#failed[@]} -eq 0 ]]
