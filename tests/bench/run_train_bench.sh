#!/usr/bin/env bash
# Training benchmark: gradzoo's TrainEnsemble versus PyTorch (Debian python3-torch, the same
# OpenBLAS) on 500 models 2-32-32-1 ReLU on y = x1 x2, same data, initial weights, minibatch
# order, steps, batch size, Adam and cosine schedule, same thread count, in one run. Not part
# of `make test`; a ratio, not a timed test. See tests/bench/train_README.md.
#
#   usage: tests/bench/run_train_bench.sh [THREADS (default: nproc)] [ROUNDS (default: 3)]
#   env:   STEPS (300), BATCH (64), MODELS (500), LOOP_MODELS (10: the Python loop's cost is
#          linear in the models, so it runs on the first few), FORMS (PyTorch forms, default
#          all), REFERENCE=1 (also time gradzoo's ATen batched path), BENCH_BUILD (build dir);
#          OPENBLAS_CORETYPE=SkylakeX gives PyTorch OpenBLAS's AVX-512 kernels on CPUs that
#          Debian's OpenBLAS does not recognise (see train_README.md)
#
# Each round runs gradzoo once and every PyTorch form once, one after the other, so load from
# other processes hits all of them alike; the summary gives medians over rounds and the spread.
# Prints every raw record as JSON lines, then a table.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
THREADS=${1:-$(nproc)}
ROUNDS=${2:-3}
STEPS=${STEPS:-300}
BATCH=${BATCH:-64}
MODELS=${MODELS:-500}
LOOP_MODELS=${LOOP_MODELS:-10}
FORMS=${FORMS:-bmm_foreach,bmm_single,vmap_grad,vmap_autograd,loop}
BUILD=${BENCH_BUILD:-$ROOT/build-bench}
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$THREADS
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# An existing build directory (the standalone bench project, or a main build configured with
# -DGRADZOO_BUILD_BENCH=ON) is reused as it is; a new one is configured as the standalone project.
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$ROOT/tests/bench" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
ninja -C "$BUILD" -j2 train_bench >/dev/null
BENCH=$(find "$BUILD" -name train_bench -type f -perm -u+x | head -1)
ARGS=(--threads "$THREADS" --models "$MODELS" --steps "$STEPS" --batch "$BATCH")
"$BENCH" "${ARGS[@]}" --dump "$WORK" --repeats 0 >/dev/null
: >"$WORK/records.jsonl"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS ($(uptime | sed 's/.*load average/load average/'))" >&2
  "$BENCH" "${ARGS[@]}" --gemm >>"$WORK/records.jsonl"
  # The machine's GEMM peak: Debian's OpenBLAS does not recognise some CPUs under KVM and falls
  # back to SSE3 kernels; its AVX-512 ones (SkylakeX) give the real rate.
  OPENBLAS_CORETYPE=SkylakeX "$BENCH" --threads "$THREADS" --repeats 0 --gemm >>"$WORK/records.jsonl"
  if [[ "${REFERENCE:-0}" == 1 ]]; then
    "$BENCH" "${ARGS[@]}" --reference >>"$WORK/records.jsonl"
  fi
  /usr/bin/python3 "$ROOT/tests/bench/train_bench_torch.py" "$WORK" --threads "$THREADS" \
    --forms "$FORMS" --loop-models "$LOOP_MODELS" >>"$WORK/records.jsonl"
done

/usr/bin/python3 - "$WORK/records.jsonl" <<'PY'
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in recs:
    print(json.dumps({k: v for k, v in r.items() if k != "val_mse"}))
gemm_recs = [r for r in recs if r["impl"] == "gemm"]
recs = [r for r in recs if r["impl"] != "gemm"]
by = {}
for r in recs:
    by.setdefault(r["impl"], []).append(r)
def med(impl, key):
    return statistics.median(r[key] for r in by[impl])
def spread(impl):
    v = [r["model_steps_per_s"] for r in by[impl]]
    return (max(v) - min(v)) / statistics.median(v)
g = by["gradzoo"]
rate = med("gradzoo", "model_steps_per_s")
def gemm_rate(rs, key):
    return statistics.median(r[key + "_2048"] for r in rs)
gflops = med("gradzoo", "gflops")
gflops_cpu = med("gradzoo", "gflops_per_cpu_s")
ref_val = g[0]["val_mse"]
first = g[0]
print(f"\n{first['models']} models 2-32-32-1 ReLU on x1*x2, {first['steps']} steps, batch {first['batch']}, "
      f"Adam + cosine lr, {first['threads']} thread(s), {len(g)} round(s), medians (spread = (max-min)/median)")
print(f"{'impl':16s} {'model-steps/s':>14s} {'spread':>7s} {'gradzoo is':>11s} {'per CPU-s':>10s} {'gradzoo is':>11s} "
      f"{'mean val MSE':>13s} {'|dMSE|/MSE per model: median':>29s} {'max':>9s}")
print(f"{'':16s} {'(wall)':>14s} {'':>7s} {'(wall)':>11s} {'':>10s} {'(CPU time)':>11s}")
batched = [f for f in by if f not in ("gradzoo", "gradzoo-reference", "loop")]
cpu_rate = med("gradzoo", "model_steps_per_cpu_s")
for impl in ["gradzoo", "gradzoo-reference"] + batched + ["loop"]:
    if impl not in by:
        continue
    r = med(impl, "model_steps_per_s")
    c = med(impl, "model_steps_per_cpu_s")
    last = by[impl][-1]
    n = len(last["val_mse"])
    devs = [abs(a - b) / b for a, b in zip(last["val_mse"], ref_val[:n])]
    note = f" (first {n} models)" if n < len(ref_val) else ""
    print(f"{impl:16s} {r:14.0f} {spread(impl):7.1%} {rate / r:10.2f}x {c:10.0f} {cpu_rate / c:10.2f}x "
          f"{statistics.median(x['mean_val_mse'] for x in by[impl]):13.6g} {statistics.median(devs):29.2e} "
          f"{max(devs):9.2e}{note}")
if batched:
    best = max(batched, key=lambda f: med(f, "model_steps_per_s"))
    print(f"\nbest batched PyTorch form: {best}; gradzoo / it = {rate / med(best, 'model_steps_per_s'):.2f}x wall, "
          f"{cpu_rate / med(best, 'model_steps_per_cpu_s'):.2f}x CPU time (target >= 2x)")
    if "loop" in by:
        print(f"best batched / loop = {med(best, 'model_steps_per_s') / med('loop', 'model_steps_per_s'):.2f}x")
import os
as_run = "OPENBLAS_CORETYPE=" + os.environ["OPENBLAS_CORETYPE"] if os.environ.get("OPENBLAS_CORETYPE") else "default OpenBLAS"
for what, rs in ((as_run, g), ("OPENBLAS_CORETYPE=SkylakeX", gemm_recs)):
    if not rs:
        continue
    wall, cpu = gemm_rate(rs, "gemm_gflops"), gemm_rate(rs, "gemm_gflops_per_cpu_s")
    print(f"sgemm at::mm 2048^3 ({what}): {wall:.1f} GFLOP/s wall, {cpu:.1f} GFLOP per CPU-s; gradzoo "
          f"(forward+backward matmul FLOPs) {gflops:.2f} GFLOP/s wall = {gflops / wall:.1%}, "
          f"{gflops_cpu:.2f} GFLOP per CPU-s = {gflops_cpu / cpu:.1%}")
PY
