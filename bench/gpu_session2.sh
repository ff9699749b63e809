#!/usr/bin/env bash
# The second GPU session's script (device tool, repository root, $OUT set): the device-cache input path.
# Carried: local/dfdc-faces and local/pylib (see bench/gpu_session.sh).
set -u
export PYTHONPATH="$PWD/src:$PWD/local/pylib" PYTHONUNBUFFERED=1
WORK=/tmp/dfdetect-work; mkdir -p "$WORK"
LOG="$OUT/log.txt"
stamp() { echo "=== $(date +%T) $*" | tee -a "$LOG"; }

stamp "training throughput: naive vs dfdetect (device cache, default on CUDA) vs workers vs model step, 256 px"
timeout "${BENCH_SECONDS:-120}" python3 bench/train_throughput.py --images 1024 --image-size 256 --epochs 2 \
    --json "$OUT/train_throughput.json" 2>&1 | grep -v Warning | tail -16 | tee -a "$LOG"

stamp "efficientnet_lite0, backbone lr x 0.1, device cache, 224 px on dfdc-faces"
timeout "${EXTRA_SECONDS:-75}" python3 -m dfdetect experiment --data local/dfdc-faces --models efficientnet_lite0 \
    --image-size 224 --epochs 20 --backbone-lr-factor 0.1 --out "$WORK/lowlr" 2>&1 \
    | grep -E "epoch|^\|" | tail -30 | tee -a "$LOG"
cp "$WORK"/lowlr/efficientnet_lite0/history.csv "$OUT/lowlr_history.csv" 2>/dev/null
cp "$WORK"/lowlr/efficientnet_lite0/test/metrics.json "$OUT/lowlr_test_metrics.json" 2>/dev/null
stamp "done"
