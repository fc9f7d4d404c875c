#!/usr/bin/env bash
# Gradient benchmark: gradzoo's 1M-point field and region count of a 4-64-64-2 ReLU MLP versus
# PyTorch (Debian python3-torch: batched autograd, functorch vmap(jacrev), torch.unique,
# numpy.unique), same machine, same BLAS, same thread count, in one run. Not part of `make test`.
#   usage: tests/bench/run_grad_bench.sh [THREADS (default: nproc)] [REPEATS (default 3)]
# Builds tests/bench into build-bench/ (core-only, Release; or set GRAD_BENCH_BIN to a built
# grad_bench), then prints a JSON record of every
# timing and a table of ratios. See tests/bench/README.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
THREADS=${1:-$(nproc)}
REPEATS=${2:-3}
BUILD=${BENCH_BUILD:-$ROOT/build-bench}
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$THREADS
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [[ -n "${GRAD_BENCH_BIN:-}" ]]; then  # an already built grad_bench (e.g. a main build with
  BIN=$GRAD_BENCH_BIN                    # -DGRADZOO_BUILD_BENCH=ON: BUILD/tests/bench/grad_bench)
else
  cmake -S "$ROOT/tests/bench" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C "$BUILD" grad_bench >/dev/null
  BIN=$BUILD/grad_bench
fi
echo "date $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$BIN" --threads "$THREADS" --out "$WORK" --repeats "$REPEATS" >"$WORK/ours.json"
/usr/bin/python3 "$ROOT/tests/bench/grad_bench.py" "$WORK" "$THREADS" "$REPEATS" >"$WORK/torch.json"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

/usr/bin/python3 - "$WORK/ours.json" "$WORK/torch.json" <<'PY'
import json, sys
ours, ref = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(json.dumps({"gradzoo": ours, "pytorch": ref}))
n = ours["points"]
print(f"\n{n} points, 4-64-64-2 ReLU, {ours['threads']} thread(s), torch {ref['torch']}, best of runs")
print(f"machine sgemm: {ours['gemm_gflops_4096']:.1f} GFLOP/s (4096^3), {ours['gemm_gflops_tall_64']:.1f} GFLOP/s ([262144,64]x[64,64]); "
      f"per CPU-second {ours['gemm_gflops_per_cpu_s_4096']:.1f} and {ours['gemm_gflops_per_cpu_s_tall_64']:.1f}")
forms = ("autograd_batched", "autograd_chunked", "vmap_jacrev", "vmap_jacrev_chunked")
for name in ("grid", "random"):
    o, t = ours[name], ref[name]
    best_form = min(forms, key=lambda f: t[f])
    print(f"\n[{name} points]  regions: gradzoo {o['regions']} exact, numpy.unique {t['numpy_unique_regions']}, "
          f"torch.unique(rounded grads) {t['torch_unique_regions']}")
    print(f"  field     gradzoo {o['field_s']:.3f} s wall, {o['field_cpu_s']:.3f} s CPU ({n / o['field_s'] / 1e6:.2f} M points/s, "
          f"{o['field_gflops']:.1f} GFLOP/s = {100 * o['field_gflops'] / ours['gemm_gflops_4096']:.0f}% of sgemm; "
          f"per CPU-second {o['field_gflops_per_cpu_s']:.1f} = {100 * o['field_gflops_per_cpu_s'] / ours['gemm_gflops_per_cpu_s_4096']:.0f}%)")
    for f in forms:
        print(f"            {f:22s} {t[f]:.3f} s wall ({t[f] / o['field_s']:.2f}x), "
              f"{t[f + '_cpu']:.3f} s CPU ({t[f + '_cpu'] / o['field_cpu_s']:.2f}x)")
    print(f"  -> vs the best PyTorch form ({best_form}): {t['best_field_s'] / o['field_s']:.2f}x wall, "
          f"{t['best_field_cpu_s'] / o['field_cpu_s']:.2f}x CPU (target >= 3x)")
    print(f"  regions   gradzoo {o['regions_s']:.3f} s wall, {o['regions_cpu_s']:.3f} s CPU")
    for label, key in (("torch.unique alone", "torch_unique"), ("torch.unique + gradients", "torch_unique_with_gradients"),
                       ("numpy.unique alone", "numpy_unique"), ("numpy.unique + masks", "numpy_unique_with_masks")):
        print(f"            {label:26s} {t[key + '_s']:.3f} s wall ({t[key + '_s'] / o['regions_s']:.1f}x), "
              f"{t[key + '_cpu_s']:.3f} s CPU ({t[key + '_cpu_s'] / o['regions_cpu_s']:.1f}x)")
    print("            (targets: >= 10x torch.unique on rounded gradients, faster than numpy.unique on packed masks)")
PY
