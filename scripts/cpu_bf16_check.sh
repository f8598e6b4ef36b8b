#!/usr/bin/env bash
# The fused BatchNorm kernel's measurements on a CPU with bf16 instructions (AVX512-BF16 or AMX), in one go:
# `make cpu-bf16-check`.
# About 45 minutes on 2 cores; run it with nothing else on the machine (the bench times both paths in rounds).
#   1. `make bench` twice: every row's project img/s, its convolutions-alone bound and share of it, the
#      reference, and the fused kernel's gain over the unfused path (appended to results/bench/bench.jsonl);
#   2. the profile of one ResNet-56 batch-128 step, top ops by self time, before (kernel off) and after;
#   3. the fp32-vs-bf16 precision check with the kernel on: experiment=precision_check (ResNet-20, 10k images,
#      400 iterations, 2 seeds each) under experiment_name=precision_check_fused_bn, so its runs go to
#      results/precision_check_fused_bn/ beside the runs from before the kernel (results/precision_check/).
# Everything it prints is also kept in $LOG (default: a file under /tmp named by the commit).
# On a CPU without avx512_bf16/amx_bf16 it refuses (exit 2): bf16 runs there at ~1% of fp32's speed, and
# `precision=auto` would measure fp32, which is not what this check is for.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
flags=$(lscpu | grep -o 'avx512_bf16\|amx_bf16' | sort -u | tr '\n' ' ' || true)
if [ -z "$flags" ]; then
  echo "cpu_bf16_check: this CPU has neither avx512_bf16 nor amx_bf16 (lscpu); run it on one that does" >&2
  exit 2
fi
LOG=${LOG:-/tmp/cpu_bf16_check_$(git rev-parse --short HEAD)_$(date -u +%Y%m%dT%H%M%SZ).log}
exec > >(tee -a "$LOG") 2>&1
echo "== cpu_bf16_check at $(git rev-parse HEAD) on $(lscpu | sed -n 's/^Model name: *//p') ($flags), $(date -u)"
for run in 1 2; do
  echo "== make bench, run $run of 2"
  make bench
done
echo "== profile, ResNet-56 batch 128, fused BN off (before)"
SUPERCONV_FUSED_BN=0 $PY -m superconv.profile --depth 56 --batch 128 --top 5
echo "== profile, ResNet-56 batch 128, fused BN on (after)"
SUPERCONV_FUSED_BN=1 $PY -m superconv.profile --depth 56 --batch 128 --top 5
echo "== precision check with the fused kernel (fp32 vs bf16, 2 seeds each)"
SUPERCONV_FUSED_BN=1 $PY -m superconv.train experiment=precision_check experiment_name=precision_check_fused_bn \
  train.progress=false
$PY - <<'EOF'
import json, pathlib
for d in sorted(pathlib.Path("results/precision_check_fused_bn").glob("*/summary.json")):
    s = json.loads(d.read_text())
    print(f"{d.parent.name:35s} final test acc {s['final_test_acc']:.4f}  {s['precision']}  fused_bn {s['fused_bn']}")
EOF
echo "== done; log: $LOG"
