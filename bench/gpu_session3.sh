#!/usr/bin/env bash
# What issue 6 still needs from a GPU, in order of importance (device tool, repository root, $OUT set).
# Carry ["local"]: local/dfdc-faces (a copy of ../shared/data/dfdc-faces) and local/pylib (the
# efficientnet-lite0 wheel's package and optuna if the image lacks it; see bench/gpu_session.sh).
# Every step has its own time limit and writes its results under $OUT as soon as it has them, so a run cut
# short still returns what finished. About 6 minutes on an H200 plus start-up.
#   1. a complete `dfdetect train` + `dfdetect evaluate` on the CUDA uint8 cache (the default input path)
#   2. bench/train_throughput.py at 256 px: (a) naive, (b) dfdetect, (b') workers, (c) model step, cache setup
#   3. the same with --compile for densenet121
set -u
export PYTHONPATH="$PWD/src:$PWD/local/pylib" PYTHONUNBUFFERED=1
WORK=/tmp/dfdetect-work; mkdir -p "$WORK"
LOG="$OUT/log.txt"
stamp() { echo "=== $(date +%T) $*" | tee -a "$LOG"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" \
    | tee -a "$LOG"

stamp "1. densenet121 fit on the CUDA cache, dfdc-faces 224 px, 3 epochs, then evaluate on Test"
timeout "${FIT_SECONDS:-120}" python3 -m dfdetect train --data local/dfdc-faces --model densenet121 \
    --image-size 224 --epochs 3 --out "$WORK/fit" > "$WORK/fit.log" 2>&1
grep -E "input \(|epoch|stopping|Error|error" "$WORK/fit.log" | tail -12 | tee -a "$LOG"
cp "$WORK/fit.log" "$OUT/fit_log.txt"
timeout 60 python3 -m dfdetect evaluate --model "$WORK/fit" --data local/dfdc-faces --split Test 2>&1 \
    | grep -v Warning | tail -8 | tee -a "$LOG"
cp "$WORK"/fit/history.csv "$OUT/fit_history.csv" 2>/dev/null
cp "$WORK"/fit/eval-Test/metrics.json "$OUT/fit_test_metrics.json" 2>/dev/null

stamp "2. training throughput, 256 px, 1024 synthetic JPEGs, both models"
timeout "${BENCH_SECONDS:-180}" python3 bench/train_throughput.py --images 1024 --image-size 256 --epochs 2 \
    --data "$WORK/bench-data" --json "$OUT/train_throughput.json" 2>&1 | grep -v Warning | tail -16 | tee -a "$LOG"

stamp "3. the same for densenet121 with torch.compile"
timeout "${COMPILE_SECONDS:-180}" python3 bench/train_throughput.py --images 1024 --image-size 256 --epochs 2 \
    --models densenet121 --compile --data "$WORK/bench-data" --json "$OUT/train_throughput_compile.json" 2>&1 \
    | grep -v Warning | tail -12 | tee -a "$LOG"
stamp "done"
