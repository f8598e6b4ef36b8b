#!/usr/bin/env bash
# One time-limited GPU session as ONE command: a SLURM job with a time limit, a preemptible VM, a notebook
# session, or a machine without network that receives this tree (plus carry/) and sends back $OUT. It fits
# WINDOW seconds (default 570: set it to your session's limit minus start-up), then packs what it wrote.
# On the GPU machine, in the repository's root, it
#   1. installs carry/wheels offline when there are any (scripts/prepare_gpu_carry.sh; a machine with the
#      project installed needs none) and, without data/, builds it from the first archive in carry/
#      (python -m superconv.data_archive; `make data` downloads it where the network allows);
#   2. bench (make bench's superconv.bench, on CUDA, this project's path): ResNet-20/56 x batch 128/1000 in
#      bf16 and in fp32 with TF32 tensor cores (train.tf32=true); BENCH_COMPILE=1 adds ResNet-56 compiled with
#      CUDA graphs (train.compile_mode=reduce-overhead);
#   3. the aggregate img/s of 1, 2, 4 runs side by side (experiments.concurrency), once per GPU model: only
#      while results/bench/concurrency.jsonl holds no record of a CUDA device;
#   4. the GPU tests (tests/test_fast_path.py -k cuda, slow ones included: compile modes, TF32);
#   5. the campaign (experiments.campaign, experiments/campaign.yaml) with the time left, into results/;
#   6. packs what it wrote under results/ into $OUT/results.tar.gz (experiments.window) beside log.txt
#      and runlogs.tar.gz (each run's and the tests' output).
# Where the repository lives afterwards: python -m experiments.window unpack <the folder holding $OUT's files>;
# make aggregate figures; git add results paper_figures; git commit (README.md "Time-limited GPUs"). On a
# machine that shares the repository's file system, `make campaign BUDGET=...` alone does steps 5's work in place.
# A CPU rehearsal (no GPU): DEVICE=cpu RESULTS=/tmp/r WINDOW=120 BENCH_ARGS="..." TESTS=none CAMPAIGN_ARGS="..."
set -u
T0=$(date +%s)
WINDOW=${WINDOW:-570}                 # seconds for the whole command (the session's limit, minus a margin)
OUT=${OUT:-/tmp/gpu_window_out}
RESULTS=${RESULTS:-results}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
BENCH=${BENCH:-1}
BENCH_ARGS=${BENCH_ARGS:---depths 20 56 --batches 128 1000 --paths project --warmup 5 --min-steps 10 --min-seconds 2}
BENCH_COMPILE=${BENCH_COMPILE:-0}
CONCURRENCY=${CONCURRENCY:-auto}      # auto: measure unless recorded for CUDA | 1: measure | 0: skip
CONCURRENCY_ARGS=${CONCURRENCY_ARGS:---levels 1 2 4 --seconds 10 --depth 56 --batch 1000}
TESTS=${TESTS:-all}                   # all: -m "" (compiled steps too) | fast | none
CAMPAIGN_ARGS=${CAMPAIGN_ARGS:-}
RESERVE=${RESERVE:-25}                # seconds kept after the campaign for packing and the transfer back
WORK=$(mktemp -d /tmp/gpu_window.XXXX)
mkdir -p "$OUT" "$WORK/runlogs"
touch "$WORK/stamp"                   # everything under $RESULTS newer than this comes back
left() { echo $((WINDOW - ($(date +%s) - T0))); }
phase() { echo "== $* ($(($(date +%s) - T0)) s in, $(left) s left)"; }

{
  phase setup
  [ -f carry/git_sha ] && export SUPERCONV_GIT_SHA=$(cat carry/git_sha)
  if ls carry/wheels/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
      carry/wheels/*.whl || echo "wheel install failed"
  fi
  export PYTHONPATH=$PWD/src:$PWD:$WORK/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null
  $PY -c "import torch, hydra, omegaconf; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'hydra', hydra.__version__, 'sha', '${SUPERCONV_GIT_SHA:-?}')"
  archive=$(ls carry/*.tar.gz carry/*.tgz carry/*.zip 2>/dev/null | head -1)
  if [ ! -f data/cifar-10-batches-py/data_batch_1 ] && [ -n "$archive" ]; then
    $PY -m superconv.data_archive --archive "$archive" --dest data || echo "data build failed"
  fi
  ls data/cifar-10-batches-py 2>/dev/null | tr '\n' ' '; echo

  if [ "$BENCH" = 1 ]; then
    phase "bench bf16"
    timeout 90 $PY -m superconv.bench --device $DEVICE --precision bf16 $BENCH_ARGS --out "$RESULTS/bench"
    phase "bench fp32/TF32"
    timeout 90 $PY -m superconv.bench --device $DEVICE --precision fp32 --set train.tf32=true $BENCH_ARGS \
      --out "$RESULTS/bench"
    if [ "$BENCH_COMPILE" = 1 ]; then
      phase "bench bf16 compiled, reduce-overhead"
      timeout 240 $PY -m superconv.bench --device $DEVICE --precision bf16 --compile \
        --set train.compile_mode=reduce-overhead --depths 56 --batches 128 1000 --paths project --warmup 10 \
        --min-steps 20 --min-seconds 3 --out "$RESULTS/bench"
    fi
  fi

  if [ "$CONCURRENCY" = 1 ] || { [ "$CONCURRENCY" = auto ] && ! grep -q '"device": "cuda' "$RESULTS/bench/concurrency.jsonl" 2>/dev/null; }; then
    phase "runs side by side"
    timeout 150 $PY -m experiments.concurrency --device $DEVICE $CONCURRENCY_ARGS --out "$RESULTS/bench"
  fi

  if [ "$TESTS" != none ]; then
    phase "GPU tests"
    marks=$([ "$TESTS" = all ] && echo "" || echo "not slow")
    timeout 150 $PY -m pytest -q -p no:cacheprovider -m "$marks" -k cuda tests/test_fast_path.py \
      > "$WORK/runlogs/gpu_tests.log" 2>&1
    echo "GPU tests exit $?"; tail -15 "$WORK/runlogs/gpu_tests.log"
  fi

  budget=$(($(left) - RESERVE))
  phase "campaign, budget $budget s"
  if [ "$budget" -gt 30 ]; then
    $PY -m experiments.campaign --budget "$budget" --out "$RESULTS" --logs "$WORK/runlogs" $CAMPAIGN_ARGS
    echo "campaign exit $?"
  fi

  phase pack
  $PY -m experiments.window pack --since "$WORK/stamp" --results "$RESULTS" --out "$OUT"
  tar -czf "$OUT/runlogs.tar.gz" -C "$WORK" runlogs
  ls -la "$OUT"
  phase done
} 2>&1 | tee "$OUT/log.txt"
