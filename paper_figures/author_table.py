"""The author's Caffe logs as a small table committed in this repository, so every clone draws his curves.

    python -m paper_figures.author_table --logs DIR      # DIR: a copy of the author's Results/ folder
    python -m paper_figures.author_table --check --logs DIR   # is the committed table what DIR gives?

The author's re-runs of the paper's experiments are public: https://github.com/lnsmith54/super-convergence,
folder `Results/` (43 Caffe logs, ~4 MB gzipped). The figures and the report need only a few numbers from
each log, so `make figures` reads this derived table instead of the logs (`load_author_runs`); the logs
are needed only to regenerate it. The table is two files under `paper_figures/author_runs/`:

- `curves.csv.gz`: one row per log and iteration: `log, iteration, test_acc, test_loss, train_loss,
  train_acc, lr`. Accuracies are fractions, as in the logs. `train_loss` / `train_acc` are the solver's
  displayed "Iteration N, loss" and the per-batch "Train net output #0: accuracy" after it; `lr` is the
  "Iteration N, lr" line. An empty cell: the log has no such line at that iteration (a value the log
  printed as nan stays `nan`). Each number is written as Python's shortest repr of the parsed float, so
  the table gives back exactly what `caffe_log.read_caffe_log` reads.
- `solvers.json`: per log, the solver header (top-level `key: value` lines after "Initializing solver from
  parameters:"), BN's `moving_average_fraction`, and the log file's sha256; plus the source (URL, commit).

`load_author_runs()` turns the table back into `caffe_log.CaffeLog` objects equal to what
`caffe_log.read_reference_dir` gives on the logs (test, train and lr frames, solver, BN setting), so every
consumer (curve and range figures, the report, README's table) works on either.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import math
import sys
from pathlib import Path

import pandas as pd

from superconv.data import file_digest

from .caffe_log import CaffeLog, read_reference_dir

__all__ = ["DEFAULT_DIR", "SOURCE", "write_author_runs", "load_author_runs", "main"]

DEFAULT_DIR = Path(__file__).resolve().parent / "author_runs"
CURVES = "curves.csv.gz"
SOLVERS = "solvers.json"
COLUMNS = ["log", "iteration", "test_acc", "test_loss", "train_loss", "train_acc", "lr"]
SOURCE = {
    "repository": "https://github.com/lnsmith54/super-convergence",
    "folder": "Results",
    "commit": "ecc561594b39442661e7e0a39d2820b0f4147324",
    "paper": "https://arxiv.org/abs/1708.07120",
    "regenerate": "python -m paper_figures.author_table --logs <copy of the repository's Results/ folder>",
}


def _cell(v) -> str:
    if v is None:
        return ""
    v = float(v)
    return "nan" if math.isnan(v) else repr(v)


def render(logs: dict[str, CaffeLog]) -> tuple[bytes, bytes]:
    """The two files' bytes (the csv gzipped with no name and no time stamp, so they depend only on the logs)."""
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(COLUMNS)
    for name in sorted(logs):
        log = logs[name]
        rows: dict[int, dict] = {}
        for df, cols in ((log.test, {"test/acc": "test_acc", "test/loss": "test_loss"}),
                         (log.train, {"train/loss": "train_loss", "train/acc": "train_acc"}),
                         (log.lr, {"lr": "lr"})):
            present = "test/acc" if "test/acc" in cols else "train/loss" if "train/loss" in cols else "lr"
            for rec in df.to_dict("records"):
                row = rows.setdefault(int(rec["iteration"]), {})
                for src, dst in cols.items():
                    v = rec.get(src)
                    # a row of this curve exists: its key column is written even when NaN ("nan")
                    row[dst] = "nan" if (src == present and (v is None or math.isnan(v))) else \
                        ("" if v is None or math.isnan(v) else _cell(v))
        for it in sorted(rows):
            w.writerow([name, it, *(rows[it].get(c, "") for c in COLUMNS[2:])])
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(text.getvalue().encode("utf-8"))
    solvers = {
        "source": SOURCE,
        "logs": {name: {"file": logs[name].path.name, "sha256": file_digest(logs[name].path, "sha256"),
                        "solver": logs[name].solver,
                        "bn_moving_average_fraction": logs[name].bn_moving_average_fraction}
                 for name in sorted(logs)},
    }
    return buf.getvalue(), (json.dumps(solvers, indent=1, sort_keys=False) + "\n").encode("utf-8")


