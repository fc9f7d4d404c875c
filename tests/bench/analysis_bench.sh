#!/usr/bin/env bash
# Runs the analysis benchmark (tests/bench/analysis_README.md): builds analysis_bench against an
# existing build directory's libgradzoo_core.a, times gradzoo's streaming PCA of a 1M x 64
# gradient matrix and the fused gradient-PCA path, then numpy and torch cov + eigh on the same
# files with the same thread count, and prints the ratios.
#   usage: tests/bench/analysis_bench.sh [BUILD_DIR=build] [N=1000000] [THREADS=2] [REPS=3]
# Not part of `make test`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
N=${2:-1000000}
THREADS=${3:-2}
REPS=${4:-3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

ninja -C "$BUILD" gradzoo_core >/dev/null
# Compile and link like gradzoo_core_tests (same flags and libraries), without gtest.
ninja -C "$BUILD" -t commands tests/gradzoo_core_tests >"$WORK/commands.txt"
compile=$(grep -m1 -- '_test.cc.o -c ' "$WORK/commands.txt")
compile=$(echo "$compile" | sed -E 's# -MD -MT [^ ]+ -MF [^ ]+##; s# -o [^ ]+ -c [^ ]+$##')
link=$(grep -m1 -- "-o tests/gradzoo_core_tests " "$WORK/commands.txt" | sed -e 's/^: && //' -e 's/ && .*$//')
link=$(echo "$link" | sed -E 's# tests/CMakeFiles/gradzoo_core_tests.dir/core/[a-z0-9_]+_test.cc.o##g; s#[^ ]*libgtest_main.a##; s#[^ ]*libgmock.a##; s#[^ ]*libgtest.a##')
link=$(echo "$link" | sed -E "s# -o tests/gradzoo_core_tests # $WORK/bench.o -o $WORK/analysis_bench #")
(cd "$BUILD" && eval "$compile -o $WORK/bench.o -c $ROOT/tests/bench/analysis_bench.cc" && eval "$link")

echo "== gradzoo (C++)"
"$WORK/analysis_bench" "$WORK" "$N" "$THREADS" "$REPS" | tee "$WORK/cpp.txt"

echo "== numpy / torch (python3, same data, $THREADS threads)"
/usr/bin/python3 - "$WORK" "$N" "$THREADS" "$REPS" <<'PY' | tee "$WORK/py.txt"
import sys, time
import numpy as np
import torch
work, n, threads, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
G = np.fromfile(work + "/grads.f32", dtype=np.float32).reshape(n, 64)
def best(fn):
    t = 1e300
    for _ in range(reps):
        t0 = time.perf_counter(); r = fn(); t = min(t, time.perf_counter() - t0)
    return t, r
t_np, w_np = best(lambda: np.linalg.eigh(np.cov(G, rowvar=False))[0][::-1])
print("numpy_cov_eigh %.4f" % t_np)
Gt = torch.from_numpy(G)
t_t, w_t = best(lambda: torch.linalg.eigh(torch.cov(Gt.T))[0].flip(0).numpy())
print("torch_cov_eigh %.4f" % t_t)
t_t64, w_t64 = best(lambda: torch.linalg.eigh(torch.cov(Gt.T.double()))[0].flip(0).numpy())
print("torch_cov_eigh_float64 %.4f" % t_t64)
ours = np.loadtxt(work + "/gradzoo_eigenvalues.txt")
print("max_rel_eigenvalue_diff_vs_numpy %.2e" % (np.abs(ours - w_np).max() / w_np[0]))
print("max_rel_eigenvalue_diff_vs_torch_float32 %.2e" % (np.abs(ours - w_t).max() / w_np[0]))
# The fused path's reference: materialise both outputs' gradients at h1 with torch (autograd-free
# analytic products, float32), then uncentred second moments + eigh per output.
P = torch.from_numpy(np.fromfile(work + "/points.f32", dtype=np.float32).reshape(n, 4))
raw = np.fromfile(work + "/net.f32", dtype=np.float32)
shapes = [(64, 4), (64,), (64, 64), (64,), (2, 64), (2,)]
ts, o = [], 0
for s in shapes:
    k = int(np.prod(s)); ts.append(torch.from_numpy(raw[o:o + k].reshape(s).copy())); o += k
W1, b1, W2, b2, W3, b3 = ts
def fused_reference():
    z1 = P @ W1.T + b1; h1 = torch.relu(z1); z2 = h1 @ W2.T + b2
    out = []
    for k in range(2):
        g = (W3[k] * (z2 > 0)) @ W2                 # [N, 64]: d y_k / d h1, materialised
        out.append(torch.linalg.eigh(g.T @ g / n))
    return out
t_f, _ = best(fused_reference)
print("torch_materialise_gradients_then_eigh_2_outputs %.4f" % t_f)
PY

/usr/bin/python3 - "$WORK" <<'PY'
import sys
def read(p):
    d = {}
    for line in open(p):
        parts = line.split()
        if len(parts) == 2:
            try: d[parts[0]] = float(parts[1])
            except ValueError: pass
    return d
c, p = read(sys.argv[1] + "/cpp.txt"), read(sys.argv[1] + "/py.txt")
print("== ratios (higher = gradzoo faster)")
print("numpy cov+eigh / gradzoo PCA          %.1fx" % (p["numpy_cov_eigh"] / c["gradzoo_pca_of_rows"]))
print("torch cov+eigh (f32) / gradzoo PCA    %.1fx" % (p["torch_cov_eigh"] / c["gradzoo_pca_of_rows"]))
print("torch cov+eigh (f64) / gradzoo PCA    %.1fx" % (p["torch_cov_eigh_float64"] / c["gradzoo_pca_of_rows"]))
print("torch materialise+eigh / gradzoo fused %.1fx" % (p["torch_materialise_gradients_then_eigh_2_outputs"] / c["gradzoo_fused_pca_score_2_outputs"]))
PY
