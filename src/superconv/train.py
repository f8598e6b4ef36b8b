"""Train one network: `python -m superconv.train [overrides]` (also `superconv-train`).

    python -m superconv.train                       # the paper's Fig 1a CLR run (ResNet-56, batch 1000, 10k it)
    python -m superconv.train scale=smoke           # seconds on a CPU, synthetic data
    python -m superconv.train model=resnet20 data.fraction=0.1 train.batch_size=128 \
        train.iterations=200 train.eval_every=50    # ~1.5 min on a 2-core CPU, real CIFAR-10

Output: one directory `<paths.results_dir>/<experiment_name>/<override_dirname or "default">/` with
config.yaml, metrics.csv, summary.json and DONE (see superconv.results). The summary's `health` holds the
flags superconv.health decides from metrics.csv (test_lags_train, never_learns, diverged, still_improving);
`train.lr_estimate_every=k` adds the Hessian-free LR estimate (superconv.lr_estimate) to metrics.csv.
Ad-hoc runs go to the gitignored `outputs/adhoc/`; experiment configs write to `results/`. Rerunning a
finished configuration does nothing; rerunning an interrupted one resumes from its checkpoint.

Exit codes: 0 completed, diverged or already done; 2 bad input (one line on stderr, nothing written);
128+signal when stopped by SIGTERM/SIGINT (a checkpoint was written: rerun to resume).
"""

from __future__ import annotations

from . import cli
from .modes import run


def main() -> None:
    cli.main("config", "superconv.train", run)


if __name__ == "__main__":
    main()
