"""Test accuracy against iteration (Fig 1a, 1b, 6a, 6b, 7b, 8, 9, 10), and final accuracy against each
swept factor, with the LR schedule in a small panel and the author's logged curves beside ours.

Curves are the mean over seeds with a band of one sd (`errorbar="sd"`). When the author's runs and ours
differ in length (a mini-scale run against the paper's 10k or 80k iterations), every curve is drawn
against the fraction of its run instead of the iteration, so that the shapes can be compared; the axis
label says which. Diverged runs end where they diverged and are named in the note under the figure.

Runs of different scales (e.g. one `paper` run, ResNet-56 for 10k iterations, beside `mini` runs,
ResNet-20 for a few hundred) are never averaged together: when a figure's runs span more than one scale,
the scale is part of every curve's label ("clr (paper)", "clr (mini)"), so each mean, band and table row
(n / mean / sd) is taken within one scale; their lengths then differ by design, so the curves are drawn
against the fraction of their run. With one scale, labels, axes and bytes are as they always were.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from . import registry, style
from .caffe_log import CaffeLog
from .controls import with_controls
from .load import scale_labels
from .registry import FigureSpec

# Factors that never separate curves on their own (seed: the band; scale/iterations: the x axis).
NOT_A_HUE = {"seed", "run", "experiment", "status", "job_type"}


def varying_factors(df: pd.DataFrame) -> list[str]:
    """The run-level factors whose value differs between runs (seed excluded), precision among them."""
    from .load import FACTORS

    return [f for f in (*FACTORS, "precision") if f not in NOT_A_HUE and f in df and df[f].astype(str).nunique() > 1]


def spans_scales(*frames: pd.DataFrame) -> bool:
    """Whether the rows of these frames (runs or summaries of one figure) hold more than one scale."""
    found: set[str] = set()
    for f in frames:
        if len(f):
            found |= set(scale_labels(f))
    return len(found) > 1


def with_scale(labels: pd.Series, df: pd.DataFrame) -> pd.Series:
    """`labels` with each row's scale appended: "clr" -> "clr (paper)"."""
    return labels.astype(str) + " (" + scale_labels(df).astype(str) + ")"


def curve_labels(df: pd.DataFrame, spec: FigureSpec, by_scale: bool | None = None) -> pd.Series:
    """One label per run: the hue (and style) factors' values, or every factor that varies; with the run's
    scale appended when `by_scale` (default: when `df` spans more than one scale) and no key names it."""
    named = [k for k in (spec.hue, spec.style) if k]
    keys = named or varying_factors(df) or ["schedule"]
    if len(keys) == 1:  # a factor found by varying_factors is named in the label: "bn_momentum=0.001"
        labels = df[keys[0]].astype(str) if named or keys == ["schedule"] else f"{keys[0]}=" + df[keys[0]].astype(str)
    else:
        labels = df[keys].astype(str).apply(lambda r: ", ".join(f"{k}={v}" for k, v in zip(keys, r)), axis=1)
    if by_scale is None:
        by_scale = spans_scales(df)
    if by_scale and "scale" not in keys and len(df):
        labels = with_scale(labels, df)
    return labels


def _missing_note(spec: FigureSpec, summaries: pd.DataFrame) -> list[str]:
    notes = []
    for exp in spec.experiments:
        rows = summaries[summaries["experiment"] == exp] if len(summaries) else summaries
        if not len(rows):
            notes.append(f"no results yet for {exp}")
            continue
        for status in ("unfinished", "diverged"):
            hit = rows[rows["status"] == status]
            if len(hit):
                notes.append(f"{exp}: {len(hit)} {status} ({', '.join(hit['run'].astype(str).tolist()[:3])})")
    return notes


def _reference_curves(spec: FigureSpec, reference: dict[str, CaffeLog] | None) -> list[tuple[str, CaffeLog]]:
    if not reference:
        return []
    return [(label, reference[stem]) for stem, label in spec.reference.items() if stem in reference]


def x_axis(df: pd.DataFrame, refs: list[tuple[str, CaffeLog]], by_scale: bool = False) -> str:
    """"iteration", or "fraction of run" when an author's run and ours differ in length, or when runs of
    several scales (`by_scale`) differ in length."""
    ours = set(df["iterations"].astype(int)) if len(df) else set()
    if refs and ours and any(log.solver.get("max_iter") not in ours for _, log in refs):
        return "fraction of run"
    if by_scale and len(ours) > 1:
        return "fraction of run"
    return "iteration"


