#!/usr/bin/env bash
# Superseded by scripts/gpu_window.sh (issue 16: bench in both precisions, GPU tests, the resumable campaign).
# Issue 6's device check, prepared to run once on a lent GPU (the `device` tool; 15 minutes of device
# time in all, one command of at most 600 s):
#   1. python -m superconv.bench on CUDA (ResNet-20/56 x batch 128/1000, project vs tutorial reference);
#   2. the paper's Fig 1a CLR run (ResNet-56 paper variant, batch 1000, 10k iterations, bf16, compiled)
#      in the time left: if it does not fit, SIGTERM makes it checkpoint and stop, and what it ran stays;
#   3. the fast-path numerics test on CUDA (tests/test_fast_path.py -k cuda), if time is left.
# Needs carry/site (hydra, omegaconf, antlr4: the device image lacks them), carry/cifar10-jpeg.tar.gz and
# carry/make_cifar10.py (copies of ../shared/data). Writes under $OUT: log.txt, bench/bench.jsonl and the
# run's config.yaml, metrics.csv, summary.json (and DONE when it completed) in fig1a/.
# BENCH_ARGS / TRAIN_ARGS / BUDGET override the defaults (a CPU rehearsal uses tiny ones).
set -u
T0=$(date +%s)
BUDGET=${BUDGET:-575}
OUT=${OUT:-/tmp/gpu_check}
PY=${PY:-python3}
BENCH_ARGS=${BENCH_ARGS:---device cuda --warmup 5 --min-steps 10 --min-seconds 3}
TRAIN_ARGS=${TRAIN_ARGS:-experiment=fig1a protocol=clr train.compile=true logger=none}
RUN_DIR=${RUN_DIR:-results/fig1a/protocol=clr}
export PYTHONPATH=$PWD/src:$PWD:$PWD/carry/site PYTHONUNBUFFERED=1
left() { echo $((BUDGET - ($(date +%s) - T0))); }
mkdir -p "$OUT/bench" "$OUT/fig1a"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null
  $PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available())"
  if [ ! -f data/cifar-10-batches-py/data_batch_1 ]; then
    $PY carry/make_cifar10.py data carry/cifar10-jpeg.tar.gz || echo "data build failed"
  fi
  echo "== bench ($(left) s left)"
  timeout 240 $PY -m superconv.bench $BENCH_ARGS --out "$OUT/bench"
  echo "bench exit $?"
  L=$(($(left) - 75))
  echo "== train: $L s for: $TRAIN_ARGS"
  t1=$(date +%s)
  timeout -s TERM -k 20 $L $PY -m superconv.train $TRAIN_ARGS
  rc=$?
  echo "train exit $rc after $(($(date +%s) - t1)) s"
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 143 ] && [ $(($(date +%s) - t1)) -lt 200 ]; then
    L=$(($(left) - 75))
    echo "== train again without compile: $L s"
    timeout -s TERM -k 20 $L $PY -m superconv.train $TRAIN_ARGS train.compile=false
    echo "train exit $?"
  fi
  ls -la "$RUN_DIR"
  for f in config.yaml metrics.csv summary.json DONE; do cp "$RUN_DIR/$f" "$OUT/fig1a/" 2>/dev/null; done
  echo "== fast-path test ($(left) s left)"
  [ "$(left)" -gt 40 ] && timeout $(($(left) - 10)) $PY -m pytest -q -p no:cacheprovider -m "" -k cuda tests/test_fast_path.py
  echo "done after $(($(date +%s) - T0)) s"
} 2>&1 | tee "$OUT/log.txt"
