#!/usr/bin/env bash
# For a GPU machine without network (one way to use scripts/gpu_window.sh): fill carry/ (gitignored) with
# what it needs beside the working tree:
#   carry/wheels/           hydra-core, omegaconf, antlr4-python3-runtime (pure Python, the versions of this
#                           .venv; antlr4 4.9.3 has no wheel on PyPI: built here). WHEELS=0 skips them, for an
#                           image that has them
#   carry/<archive>         the data archive ARCHIVE names (what `make data ARCHIVE=...` takes: the official
#                           cifar-10-python.tar.gz, 163 MiB, or a smaller image-folder archive); gpu_window.sh
#                           builds data/ from it there
#   carry/git_sha           the commit the session runs (SUPERCONV_GIT_SHA there: the copy may carry no .git)
# and checks that the working tree plus carry/ stays under LIMIT_MIB (default 64: what your transfer allows).
# Not carried: wandb (its wheel needs packages such images often lack, and there is no network to log to):
# runs there use logger=none, the default; superconv imports wandb only for logger=wandb.
# Run it after the last commit, then send the tree and carry/ and run `bash scripts/gpu_window.sh` there:
#   ARCHIVE=path/to/cifar10-archive.tar.gz scripts/prepare_gpu_carry.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ARCHIVE=${ARCHIVE:-}
WHEELS=${WHEELS:-1}
LIMIT=$((${LIMIT_MIB:-64} * 1024 * 1024))

version() { $PY -c "import importlib.metadata as m; print(m.version('$1'))"; }
mkdir -p carry/wheels
rm -f carry/wheels/*.whl carry/*.tar.gz carry/*.tgz carry/*.zip
if [ "$WHEELS" = 1 ]; then
  $PY -m pip download -q --no-deps -d carry/wheels "hydra-core==$(version hydra-core)" "omegaconf==$(version omegaconf)"
  $PY -m pip wheel -q --no-deps -w carry/wheels "antlr4-python3-runtime==$(version antlr4-python3-runtime)"
fi
if [ -n "$ARCHIVE" ]; then
  install -m 0644 "$ARCHIVE" carry/
else
  echo "prepare_gpu_carry: no ARCHIVE=...: no data carried (the GPU machine needs data/ or network for make data)" >&2
fi
sha=$(git rev-parse HEAD)
[ -n "$(git status --porcelain --untracked-files=no)" ] && sha="$sha-dirty"
echo "$sha" > carry/git_sha

tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
carried=$(du -sb carry | cut -f1)
echo "carry/: $(ls carry/wheels | tr '\n' ' ')$(ls carry | grep -v '^wheels$' | tr '\n' ' ')"
echo "sizes: working tree $((tree / 1024)) KiB + carry/ $((carried / 1024)) KiB = $(((tree + carried) / 1024)) KiB of $((LIMIT / 1024)) KiB; commit $sha"
if [ $((tree + carried)) -gt $LIMIT ]; then
  echo "prepare_gpu_carry: over LIMIT_MIB: carry less (a smaller archive, old carry/ files?) or commit fewer checkpoints" >&2
  exit 1
fi
[ "${sha%-dirty}" = "$sha" ] || echo "prepare_gpu_carry: warning: uncommitted changes; the session's git_sha says -dirty" >&2
