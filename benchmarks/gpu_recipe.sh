#!/usr/bin/env bash
# One call of the lent GPU machine (JAX, no TensorFlow) towards a recipe's seeds (issue
# 27), when one seed does not fit one call: the seeds train in turn, each into
# gpu-data/recipes/<name>/seed<N>; the call is killed (kill -9) before its limit, and the
# next call, given that folder back, continues each unfinished run from its last
# finished epoch, which gives exactly the uninterrupted run (tests/training/test_robustness.py).
# A run that has finished is evaluated on the test split once, into its metrics.json.
#   RECIPE   the config (default experiments/configs/sort-of-clevr/best.yaml)
#   PREPARE  `vqa prepare` arguments, without --out (default: sort-of-clevr --images 20000
#            --seed 2026); generated afresh each call, the same bytes from the same seed
#   SEEDS    (default 0 1 2)   TRAIN_SECONDS  of training in this call (default 500)
#   EPOCHS   override the recipe's epochs (a dry run only)
# Needs .whl/ carried (docs/gpu.md); SKIP_INSTALL=1 KERAS_BACKEND=tensorflow dry-runs it on
# a CPU machine. Writes $OUT/recipes.tgz (the run folders) and $OUT/log.txt: unpack the
# archive here (`tar xzf recipes.tgz -C gpu-data`) and carry gpu-data/recipes next call.
#   run: OUT=$OUT bash benchmarks/gpu_recipe.sh   (carry: .whl, gpu-data/recipes)
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
RECIPE=${RECIPE:-experiments/configs/sort-of-clevr/best.yaml}
PREPARE=${PREPARE:-sort-of-clevr --images 20000 --seed 2026}
SEEDS=${SEEDS:-0 1 2}
TRAIN_SECONDS=${TRAIN_SECONDS:-500}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
[ -n "${SKIP_INSTALL:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile \
  --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=${KERAS_BACKEND:-jax} \
  XLA_PYTHON_CLIENT_PREALLOCATE=false
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name --format=csv,noheader
start=$(date +%s)
end=$(( start + TRAIN_SECONDS ))
stamp() { echo "[$(( $(date +%s) - start )) s] $*"; }

name=$(basename "$(dirname "$RECIPE")")/$(basename "$RECIPE" .yaml)
data=${WORK:-/tmp/work}/data
# shellcheck disable=SC2086  # PREPARE is a list of arguments
python3 -m vqa prepare $PREPARE --out "$data" --overwrite > /dev/null || exit 1
stamp "data ready: $PREPARE"

epochs=()
[ -n "${EPOCHS:-}" ] && epochs=(--epochs "$EPOCHS")
for seed in $SEEDS; do
  run=gpu-data/recipes/$name/seed$seed
  if [ ! -f "$run/training.json" ]; then
    left=$(( end - $(date +%s) ))
    [ "$left" -gt 30 ] || { stamp "no time left for seed $seed"; break; }
    stamp "seed $seed: training (up to $left s)"
    timeout -s KILL "$left" python3 -m vqa train "$data" --config "$RECIPE" --seed "$seed" \
      --out "$run" "${epochs[@]}" > "$OUT/train-seed$seed.log" 2>&1
    tail -n 2 "$OUT/train-seed$seed.log"
  fi
  if [ -f "$run/training.json" ] && [ ! -f "$run/metrics.json" ]; then
    python3 -m vqa evaluate "$run" "$data" > "$OUT/test-seed$seed.txt" 2>&1
    stamp "seed $seed: finished and evaluated"
  fi
done
tar czf "$OUT/recipes.tgz" -C gpu-data recipes
stamp "runs in recipes.tgz"
