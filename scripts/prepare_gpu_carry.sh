#!/usr/bin/env bash
# Fill carry/ (gitignored) with what a GPU window needs beside the working tree (scripts/gpu_window.sh):
#   carry/wheels/           hydra-core, omegaconf, antlr4-python3-runtime (the device image lacks them; pure
#                           Python, the versions of this .venv; antlr4 4.9.3 has no wheel on PyPI: built here)
#   carry/cifar10-jpeg.tar.gz, carry/make_cifar10.py   copies of ../shared/data (../shared does not travel)
#   carry/git_sha           the commit the window runs (SUPERCONV_GIT_SHA there: the copy may carry no .git)
# and checks that the working tree plus carry/ stays under the device tool's 64 MiB.
# Not carried: wandb (its wheel is 20.3 MB and needs 9 packages the image lacks; the device cannot reach
# wandb's servers anyway). Runs there use logger=none, the default; superconv imports wandb only for logger=wandb.
# Run it here, after the last commit and right before the window:
#   scripts/prepare_gpu_carry.sh && device run: command="bash scripts/gpu_window.sh", carry=["carry"]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SHARED=${SHARED:-../shared/data}
LIMIT=$((64 * 1024 * 1024))

version() { $PY -c "import importlib.metadata as m; print(m.version('$1'))"; }
mkdir -p carry/wheels
rm -f carry/wheels/*.whl
$PY -m pip download -q --no-deps -d carry/wheels "hydra-core==$(version hydra-core)" "omegaconf==$(version omegaconf)"
$PY -m pip wheel -q --no-deps -w carry/wheels "antlr4-python3-runtime==$(version antlr4-python3-runtime)"
install -m 0644 "$SHARED/cifar10-jpeg.tar.gz" "$SHARED/make_cifar10.py" carry/
sha=$(git rev-parse HEAD)
[ -n "$(git status --porcelain --untracked-files=no)" ] && sha="$sha-dirty"
echo "$sha" > carry/git_sha

tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
carried=$(du -sb carry | cut -f1)
echo "carry/: $(ls carry/wheels | tr '\n' ' ')"
echo "sizes: working tree $((tree / 1024)) KiB + carry/ $((carried / 1024)) KiB = $(((tree + carried) / 1024)) KiB of $((LIMIT / 1024)) KiB; commit $sha"
if [ $((tree + carried)) -gt $LIMIT ]; then
  echo "prepare_gpu_carry: over the device tool's 64 MiB: carry less (old carry/ files?) or commit fewer checkpoints" >&2
  exit 1
fi
[ "${sha%-dirty}" = "$sha" ] || echo "prepare_gpu_carry: warning: uncommitted changes; the window's git_sha says -dirty" >&2