def draw_curves(spec: FigureSpec, runs: pd.DataFrame, summaries: pd.DataFrame, out_dir: Path,
                reference: dict[str, CaffeLog] | None) -> list[Path]:
    df = runs[runs["experiment"].isin(spec.experiments)] if len(runs) else runs
    if len(df):
        df = df[df["job_type"] == "train"].copy()
    refs = _reference_curves(spec, reference)
    finals = summaries[summaries["experiment"].isin(spec.experiments) & (summaries["status"] != "unfinished")
                       & (summaries["job_type"] == "train")].copy() if len(summaries) else summaries
    by_scale = spans_scales(df, finals)  # then every label names its scale: no mean across scales
    xcol = x_axis(df, refs, by_scale)
    by_fraction = xcol == "fraction of run"

    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(6.4, 5.2), sharex=True, height_ratios=(3, 1))
    table = pd.DataFrame(columns=["curve", "n", "mean", "sd"])
    if len(df):
        df["curve"] = curve_labels(df, spec, by_scale)
        df["fraction of run"] = df["iteration"] / df["iterations"]
        evals = df[df["test/acc"].notna()]
        sns.lineplot(data=evals, x=xcol, y="test/acc", hue="curve", style="curve", errorbar="sd", ax=ax,
                     markers=False, dashes=False)
        first_seed = df[df["seed"] == df.groupby("curve")["seed"].transform("min")]
        sns.lineplot(data=first_seed, x=xcol, y="lr", hue="curve", ax=ax_lr, legend=False, errorbar=None)
        finals["curve"] = curve_labels(finals, spec, by_scale)
        table = style.summarize(finals, ["curve"], "final_test_acc")
    for label, log in refs:
        test = log.test.dropna(subset=["test/acc"])
        x = test["iteration"] / log.solver["max_iter"] if by_fraction else test["iteration"]
        ax.plot(x, test["test/acc"], linestyle="--", linewidth=1, label=label)
        lr = log.lr
        ax_lr.plot(lr["iteration"] / log.solver["max_iter"] if by_fraction else lr["iteration"], lr["lr"],
                   linestyle="--", linewidth=1)
    notes = _missing_note(spec, summaries)
    if not len(df) and not refs:
        ax.text(0.5, 0.5, "\n".join(notes) or "no results", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("test accuracy")
    ax_lr.set_ylabel("LR")
    ax_lr.set_xlabel(xcol)
    ax.set_title(f"{spec.paper}: {spec.title}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="x-small", loc="lower right")
    if notes:
        fig.text(0.01, 0.005, "; ".join(notes), fontsize="x-small", va="bottom")
    written = style.save(fig, out_dir / spec.name)
    written.append(style.write_table(table, out_dir / f"{spec.name}.csv"))
    return written


def draw_sweep(spec: FigureSpec, summaries: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Final test accuracy against the swept factor `spec.x`, one line per schedule (mean +- sd); one line per
    schedule and scale ("clr (mini)") when the runs span more than one scale."""
    rows = with_controls(summaries, spec.experiments) if len(summaries) else summaries
    rows = rows[(rows["job_type"] == "train") & (rows["status"] != "unfinished")] if len(rows) else rows
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    table = pd.DataFrame(columns=[spec.hue, spec.x, "n", "mean", "sd"])
    if len(rows):
        rows = rows.copy()
        rows[spec.x] = rows[spec.x].astype(float)
        if spans_scales(rows):
            rows[spec.hue] = with_scale(rows[spec.hue], rows)
        sns.lineplot(data=rows, x=spec.x, y="final_test_acc", hue=spec.hue, style=spec.hue, markers=True,
                     errorbar="sd", ax=ax)
        if spec.x == "weight_decay" and (rows[spec.x] > 0).all():
            ax.set_xscale("log")
        table = style.summarize(rows, [spec.hue, spec.x], "final_test_acc")
    notes = _missing_note(spec, summaries)
    shared = sorted(set(rows["experiment"]) - set(spec.experiments)) if len(rows) else []
    if shared:  # the arm the sweep shares with another experiment (paper_figures.controls)
        notes.append(f"with the {', '.join(shared)} runs at its own configuration (shared arm)")
    if not len(rows):
        ax.text(0.5, 0.5, "\n".join(notes), ha="center", va="center", transform=ax.transAxes)
    elif notes:
        fig.text(0.01, 0.005, "; ".join(notes), fontsize="x-small", va="bottom")
    ax.set_xlabel(spec.x)
    ax.set_ylabel("final test accuracy")
    ax.set_title(f"{spec.paper}: {spec.title}")
    written = style.save(fig, out_dir / spec.name)
    written.append(style.write_table(table, out_dir / f"{spec.name}.csv"))
    return written


def draw(runs: pd.DataFrame, summaries: pd.DataFrame, out_dir: Path,
         reference: dict[str, CaffeLog] | None) -> list[Path]:
    """Every accuracy-vs-iteration figure and every sweep summary (see registry.CURVES and SWEEPS)."""
    written = []
    trained = set(summaries.loc[summaries["job_type"] == "train", "experiment"]) if len(summaries) else set()
    extra = [FigureSpec(f"other_{e}", "(not in the paper)", e, (e,)) for e in registry.other_experiments(trained)]
    for spec in (*registry.CURVES, *extra):
        written += draw_curves(spec, runs, summaries, out_dir, reference)
    for spec in registry.SWEEPS:
        written += draw_sweep(spec, summaries, out_dir)
    return written


__all__ = ["draw", "draw_curves", "draw_sweep", "varying_factors", "curve_labels", "spans_scales", "with_scale"]
