#!/usr/bin/env bash
# Installs what gradzoo needs on Debian 12, idempotently: Debian packages via apt-get (only the
# missing ones), and buf (proto lint) from npm into tools/node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-pthread
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libeigen3-dev libspdlog-dev libgtest-dev libgmock-dev libabsl-dev libsqlite3-dev libssl-dev zlib1g-dev
  dataset-fashion-mnist
  python3 python3-grpcio python3-protobuf python3-numpy python3-torch
  python3-nbconvert python3-ipykernel python3-matplotlib python3-sklearn
  graphviz nginx openssl clang
)
# Node.js and npm (for buf) may come from outside Debian; install Debian's only if absent.
if ! command -v npm >/dev/null 2>&1; then PACKAGES+=(nodejs npm); fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages present"
fi

# LibTorch must resolve sgemm_ through OpenBLAS, not the reference BLAS (~30x slower).
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
  *openblas*) echo "setup: BLAS is $blas" ;;
  *) echo "setup: WARNING: libblas.so.3 -> $blas (not OpenBLAS); LibTorch will be slow" >&2 ;;
esac

if [[ ! -x tools/node_modules/.bin/buf ]]; then
  echo "setup: installing buf (npm @bufbuild/buf)"
  # npm ci installs exactly the committed lock and never rewrites it (npm install added the
  # other platforms' optional packages to it, leaving a fresh clone dirty after make test).
  (cd tools && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup: done"