def write_author_runs(logs_dir: str | Path, out_dir: str | Path = DEFAULT_DIR) -> list[Path]:
    """Read every log in `logs_dir` and write the table into `out_dir`; returns the two paths."""
    logs = read_reference_dir(logs_dir)
    if not logs:
        raise ValueError(f"{logs_dir}: no Caffe logs read (*.log, *.log.gz, or the official Results/ files' bare "
                         "names)")
    curves, solvers = render(logs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / CURVES, out_dir / SOLVERS]
    for path, data in zip(paths, (curves, solvers)):
        if not path.is_file() or path.read_bytes() != data:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
    return paths


def _frame(rows: list[dict], cols: dict[str, str]) -> pd.DataFrame:
    names = ["iteration", *cols.values()]
    df = pd.DataFrame([{"iteration": r["iteration"], **{dst: r[src] for src, dst in cols.items()}} for r in rows],
                      columns=names)
    df["iteration"] = df["iteration"].astype("int64")
    for c in names[1:]:
        df[c] = df[c].astype("float64")
    return df


def load_author_runs(table_dir: str | Path = DEFAULT_DIR) -> dict[str, CaffeLog]:
    """The committed table as `CaffeLog`s by log name. A missing or unreadable table: FileNotFoundError /
    ValueError naming it."""
    table_dir = Path(table_dir)
    curves, solvers_path = table_dir / CURVES, table_dir / SOLVERS
    for p in (curves, solvers_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such file (the author's runs table; "
                                    "regenerate it with python -m paper_figures.author_table --logs DIR)")
    try:
        meta = json.loads(solvers_path.read_text(encoding="utf-8"))["logs"]
        with gzip.open(curves, "rt", encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            if header != COLUMNS:
                raise ValueError(f"columns {header}, expected {COLUMNS}")
            per_log: dict[str, list[dict]] = {}
            for rec in reader:
                row = {"iteration": int(rec[1])}
                for c, v in zip(COLUMNS[2:], rec[2:]):
                    row[c] = None if v == "" else float(v)
                per_log.setdefault(rec[0], []).append(row)
    except (OSError, EOFError, ValueError, KeyError, IndexError, json.JSONDecodeError) as e:
        raise ValueError(f"{table_dir}: the author's runs table is unreadable ({type(e).__name__}: {e})") from None
    out: dict[str, CaffeLog] = {}
    for name in sorted(meta):
        rows = per_log.get(name, [])
        out[name] = CaffeLog(
            name=name, path=curves, solver=meta[name]["solver"],
            bn_moving_average_fraction=meta[name]["bn_moving_average_fraction"],
            test=_frame([r for r in rows if r["test_acc"] is not None], {"test_acc": "test/acc",
                                                                         "test_loss": "test/loss"}),
            train=_frame([r for r in rows if r["train_loss"] is not None], {"train_loss": "train/loss",
                                                                            "train_acc": "train/acc"}),
            lr=_frame([r for r in rows if r["lr"] is not None], {"lr": "lr"}),
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m paper_figures.author_table", description=__doc__.splitlines()[0])
    p.add_argument("--logs", required=True,
                   help="folder of the author's Caffe logs (*.log, *.log.gz or bare names): a copy of "
                        f"{SOURCE['repository']}/tree/{SOURCE['commit']}/{SOURCE['folder']}")
    p.add_argument("--out", default=str(DEFAULT_DIR), help="table folder (default: paper_figures/author_runs)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when the table differs")
    args = p.parse_args(argv)
    try:
        if args.check:
            curves, solvers = render(read_reference_dir(args.logs))
            out = Path(args.out)
            same = all((out / n).is_file() and (out / n).read_bytes() == b
                       for n, b in ((CURVES, curves), (SOLVERS, solvers)))
            print(f"author_table: {out} {'matches' if same else 'differs from'} {args.logs}", file=sys.stderr)
            return 0 if same else 1
        paths = write_author_runs(args.logs, args.out)
    except (FileNotFoundError, ValueError) as e:
        print(f"author_table: error: {e}", file=sys.stderr)
        return 2
    print(f"author_table: wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
