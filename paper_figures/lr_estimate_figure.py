"""Fig 5: the paper's Hessian-free estimate of the optimal LR (metrics.csv column `lr_estimate`,
superconv.lr_estimate) against iteration. Panel (a): the first 300 iterations of the Fig 1a CLR run
(experiment fig5a_lr_estimate); panel (b): 10k iterations (scaled), constant LR 0.1 vs CLR 0.1-3
(fig5b_lr_estimate). Each curve's LR is drawn dotted in its colour on the same (log) axis, so the estimate can
be read against the LR in use, and the paper's numbers are marked: a band at 2-4 in (a), its end values (~0.2
constant, ~0.5 CLR) and the constant run's spike (~3) in (b).

Curves are the mean over seeds with a band of one sd. Runs of different scales are never averaged: with more
than one scale each label names its scale and the x axis becomes the fraction of the run. The table beside the
figure (`fig5_lr_estimate.csv`) gives each run's estimate at its start, middle, end and peak
(`superconv.lr_estimate.landmarks`), the numbers the report quotes.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from superconv.lr_estimate import landmarks

from . import registry, style
from .caffe_log import CaffeLog
from .curve_figures import _missing_note, spans_scales, with_scale

SPEC = registry.LR_ESTIMATE[0]
PANELS = (("fig5a_lr_estimate", "(a) the first 300 iterations of the Fig 1a CLR run (LR 0.1-0.27)"),
          ("fig5b_lr_estimate", "(b) constant LR 0.1 vs CLR 0.1-3 (paper: 10k iterations)"))
LABELS = {"range_test": "clr, first 300 it"}  # fig5a's schedule: the first 300 iterations of the CLR triangle
TABLE_COLUMNS = ["experiment", "curve", "run", "iterations", "start", "start_it", "middle", "middle_it", "end",
                 "end_it", "peak", "peak_it"]


def _curves(df: pd.DataFrame) -> pd.Series:
    labels = df["schedule"].map(lambda s: LABELS.get(s, s)).astype(str)
    return with_scale(labels, df) if spans_scales(df) else labels


def estimate_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run of the Fig 5 experiments with an estimate: its landmarks (start, middle, end, peak)."""
    rows = []
    df = runs[runs["experiment"].isin(SPEC.experiments)] if len(runs) else runs
    if len(df) and "lr_estimate" in df:
        df = df.assign(curve=_curves(df))
        for (exp, run), g in df.groupby(["experiment", "run"], sort=True):
            lm = landmarks(g["iteration"].tolist(), g["lr_estimate"].tolist())
            if lm is not None:
                rows.append({"experiment": exp, "curve": g["curve"].iloc[0], "run": run,
                             "iterations": int(g["iterations"].iloc[0]), **lm})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _panel(ax, df: pd.DataFrame, title: str) -> bool:
    """Draw one panel's runs; False when there is nothing to draw."""
    df = df[df["lr_estimate"].notna()] if len(df) else df
    if not len(df):
        return False
    df = df.assign(curve=_curves(df))
    by_fraction = spans_scales(df) and df["iterations"].nunique() > 1
    df = df.assign(x=df["iteration"] / df["iterations"] if by_fraction else df["iteration"])
    colors = sns.color_palette(n_colors=df["curve"].nunique())
    for color, (curve, g) in zip(colors, df.groupby("curve", sort=True)):
        stats = g.groupby("x")["lr_estimate"].agg(["mean", "std"]).reset_index()
        ax.plot(stats["x"], stats["mean"], color=color, linewidth=1.2, label=f"{curve}: estimate")
        sd = stats["std"].fillna(0.0).to_numpy()
        if np.any(sd > 0):
            ax.fill_between(stats["x"], stats["mean"] - sd, stats["mean"] + sd, color=color, alpha=0.2, linewidth=0)
        lr = g[g["seed"] == g["seed"].min()].sort_values("x") if g["seed"].notna().any() else g.sort_values("x")
        ax.plot(lr["x"], lr["lr"], color=color, linestyle=":", linewidth=1, label=f"{curve}: LR used")
    ax.set_xlabel("fraction of run" if by_fraction else "iteration")
    ax.set_title(title, fontsize="small")
    return True


def draw(runs: pd.DataFrame, summaries: pd.DataFrame, out_dir: Path,
         reference: dict[str, CaffeLog] | None = None) -> list[Path]:
    """The Fig 5 figure and its table, from whatever fig5a / fig5b runs exist (a note names what is missing)."""
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.0))
    have_col = len(runs) and "lr_estimate" in runs
    for ax, (exp, title) in zip(axes, PANELS):
        df = runs[(runs["experiment"] == exp) & (runs["job_type"] == "train")] if have_col else runs.iloc[0:0]
        drew = _panel(ax, df, title)
        if exp == "fig5a_lr_estimate":
            ax.axhspan(2.0, 4.0, color="0.5", alpha=0.12, linewidth=0, label="paper: 2-4")
        else:
            ax.axhline(3.0, color="0.4", linestyle="--", linewidth=0.8, label="paper: constant spikes ~3")
            ax.axhline(0.5, color="0.4", linestyle="-.", linewidth=0.8, label="paper: CLR ends ~0.5")
            ax.axhline(0.2, color="0.4", linestyle=(0, (1, 3)), linewidth=0.8, label="paper: constant ends ~0.2")
        if not drew:
            ax.set_title(title, fontsize="small")
            msg = "no results yet" if not len(df) else "no lr_estimate values (train.lr_estimate_every off)"
            ax.text(0.5, 0.5, msg, ha="center", va="center", transform=ax.transAxes, fontsize="small")
            ax.set_xlabel("iteration")
        ax.set_yscale("log")
        ax.set_ylabel("optimal LR estimate (EMA 0.1) / LR")
        ax.legend(fontsize="xx-small", loc="best")
    fig.suptitle(f"{SPEC.paper}: {SPEC.title}")
    notes = _missing_note(SPEC, summaries)
    if notes:
        fig.text(0.01, 0.005, "; ".join(notes), fontsize="x-small", va="bottom")
    written = style.save(fig, out_dir / SPEC.name)
    written.append(style.write_table(estimate_table(runs), out_dir / f"{SPEC.name}.csv"))
    return written


__all__ = ["draw", "estimate_table", "SPEC", "PANELS"]
