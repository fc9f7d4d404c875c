#!/usr/bin/env bash
# Issue 6's harder-zoo question over several embedder seeds, end to end through the real server
# and CLI: does the learned embedding beat the untrained encoder on a poly1d zoo whose families
# are all drawn near one shared polynomial? (core/embed/README.md records the answers.)
#   1. `gradzoo train`: poly1d, 10 families x ZOO_SEEDS seeds (one fifth validation), 1-16-16-1,
#      family seed 5, the given similarity (task.h: 0 = independent families, 1 = identical);
#   2. per embedder seed, `gradzoo embedder train` with the full acceptance test's options for
#      that zoo (embed_test.cc's HardestOptions: 192 points, size 16, hidden 48, 3600 steps,
#      lr 3e-3, span masks of rate 0.3), then `gradzoo probe --target label`;
#   3. a table: linear / 5-NN / separation of the learned embedding against the untrained
#      encoder (same architecture, the seed's initial weights), the McNemar p-values of that
#      comparison (`gradzoo probe`: below 0.05 the accuracy gap is unlikely to be chance) and
#      the gradient profile, with means over the seeds.
#   usage: tests/bench/embed_hard_sweep.sh [BUILD_DIR=build] [SIMILARITY=0.95]
#            [EMBEDDER_SEEDS=1,2,3,4,5] [ZOO_SEEDS=50] [STEPS=3600] [MEMBERS=1]
#            [DISTANCE_WEIGHT=0]
# With MEMBERS > 1 each embedder has that many members (--members; seeds N..N+MEMBERS-1) and
# is compared with as many untrained encoders side by side. DISTANCE_WEIGHT > 0 adds the
# function-distance term (--distance-weight).
# About 1 minute for the zoo and 100 s per embedder seed and member on 2 cores. Not part of
# `make test`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
SIMILARITY=${2:-0.95}
EMBEDDER_SEEDS=${3:-1,2,3,4,5}
ZOO_SEEDS=${4:-50}
STEPS=${5:-3600}
MEMBERS=${6:-1}
DISTANCE_WEIGHT=${7:-0}
# shellcheck source=tests/bench/server_lib.sh
source "$ROOT/tests/bench/server_lib.sh"
export OMP_WAIT_POLICY=PASSIVE

ninja -C "$BUILD" gradzoo gradzoo-server >/dev/null
start_server
CLI="$BUILD/gradzoo --server 127.0.0.1:$PORT --timeout 1200"

VAL=$((ZOO_SEEDS / 5))
seeds=$(seq -s, 0 $((ZOO_SEEDS - 1)))
vseeds=$(seq -s, $((ZOO_SEEDS - VAL)) $((ZOO_SEEDS - 1)))
echo "== zoo: poly1d 10 families x $ZOO_SEEDS seeds, similarity $SIMILARITY, family seed 5"
start=$SECONDS
$CLI train hard --task poly1d --families 10 --similarity "$SIMILARITY" --family-seed 5 \
  --seeds "$seeds" --validation-seeds "$vseeds" --hidden 16,16 --steps 1500 --batch 128 \
  --lr 0.01 --train-examples 256 --validation-examples 64 >"$WORK/zoo.txt" 2>&1 ||
  { cat "$WORK/zoo.txt"; exit 1; }
echo "   trained in $((SECONDS - start)) s"

printf '%-5s %-22s %-22s %-16s %-22s %s\n' seed "learned lin/kNN/sep" "untrained lin/kNN/sep" \
  "p lin/kNN" "profile lin/kNN/sep" "cloze"
for seed in ${EMBEDDER_SEEDS//,/ }; do
  $CLI embedder train "hard-e$seed" --zoo hard --points 192 --size 16 --hidden 48 \
    --steps "$STEPS" --lr 0.003 --batch-models 32 --mask-rate 0.3 --mask-shape spans \
    --members "$MEMBERS" --distance-weight "$DISTANCE_WEIGHT" \
    --seed "$seed" --wait >"$WORK/train$seed.txt" 2>&1 || { cat "$WORK/train$seed.txt"; exit 1; }
  cloze=$(sed -n 's/.*validation cloze MSE \([0-9.e+-]*\).*/\1/p' "$WORK/train$seed.txt")
  $CLI probe "hard-e$seed" --zoo hard --target label >"$WORK/probe$seed.txt"
  row() { awk -v r="$1" '$1 == r { printf "%.3f / %.3f / %.3f", $2, $3, $4 }' "$WORK/probe$seed.txt"; }
  pvalues=$(awk '$1 == "untrained_encoder" { printf "%s / %s", $5, $6 }' "$WORK/probe$seed.txt")
  printf '%-5s %-22s %-22s %-16s %-22s %s\n' "$seed" "$(row embedding)" "$(row untrained_encoder)" \
    "$pvalues" "$(row gradient_profile)" "$cloze"
  awk -v s="$seed" '$1 ~ /^(embedding|untrained_encoder)$/ { print s, $1, $2, $3, $4 }' \
    "$WORK/probe$seed.txt" >>"$WORK/all.txt"
done
awk '{ n[$2]++; lin[$2] += $3; knn[$2] += $4; sep[$2] += $5 }
     $2 == "embedding" { l = $3; k = $4; p = $5 }
     $2 == "untrained_encoder" { wl += l > $3; wk += k > $4; ws += p > $5; tl += l == $3; tk += k == $4 }
     END {
       printf "mean  %.3f / %.3f / %.3f    %.3f / %.3f / %.3f\n",
              lin["embedding"] / n["embedding"], knn["embedding"] / n["embedding"],
              sep["embedding"] / n["embedding"], lin["untrained_encoder"] / n["untrained_encoder"],
              knn["untrained_encoder"] / n["untrained_encoder"],
              sep["untrained_encoder"] / n["untrained_encoder"]
       printf "learned ahead of the untrained encoder in %d / %d seeds on linear (%d tied), %d on 5-NN (%d tied), %d on separation\n",
              wl, n["embedding"], tl, wk, tk, ws
     }' "$WORK/all.txt"
