#!/usr/bin/env bash
# ASan + UBSan build of gradzoo and its test suite in build-asan/, then the core and server
# tests (ctest -L 'core|server'). Exit status: ctest's.
#
#   scripts/sanitize.sh [ctest args...]       e.g. scripts/sanitize.sh -R Auth
#   ASAN_BUILD=DIR   build directory (default build-asan in the repository root)
#   JOBS=N           parallel compile jobs and test processes (default nproc)
#   SAN_CXX=clang++  compiler (default: CMake's, i.e. g++)
#
# -O1 keeps the LibTorch-heavy objects' build time tolerable; frame pointers and line tables
# give readable reports. UBSan aborts on the first report (-fno-sanitize-recover), so a report
# fails its test. LibTorch, gRPC and protobuf are Debian's (not instrumented): bugs inside them
# are not seen, but every access our code makes to their memory is.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${ASAN_BUILD:-$ROOT/build-asan}
JOBS=${JOBS:-$(nproc)}
FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g1"

cmake_args=(-S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -DNDEBUG"
  "-DCMAKE_CXX_FLAGS=$FLAGS"
  "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined"
  "-DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=address,undefined")
if [[ -n "${SAN_CXX:-}" ]]; then cmake_args+=("-DCMAKE_CXX_COMPILER=$SAN_CXX"); fi
cmake "${cmake_args[@]}" >/dev/null
# Set before building too: gtest_discover_tests runs the test binaries at build time.
# Leak checking covers our code; the suppressions name third-party singletons that live until
# exit by design.
cat >"$BUILD/lsan.supp" <<'SUPP'
leak:libtorch
leak:libc10
leak:libprotobuf
leak:libgrpc
leak:libgomp
leak:libopenblas
SUPP
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=0:strict_init_order=1:check_initialization_order=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$BUILD/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_WAIT_POLICY=PASSIVE
start=$(date +%s)
ninja -C "$BUILD" -j "$JOBS" gradzoo_core_tests gradzoo_server_tests gradzoo-server gradzoo
echo "sanitize: built in $(( $(date +%s) - start ))s"

cd "$BUILD"
ctest -L 'core|server' --output-on-failure -j "$JOBS" --timeout 900 "$@"
