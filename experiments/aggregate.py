"""`python -m experiments.aggregate [results_dir]`: one table per experiment, `<results_dir>/<experiment>.csv`.

One row per run (swept factors, seed, status, final and best test accuracy, the final full-pass training
accuracy that says whether it converged (empty for runs stored before it was measured), iterations, wall
time), rebuilt from the run directories alone, so it can never disagree with them. Written only when its
content changed; a table whose runs are all gone (a retired experiment) is deleted with them, so no table
outlives its runs.
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
    for stale in sorted(set(_tables(results_dir)) - set(written)):
        stale.unlink()
        print(f"aggregate: removed {stale} (no runs left)", file=sys.stderr)
    return written


def _tables(results_dir: Path) -> list[Path]:
    """The CSVs in `results_dir` that this module wrote: their header starts with its first column. Any other
    CSV there is left alone."""
    header = f"{COLUMNS[0]},".encode()
    out = []
    for path in Path(results_dir).glob("*.csv"):
        with path.open("rb") as f:
            if f.readline().startswith(header):
                out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    results = Path(argv[0] if argv else "results")
    written = aggregate(results)
    print(f"aggregate: {len(written)} tables in {results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
