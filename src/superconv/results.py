"""The results store: one directory per run, the only thing figures and the report ever read.

    <results_dir>/<experiment>/<override_dirname or "default">/
        config.yaml    the resolved configuration (written first)
        metrics.csv    one row per iteration; test columns filled on evaluation rows; flushed as it goes
        summary.json   status (completed | diverged), final and best test accuracy, cost, provenance
        DONE           written last, atomically: a run without it is unfinished (or still running)
        checkpoint.pt  only while a run is unfinished (gitignored)

Every whole-file write goes through a temporary file and `os.replace`, so a crash leaves either the
old file or the new one, never half of one. `metrics.csv` is appended to; on resume it is cut back to
the rows the checkpoint had seen, so an interrupted run's log equals an uninterrupted one's.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from .atomic import atomic_write

METRIC_COLUMNS = ("iteration", "epoch", "lr", "momentum", "train/loss", "train/acc", "test/loss", "test/acc",
                  "lr_estimate")
# Columns added after runs were already stored: a metrics.csv whose header ends before them (one written before
# they existed) still reads, with None in them. lr_estimate: superconv.lr_estimate (train.lr_estimate_every),
# empty on every row when off.
OPTIONAL_COLUMNS = ("lr_estimate",)


class StoreError(ValueError):
    """A results file that cannot be read or belongs to another configuration (one line)."""


class RunDir:
    """Paths and whole-file reads/writes of one run directory."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.metrics = self.path / "metrics.csv"
        self.summary = self.path / "summary.json"
        self.done = self.path / "DONE"
        self.checkpoint = self.path / "checkpoint.pt"

    def is_done(self) -> bool:
        return self.done.exists()

    def read_config(self) -> dict | None:
        """The stored config, None when there is none; a corrupt file is a StoreError naming it."""
        if not self.config.exists():
            return None
        try:
            data = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise StoreError(f"{self.config}: unreadable config ({type(e).__name__}); move the directory away") from None
        if not isinstance(data, dict):
            raise StoreError(f"{self.config}: not a YAML mapping; move the directory away")
        return data

    def write_config(self, cfg: Mapping) -> None:
        atomic_write(self.config, yaml.safe_dump(dict(cfg), sort_keys=False), fsync=True)

    def read_summary(self) -> dict:
        try:
            data = json.loads(self.summary.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise StoreError(f"{self.summary}: unreadable summary ({type(e).__name__})") from None
        if not isinstance(data, dict):
            raise StoreError(f"{self.summary}: not a JSON object")
        return data

    def write_summary(self, summary: Mapping) -> None:
        atomic_write(self.summary, json.dumps(summary, indent=2, sort_keys=True, allow_nan=False) + "\n", fsync=True)

    def mark_done(self) -> None:
        atomic_write(self.done, "", fsync=True)

    def foreign_files(self) -> list[str]:
        """Files that a run of ours never writes: a directory holding them is not ours to fill."""
        ours = {self.config.name, self.metrics.name, self.summary.name, self.done.name, self.checkpoint.name}
        return sorted(p.name for p in self.path.iterdir() if p.name not in ours and not p.name.startswith("."))


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest round-trip form: the CSV holds exactly what was measured
    return str(value)


class MetricsWriter:
    """Appends rows to metrics.csv and flushes each batch of rows to disk."""

    def __init__(self, path: Path):
        self.path = Path(path)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._f = open(self.path, "a", encoding="utf-8", newline="")
        self._w = csv.writer(self._f, lineterminator="\n")
        if new:
            self._w.writerow(METRIC_COLUMNS)
            self._f.flush()

    def write(self, rows: Iterable[Mapping]) -> None:
        for row in rows:
            self._w.writerow([_fmt(row.get(c)) for c in METRIC_COLUMNS])
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


def read_metrics(path: Path) -> list[dict]:
    """Rows of a metrics.csv as dicts of floats (None for empty cells; `iteration` as int). Every row has every
    key of METRIC_COLUMNS: a file written before an OPTIONAL_COLUMNS column existed gives None there."""
    path = Path(path)
    older = METRIC_COLUMNS[:len(METRIC_COLUMNS) - len(OPTIONAL_COLUMNS)]
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or tuple(header) not in (METRIC_COLUMNS, older):
                raise StoreError(f"{path}: header is {header}, expected {','.join(METRIC_COLUMNS)}")
            columns = tuple(header)
            rows = []
            for line_no, values in enumerate(reader, start=2):
                if len(values) != len(columns):
                    raise StoreError(f"{path}:{line_no}: {len(values)} fields, expected {len(columns)}")
                row = dict.fromkeys(METRIC_COLUMNS)
                row.update({c: (float(v) if v != "" else None) for c, v in zip(columns, values)})
                row["iteration"] = int(row["iteration"])
                rows.append(row)
    except OSError as e:
        raise StoreError(f"{path}: unreadable ({e.strerror})") from None
    except ValueError as e:
        if isinstance(e, StoreError):
            raise
        raise StoreError(f"{path}: not a number in the metrics ({e})") from None
    return rows


def truncate_metrics(path: Path, last_iteration: int) -> None:
    """Keep only the rows up to `last_iteration` (the checkpoint's): a resumed run rewrites the rest."""
    path = Path(path)
    if not path.exists():
        return
    rows = [r for r in read_metrics(path) if r["iteration"] <= last_iteration]
    lines = [",".join(METRIC_COLUMNS)]
    lines += [",".join(_fmt(r[c]) for c in METRIC_COLUMNS) for r in rows]
    atomic_write(path, "\n".join(lines) + "\n", fsync=True)


def finite_or_none(x: float | None) -> float | None:
    """JSON has no NaN: non-finite numbers are stored as null."""
    return x if x is not None and math.isfinite(x) else None
