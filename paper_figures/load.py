"""Read the results store into the DataFrames the figures are drawn from.

`load_runs` gives one long-format frame (run x iteration, metrics plus the swept factors as columns),
the shape `sns.relplot(..., errorbar="sd")` wants; `load_summaries` gives one row per run, unfinished
ones included, so a figure can say what is missing instead of silently drawing less.

Why it behaves this way:
- Only a directory holding DONE is a finished run: metrics of a run still training (or killed) would
  pass for a short run. Unfinished runs appear in `load_summaries` with status "unfinished" only.
- A corrupt config.yaml / summary.json / metrics.csv skips that one run with a warning naming the
  file: one bad directory must not take every figure down.
- The factor `momentum` is the optimizer's setting (optim.momentum), the one the Fig 10 sweep varies;
  the per-iteration momentum logged in metrics.csv (it moves under cyclical momentum) is renamed
  `momentum_t` so the two cannot be confused.
- `scale` is the config's `scale_name` (paper, mini, smoke). Runs of different scales (ResNet-56 for 10k
  iterations on a GPU against ResNet-20 for a few hundred on a CPU) are never averaged or compared: the
  figures label each curve with its scale when an experiment holds more than one (`scale_labels`), and
  the report judges every claim per scale (`scales_in` gives the order: paper, mini, smoke, others).
- Rows are sorted by experiment, run, iteration, so a figure drawn twice from the same files is drawn
  from the same frame (and is byte-identical).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from superconv.health import RULES_VERSION
from superconv.results import METRIC_COLUMNS, RunDir, StoreError, read_metrics

__all__ = ["FACTORS", "PROTOCOL_KEYS", "RUN_COLUMNS", "SUMMARY_COLUMNS", "SCALE_ORDER", "UNKNOWN_SCALE", "load_runs",
           "load_summaries", "find_run_dirs", "scale_labels", "scales_in"]

# factor column -> path in config.yaml
FACTORS: dict[str, tuple[str, ...]] = {
    "seed": ("seed",),
    "depth": ("model", "depth"),
    "variant": ("model", "variant"),
    "dropout": ("model", "dropout"),
    "bn_momentum": ("model", "bn_momentum"),  # BN running-average momentum: a protocol value runs are swept over
    "dataset": ("data", "name"),
    "fraction": ("data", "fraction"),
    "augment": ("data", "augment"),
    "batch_size": ("train", "batch_size"),
    "iterations": ("train", "iterations"),
    "optimizer": ("optim", "name"),
    "momentum": ("optim", "momentum"),
    "nesterov": ("optim", "nesterov"),
    "weight_decay": ("optim", "weight_decay"),
    "schedule": ("schedule", "name"),
    "max_lr": ("schedule", "max_lr"),
    "min_lr": ("schedule", "min_lr"),
    "scale": ("scale_name",),
}
METRICS = [("momentum_t" if c == "momentum" else c) for c in METRIC_COLUMNS]
# Protocol keys, in summaries only: runs made before they existed lack them (paper_figures.judging.LEGACY says
# what such a run computed); the report never pools runs whose protocol differs.
PROTOCOL_KEYS: dict[str, tuple[str, ...]] = {
    "bn_group": ("model", "bn_group"),
    "bn_stats": ("model", "bn_stats"),
    "dropout_at": ("model", "dropout_at"),
    "protocol_version": ("protocol_version",),
}
RUN_LEVEL = ["experiment", "run", "status", "job_type", *FACTORS]
# precision: what the run computed in (its summary's resolved value, not the config's "auto"): curves of a
# precision check are told apart by it (paper_figures.curve_figures.varying_factors)
RUN_COLUMNS = RUN_LEVEL + ["precision"] + METRICS
SUMMARY_KEYS = ["final_test_acc", "best_test_acc", "final_test_loss", "final_train_acc", "iterations_run", "images_seen",
                "wall_s", "train_s", "images_per_s", "device", "precision", "git_sha", "command"]
# health: the run's flags (superconv.health) as stored in its summary, comma-joined ("" = none raised); None for
# a run stored before summaries had them or under older rules (rules_version): paper_figures.verdicts.attach_health
# computes those from metrics.csv with the current rules.
SUMMARY_COLUMNS = RUN_LEVEL + list(PROTOCOL_KEYS) + SUMMARY_KEYS + ["health"]
SCALE_ORDER = ("paper", "mini", "smoke")  # most faithful first; other names follow, sorted
UNKNOWN_SCALE = "unknown"  # a run whose config names no scale


def scale_labels(df: pd.DataFrame) -> pd.Series:
    """Each row's scale as a string (UNKNOWN_SCALE when the run's config names none), indexed like `df`."""
    if "scale" not in df:
        return pd.Series([UNKNOWN_SCALE] * len(df), index=df.index, dtype="object")
    return df["scale"].map(lambda v: v if isinstance(v, str) and v else UNKNOWN_SCALE).astype("object")


def scales_in(df: pd.DataFrame) -> list[str]:
    """The scales of `df`'s rows, in a fixed order: SCALE_ORDER, then other names sorted, UNKNOWN_SCALE last."""
    found = set(scale_labels(df)) if len(df) else set()
    return sorted(found, key=lambda s: (s == UNKNOWN_SCALE,
                                        SCALE_ORDER.index(s) if s in SCALE_ORDER else len(SCALE_ORDER), s))


