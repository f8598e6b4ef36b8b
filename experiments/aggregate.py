"""`python -m experiments.aggregate [results_dir]`: one table per experiment, `<results_dir>/<experiment>.csv`.

One row per run (swept factors, seed, status, final and best test accuracy, the final full-pass training
accuracy that says whether it converged (empty for runs stored before it was measured), iterations, wall
time), rebuilt from the run directories alone, so it can never disagree with them. Written only when its
content changed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from paper_figures.load import load_summaries
from superconv.atomic import write_if_changed

COLUMNS = ["run", "status", "seed", "depth", "variant", "dataset", "fraction", "augment", "batch_size",
           "iterations", "optimizer", "momentum", "nesterov", "weight_decay", "dropout", "schedule", "max_lr",
           "min_lr", "scale", "final_test_acc", "final_train_acc", "best_test_acc", "iterations_run",
           "images_seen", "wall_s", "images_per_s", "device", "git_sha"]


def aggregate(results_dir: Path) -> list[Path]:
    summaries = load_summaries(results_dir)
    written = []
    for experiment, rows in summaries.groupby("experiment", sort=True):
        table = rows[[c for c in COLUMNS if c in rows]].sort_values("run")
        path = Path(results_dir) / f"{experiment}.csv"
        write_if_changed(path, table.to_csv(index=False, float_format="%.6g", lineterminator="\n").encode())
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    results = Path(argv[0] if argv else "results")
    written = aggregate(results)
    print(f"aggregate: {len(written)} tables in {results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