def _get(cfg: dict, keys: tuple[str, ...]):
    for k in keys:
        if not isinstance(cfg, dict) or k not in cfg:
            return None
        cfg = cfg[k]
    return cfg


def _flatten(prefix: str, value, out: dict) -> None:
    """Nested summary dicts (the range test's verdict and bounds) as `range_test/verdict/label` columns."""
    if isinstance(value, dict):
        for k in sorted(value):
            _flatten(f"{prefix}/{k}", value[k], out)
    elif value is None or isinstance(value, (str, int, float, bool)):
        out[prefix] = value


def find_run_dirs(results_dir: str | os.PathLike) -> list[RunDir]:
    """`<results_dir>/<experiment>/<run>/` directories holding any file of a run, sorted."""
    root = Path(results_dir)
    if not root.is_dir():
        return []
    found = []
    for exp in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for run in sorted(p for p in exp.iterdir() if p.is_dir() and not p.name.startswith(".")):
            rd = RunDir(run)
            if any(f.exists() for f in (rd.config, rd.metrics, rd.summary, rd.done)):
                found.append(rd)
    return found


def _run_level(rd: RunDir, cfg: dict | None, summary: dict | None) -> dict:
    row = {"experiment": rd.path.parent.name, "run": rd.path.name,
           "status": (summary or {}).get("status", "unknown") if rd.is_done() else "unfinished",
           "job_type": (summary or {}).get("job_type")}
    row.update({name: _get(cfg or {}, keys) for name, keys in FACTORS.items()})
    return row


def _read(rd: RunDir, *, need_summary: bool) -> tuple[dict | None, dict | None] | None:
    """(config, summary), or None (with a warning naming the file) when one of them is corrupt/missing."""
    try:
        cfg = rd.read_config()
        if cfg is None and need_summary:
            raise StoreError(f"{rd.config}: missing in a finished run")
        summary = rd.read_summary() if need_summary else None
    except StoreError as e:
        warnings.warn(f"skipped run: {e}", stacklevel=3)
        return None
    return cfg, summary


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Numeric factor columns as numbers even when some runs lack them (None -> NaN)."""
    for c in ("seed", "depth", "dropout", "bn_momentum", "fraction", "batch_size", "iterations", "momentum", "weight_decay",
              "max_lr", "min_lr"):
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def load_runs(results_dir: str | os.PathLike) -> pd.DataFrame:
    """Finished runs in long format: one row per run x logged iteration; columns RUN_COLUMNS."""
    frames = []
    for rd in find_run_dirs(results_dir):
        if not rd.is_done():
            continue
        read = _read(rd, need_summary=True)
        if read is None:
            continue
        try:
            rows = read_metrics(rd.metrics)
        except StoreError as e:
            warnings.warn(f"skipped run: {e}", stacklevel=2)
            continue
        m = pd.DataFrame(rows, columns=list(METRIC_COLUMNS)).rename(columns={"momentum": "momentum_t"})
        for k, v in _run_level(rd, *read).items():
            m[k] = v
        m["precision"] = (read[1] or {}).get("precision")
        frames.append(m[RUN_COLUMNS])
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in RUN_COLUMNS})
    df = pd.concat(frames, ignore_index=True)
    for c in METRICS:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["iteration"] = df["iteration"].astype("int64")
    return _typed(df).sort_values(["experiment", "run", "iteration"], kind="mergesort").reset_index(drop=True)


def load_summaries(results_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per run directory (finished or not): factors, status, final/best accuracy, cost.

    `iterations` is the configured length, `iterations_run` what the run did (less when it diverged).
    A range test's verdict and bounds come as flattened `range_test/...` columns.
    """
    rows = []
    for rd in find_run_dirs(results_dir):
        read = _read(rd, need_summary=rd.is_done())
        if read is None:
            continue
        cfg, summary = read
        row = _run_level(rd, cfg, summary)
        row.update({name: _get(cfg or {}, keys) for name, keys in PROTOCOL_KEYS.items()})
        summary = summary or {}
        for k in SUMMARY_KEYS:
            row[k] = summary.get("iterations" if k == "iterations_run" else k)
        h = summary.get("health")
        current = isinstance(h, dict) and h.get("rules_version", 1) >= RULES_VERSION
        row["health"] = ",".join(str(f) for f in h.get("flags", [])) if current else None
        if "range_test" in summary:
            _flatten("range_test", summary["range_test"], row)
        rows.append(row)
    extra = sorted({k for r in rows for k in r} - set(SUMMARY_COLUMNS))
    df = pd.DataFrame(rows, columns=SUMMARY_COLUMNS + extra)
    for c in ("final_test_acc", "best_test_acc", "final_test_loss", "final_train_acc", "wall_s", "train_s",
              "images_per_s"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    return _typed(df).sort_values(["experiment", "run"], kind="mergesort").reset_index(drop=True)
