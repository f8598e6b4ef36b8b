"""LR range tests: test accuracy and losses against the LR (Fig 2b, 4, 7a, 11), and fastai's lr_find.

Accuracy mode (Smith's test, the LR rising linearly, paper 0 -> 3): one figure per `registry.RANGE`
spec, plus a generic `range_test_<experiment>` figure for every other experiment holding accuracy-mode
range tests. Left panel: test accuracy against the LR, one line per run, the peak starred and the suggested
bounds (max_lr dash-dot, min_lr dotted) drawn as vertical lines in the run's colour; the author's logged
curves (Caffe logs named in the spec, when a reference folder is given) dashed beside ours. Right panel
(the paper's Fig 4): training loss (light, rolling mean) and test loss against the LR, the author's test
loss dashed. The verdict of each run (label and sentence, from summary.json) and the bounds' rule are
written under the figure.

Loss mode (fastai lr_find, the LR rising exponentially): one `lr_find_<experiment>` figure per
experiment, the smoothed training loss (fastai's debiased EMA, beta 0.98) against the LR on a log axis,
with the suggestions (valley, steep, minimum) of summary.json marked.

Why it is drawn this way:
- The LR axis of the accuracy-mode test is linear, as in the paper: the interesting part (does accuracy
  stay high up to LR 3?) is at large LRs, which a log axis would squeeze. The LR is the shared axis, so
  our mini-scale runs (a few hundred iterations) and the author's 5k-100k-iteration runs are comparable
  without rescaling; the title says the scale and length of each of our runs.
- The author's LR at a test iteration is read from the log's `Iteration N, lr = ...` table, interpolated
  between logged iterations. The final test (after the last step) has no lr line; it takes the Caffe
  `triangular` policy's value from the solver header when there is one, else the nearest logged LR.
- The loss panel has a log y axis: a range test that diverges reaches test losses of 1e8, which would
  flatten every other curve on a linear axis. Non-finite losses are left out.
- Colours follow the spec's experiment order, whether or not an experiment has results yet, so a figure
  keeps its colours as results arrive; when the spec lists as many author logs as experiments they are
  paired in order (author 5k in the colour of our 5k run).
- The table next to each figure has one row per curve (ours and the author's): verdict, peak accuracy and
  its LR, final accuracy, suggested bounds. The author's verdict is computed from his logged curve by the
  same rule (superconv.range_analysis.verdict, tolerance 0.2, no chance level).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from superconv.range_analysis import smooth_losses, verdict

from . import registry, style
from .caffe_log import CaffeLog
from .registry import FigureSpec

__all__ = ["draw", "draw_range", "draw_lr_find", "range_experiments", "reference_lr", "RANGE_TABLE_COLUMNS",
           "LR_FIND_TABLE_COLUMNS", "SUGGESTIONS"]

RANGE_TABLE_COLUMNS = ["source", "experiment", "run", "curve", "scale", "iterations", "batch_size", "verdict",
                       "super_convergence_possible", "peak_acc", "peak_lr", "final_acc", "max_lr_tested",
                       "diverged_lr", "bound_min_lr", "bound_max_lr", "bounds_rule", "n_evals"]
LR_FIND_TABLE_COLUMNS = ["experiment", "run", "curve", "scale", "batch_size", "iterations_run", "stopped_at",
                         "stop_lr", "min_smoothed_loss", "min_smoothed_loss_lr", "valley", "steep", "minimum",
                         "slide", "note"]
SUGGESTIONS = (("valley", "-"), ("steep", "--"), ("minimum", ":"))  # fastai's three, with their line style
BETA = 0.98  # fastai's smoothing of the lr_find loss (range_test.beta default)
CAPTION_WIDTH = 150  # characters per caption line
PALETTE = "colorblind"


# ----------------------------------------------------------------------------------------- helpers
def _col(df: pd.DataFrame, name: str) -> pd.Series:
    """A column, or a column of None when the frame lacks it (summaries without range tests)."""
    return df[name] if name in df else pd.Series([None] * len(df), index=df.index, dtype="object")


def _num(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _fmt(value, spec: str = ".3g") -> str:
    v = _num(value)
    return "n/a" if v is None else format(v, spec)


def _modes(summaries: pd.DataFrame) -> pd.DataFrame:
    """experiment, run, mode of every finished range-test run (mode: accuracy unless the summary says loss)."""
    if not len(summaries):
        return pd.DataFrame(columns=["experiment", "run", "mode"])
    s = summaries[(summaries["job_type"] == "range_test") & (summaries["status"] != "unfinished")]
    mode = _col(s, "range_test/mode").where(_col(s, "range_test/mode").notna(), "accuracy")
    return pd.DataFrame({"experiment": s["experiment"], "run": s["run"], "mode": mode.astype(str)})


def range_experiments(runs: pd.DataFrame, summaries: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(experiments with accuracy-mode range tests, experiments with loss-mode ones), each sorted."""
    modes = _modes(summaries)
    if len(runs):
        have = runs.loc[runs["job_type"] == "range_test", ["experiment", "run"]].drop_duplicates()
        modes = modes.merge(have, on=["experiment", "run"], how="inner")
    else:
        modes = modes.iloc[0:0]
    acc = sorted(set(modes.loc[modes["mode"] != "loss", "experiment"]))
    loss = sorted(set(modes.loc[modes["mode"] == "loss", "experiment"]))
    return acc, loss


def _short_labels(run_names: list[str]) -> dict[str, str]:
    """Run directory names (comma-separated overrides) shortened to the overrides that differ."""
    parts = {r: r.split(",") for r in run_names}
    common = set.intersection(*(set(p) for p in parts.values())) if parts else set()
    return {r: ",".join(p for p in parts[r] if p not in common) or r for r in run_names}


def _run_note(row: pd.Series, iterations_key: str = "iterations") -> str:
    bits = []
    if isinstance(row.get("scale"), str):
        bits.append(f"scale {row['scale']}")
    it = _num(row.get(iterations_key))
    if it is not None:
        bits.append(f"{int(it)} it")
    run_it = _num(row.get("iterations_run"))
    if iterations_key == "iterations" and run_it is not None and it is not None and run_it < it:
        bits.append(f"stopped at {int(run_it)}")
    bs = _num(row.get("batch_size"))
    if bs is not None:
        bits.append(f"batch {int(bs)}")
    return ", ".join(bits)


def _caption(fig, lines: list[str]) -> None:
    """Lines of text under the axes (bbox 'tight' grows the saved figure to hold them)."""
    if not lines:
        return
    wrapped = []
    for line in lines:
        wrapped += textwrap.wrap(line, CAPTION_WIDTH, subsequent_indent="    ") or [""]
    fig.text(0.01, -0.01, "\n".join(wrapped), ha="left", va="top", fontsize=6.5, linespacing=1.35)


def _empty_note(ax, text: str) -> None:
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(text, 48)), ha="center", va="center", transform=ax.transAxes,
            fontsize=7, color="0.3")


# --------------------------------------------------------------------------- the author's logs
def reference_lr(log: CaffeLog, iterations) -> np.ndarray:
    """The author's LR at each iteration: interpolated in the log's lr table; past its ends, the solver's
    `triangular` policy when the header has one (base_lr, max_lr, stepsize), else the nearest logged LR."""
    its = np.asarray(iterations, dtype="float64")
    table = log.lr.dropna(subset=["lr"]).sort_values("iteration")
    s = log.solver
    tri = None
    keys = ("base_lr", "max_lr", "stepsize")
    if s.get("lr_policy") == "triangular" and all(_num(s.get(k)) is not None for k in keys):
        base, top, step = float(s["base_lr"]), float(s["max_lr"]), float(s["stepsize"])
        if step > 0:
            cycle = np.floor(1 + its / (2 * step))
            x = np.abs(its / step - 2 * cycle + 1)
            tri = base + (top - base) * np.maximum(0.0, 1 - x)
    if not len(table):
        return tri if tri is not None else np.full(its.shape, np.nan)
    xp, fp = table["iteration"].to_numpy("float64"), table["lr"].to_numpy("float64")
    out = np.interp(its, xp, fp)
    if tri is not None:
        outside = (its < xp[0]) | (its > xp[-1])
        out[outside] = tri[outside]
    return out


def _reference(spec: FigureSpec, reference: dict[str, CaffeLog] | None) -> list[tuple[str, str, CaffeLog]]:
    if not reference:
        return []
    return [(stem, label, reference[stem]) for stem, label in spec.reference.items() if stem in reference]


def _reference_row(stem: str, label: str, log: CaffeLog, lr: np.ndarray, acc: np.ndarray) -> dict:
    row = {c: None for c in RANGE_TABLE_COLUMNS}
    row.update(source="author log", experiment=label, run=stem, curve=label,
               iterations=_num(log.solver.get("max_iter")), n_evals=len(acc))
    ok = np.isfinite(lr) & np.isfinite(acc)
    if ok.any():
        try:
            v = verdict(np.maximum.accumulate(lr[ok]), acc[ok])
        except ValueError:
            v = None
        if v:
            row.update(verdict=v["label"], super_convergence_possible=v["super_convergence_possible"],
                       peak_acc=v["peak_acc"], peak_lr=v["peak_lr"], final_acc=v["final_acc"],
                       max_lr_tested=v["max_lr_tested"])
    return row


# ------------------------------------------------------------------------------ accuracy mode
def _smooth(values: pd.Series) -> pd.Series:
    window = max(1, len(values) // 20)
    return values.rolling(window, center=True, min_periods=1).mean()


def _positive(x: pd.Series, y: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    ok = np.isfinite(x) & np.isfinite(y) & (y > 0)
    return x[ok], y[ok]


def draw_range(spec: FigureSpec, runs: pd.DataFrame, summaries: pd.DataFrame, out_dir: Path,
               reference: dict[str, CaffeLog] | None) -> list[Path]:
    """One accuracy-mode range-test figure (two panels), its PDF/PNG and its table."""
    hue = spec.hue or "experiment"
    modes = _modes(summaries)
    modes = modes[modes["experiment"].isin(spec.experiments) & (modes["mode"] != "loss")]
    df = runs[runs["experiment"].isin(spec.experiments) & (runs["job_type"] == "range_test")] if len(runs) else runs
    df = df.merge(modes[["experiment", "run"]], on=["experiment", "run"], how="inner") if len(df) else df
    srows = summaries.merge(modes[["experiment", "run"]], on=["experiment", "run"], how="inner") if len(modes) \
        else summaries.iloc[0:0]
    run_keys = list(df[["experiment", "run"]].drop_duplicates().itertuples(index=False, name=None)) if len(df) else []

    # colours: hue levels in the spec's order (experiments) or sorted (any other factor)
    if hue == "experiment":
        levels = list(spec.experiments)
    else:
        levels = sorted({str(v) for v in df[hue]}) if len(df) else []
    refs = _reference(spec, reference)
    paired = hue == "experiment" and len(spec.reference) == len(spec.experiments)
    n_colors = max(1, len(levels) + (0 if paired else len(spec.reference)))
    palette = sns.color_palette(PALETTE, n_colors)
    color_of = {lv: palette[i % len(palette)] for i, lv in enumerate(levels)}
    ref_color = {stem: palette[(i if paired else len(levels) + i) % len(palette)]
                 for i, stem in enumerate(spec.reference)}

    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(10, 4.0))
    rows, caption, titles = [], [], []
    has_loss = False
    by_hue: dict[str, list] = {}
    for key in run_keys:
        sub = df[(df["experiment"] == key[0]) & (df["run"] == key[1])]
        by_hue.setdefault(str(sub[hue].iloc[0]), []).append(key)
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    for i_run, key in enumerate(run_keys):
        exp, run = key
        sub = df[(df["experiment"] == exp) & (df["run"] == run)].sort_values("iteration")
        srow = srows[(srows["experiment"] == exp) & (srows["run"] == run)]
        srow = srow.iloc[0] if len(srow) else pd.Series(dtype="object")
        level = str(sub[hue].iloc[0])
        color = color_of.get(level, palette[i_run % len(palette)])
        label_verdict = srow.get("range_test/verdict/label")
        label = level
        same = by_hue[level]
        if len(same) > 1:
            label += f" [{_short_labels([k[1] for k in same])[run]}]"
        curve = label
        label += f": {label_verdict}" if isinstance(label_verdict, str) else ": no verdict"
        evals = sub[sub["test/acc"].notna()]
        marker = markers[levels.index(level) % len(markers)] if level in levels else "o"
        ax.plot(evals["lr"], evals["test/acc"], color=color, marker=marker, markersize=3, linewidth=1.3,
                label=label)
        peak_lr, peak_acc = _num(srow.get("range_test/verdict/peak_lr")), _num(srow.get("range_test/verdict/peak_acc"))
        if peak_lr is not None and peak_acc is not None:
            ax.plot([peak_lr], [peak_acc], marker="*", markersize=9, color=color, markeredgecolor="black",
                    markeredgewidth=0.5, linestyle="none", zorder=5)
        b_max, b_min = _num(srow.get("range_test/bounds/max_lr")), _num(srow.get("range_test/bounds/min_lr"))
        for a in (ax, ax_loss):
            if b_max is not None:
                a.axvline(b_max, color=color, linestyle="-.", linewidth=0.9)
            if b_min is not None:
                a.axvline(b_min, color=color, linestyle=":", linewidth=0.9)
        tr_x, tr_y = _positive(sub["lr"], _smooth(sub["train/loss"].where(np.isfinite(sub["train/loss"]))))
        ax_loss.plot(tr_x, tr_y, color=color, alpha=0.4, linewidth=0.9)
        te_x, te_y = _positive(evals["lr"], evals["test/loss"])
        ax_loss.plot(te_x, te_y, color=color, marker=marker, markersize=3, linewidth=1.3)
        has_loss = has_loss or bool(len(tr_x) or len(te_x))

        note = _run_note(srow if len(srow) else sub.iloc[0])
        titles.append(f"{exp}{f' [{curve}]' if curve != exp else ''}: {note}")
        vtext = srow.get("range_test/verdict/text")
        line = f"{curve}: {label_verdict if isinstance(label_verdict, str) else 'no verdict'}"
        if isinstance(vtext, str):
            line += f" -- {vtext}"
        elif isinstance(srow.get("range_test/note"), str):
            line += f" -- {srow['range_test/note']}"
        btext = srow.get("range_test/bounds/text")
        if isinstance(btext, str):
            line += f". Suggested bounds: {btext}"
        caption.append(line)
        row = {c: None for c in RANGE_TABLE_COLUMNS}
        row.update(source="ours", experiment=exp, run=run, curve=curve, scale=srow.get("scale"),
                   iterations=_num(srow.get("iterations")), batch_size=_num(srow.get("batch_size")),
                   verdict=label_verdict,
                   super_convergence_possible=srow.get("range_test/verdict/super_convergence_possible"),
                   peak_acc=peak_acc, peak_lr=peak_lr, final_acc=_num(srow.get("range_test/verdict/final_acc")),
                   max_lr_tested=_num(srow.get("range_test/verdict/max_lr_tested")),
                   diverged_lr=_num(srow.get("range_test/diverged_lr")), bound_min_lr=b_min, bound_max_lr=b_max,
                   bounds_rule=srow.get("range_test/bounds/rule"), n_evals=len(evals))
        rows.append(row)

    for stem, label, log in refs:
        color = ref_color[stem]
        test = log.test.dropna(subset=["test/acc"]).sort_values("iteration")
        lr = reference_lr(log, test["iteration"])
        acc = test["test/acc"].to_numpy("float64")
        ax.plot(lr, acc, color=color, linestyle="--", linewidth=0.9, label=f"{label} (author's log {stem})")
        lx, ly = _positive(pd.Series(lr), test["test/loss"].reset_index(drop=True))
        ax_loss.plot(lx, ly, color=color, linestyle="--", linewidth=0.9)
        has_loss = has_loss or bool(len(lx))
        rows.append(_reference_row(stem, label, log, lr, acc))

    # what is missing
    notes = []
    for exp in spec.experiments:
        have = [k for k in run_keys if k[0] == exp]
        unfinished = summaries[(summaries["experiment"] == exp) & (summaries["status"] == "unfinished")] \
            if len(summaries) else summaries
        if not have:
            notes.append(f"no results yet for {exp}: python -m superconv.range_test experiment={exp}")
        if len(unfinished):
            notes.append(f"{exp}: {len(unfinished)} unfinished run(s) not drawn")
    if reference is not None:
        absent = [stem for stem in spec.reference if stem not in reference]
        if absent:
            notes.append(f"author's logs not in the reference folder: {', '.join(absent)}")
    if not run_keys and not refs:
        _empty_note(ax, "; ".join(notes) or "no results")
        _empty_note(ax_loss, "no results")

    ax.set_xlabel("learning rate (linear)")
    ax.set_ylabel("test accuracy")
    ax.set_title("test accuracy vs LR", fontsize=8)
    ax_loss.set_xlabel("learning rate (linear)")
    ax_loss.set_ylabel("loss (log scale)" if has_loss else "loss")
    ax_loss.set_title("train loss (light, rolling mean) and test loss vs LR", fontsize=8)
    if has_loss:
        ax_loss.set_yscale("log")
    for a in (ax, ax_loss):
        a.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        key = [Line2D([], [], color="0.2", linestyle="-.", linewidth=0.9, label="suggested max_lr"),
               Line2D([], [], color="0.2", linestyle=":", linewidth=0.9, label="suggested min_lr"),
               Line2D([], [], color="0.5", marker="*", markersize=8, markeredgecolor="black",
                      markeredgewidth=0.5, linestyle="none", label="peak (verdict)")] if run_keys else []
        ax.legend(handles=handles + key, fontsize=6, loc="best", framealpha=0.85)
        loss_key = [Line2D([], [], color="0.3", alpha=0.4, linewidth=0.9, label="train loss (rolling mean)"),
                    Line2D([], [], color="0.3", marker="o", markersize=3, linewidth=1.3, label="test loss (ours)")]
        if refs:
            loss_key.append(Line2D([], [], color="0.3", linestyle="--", linewidth=1.1, label="test loss (author)"))
        ax_loss.legend(handles=loss_key, fontsize=6, loc="best", framealpha=0.85)
    ours = textwrap.wrap("ours: " + ("; ".join(titles) if titles else "no results yet"), 130)
    fig.suptitle("\n".join([f"{spec.paper}: {spec.title}", *ours]), fontsize=9)
    fig.tight_layout()
    _caption(fig, caption + [f"Note: {n}" for n in notes])
    written = style.save(fig, out_dir / spec.name)
    written.append(style.write_table(pd.DataFrame(rows, columns=RANGE_TABLE_COLUMNS), out_dir / f"{spec.name}.csv"))
    return written


# --------------------------------------------------------------------------------- loss mode
def draw_lr_find(experiment: str, runs: pd.DataFrame, summaries: pd.DataFrame, out_dir: Path) -> list[Path]:
    """`lr_find_<experiment>`: smoothed training loss vs LR (log x), fastai's suggestions marked."""
    stem = f"lr_find_{experiment}"
    modes = _modes(summaries)
    modes = modes[(modes["experiment"] == experiment) & (modes["mode"] == "loss")]
    df = runs[(runs["experiment"] == experiment) & (runs["job_type"] == "range_test")] if len(runs) else runs
    df = df.merge(modes[["experiment", "run"]], on=["experiment", "run"], how="inner") if len(df) else df
    names = sorted(set(df["run"])) if len(df) else []
    short = _short_labels(names)
    palette = sns.color_palette(PALETTE, max(1, len(names)))

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    rows, caption, titles = [], [], []
    y_lo, y_hi = math.inf, -math.inf
    for i, run in enumerate(names):
        color = palette[i % len(palette)]
        sub = df[df["run"] == run].sort_values("iteration")
        srow = summaries[(summaries["experiment"] == experiment) & (summaries["run"] == run)]
        srow = srow.iloc[0] if len(srow) else pd.Series(dtype="object")
        curve = experiment if len(names) == 1 else short[run]
        lrs = sub["lr"].to_numpy("float64")
        raw = sub["train/loss"].to_numpy("float64")
        ok = np.isfinite(lrs) & (lrs > 0)
        lrs, raw = lrs[ok], raw[ok]
        # fastai's smoothing runs over the losses as logged; a NaN loss ends the curve (as in fastai)
        finite = np.isfinite(raw)
        cut = int(np.argmin(finite)) if not finite.all() else len(raw)
        smoothed = np.asarray(smooth_losses(raw[:cut].tolist(), BETA)) if cut else np.array([])
        ax.plot(lrs[:cut], raw[:cut], color=color, alpha=0.25, linewidth=0.8)
        ax.plot(lrs[:cut], smoothed, color=color, linewidth=1.5, label=f"{curve} (smoothed)")
        if len(smoothed):
            y_lo, y_hi = min(y_lo, float(smoothed.min())), max(y_hi, float(smoothed.max()))
        sugg = {name: _num(srow.get(f"range_test/suggestions/{name}"))
                for name in ("valley", "steep", "minimum", "slide")}
        for name, ls in SUGGESTIONS:
            v = sugg[name]
            if v is None or v <= 0:
                continue
            ax.axvline(v, color=color, linestyle=ls, linewidth=1.0,
                       label=f"{name} {v:.3g}" if len(names) == 1 else f"{curve}: {name} {v:.3g}")
            if len(smoothed):
                y = np.interp(np.log(v), np.log(lrs[:cut]), smoothed)
                ax.plot([v], [y], marker="o", markersize=5, color=color, markeredgecolor="black",
                        markeredgewidth=0.5, zorder=5)
        stop_lr = _num(srow.get("range_test/stop_lr"))
        i_min = int(np.argmin(smoothed)) if len(smoothed) else None
        titles.append(f"{curve}: {_run_note(srow if len(srow) else sub.iloc[0], 'iterations_run')}")
        text = ", ".join(f"{k} {_fmt(v)}" for k, v in sugg.items() if v is not None)
        line = f"{curve}: suggestions {text or 'none'}"
        if stop_lr is not None:
            line += f"; stopped at LR {stop_lr:.3g} (smoothed loss > stop_factor x its minimum)"
        if isinstance(srow.get("range_test/note"), str) and srow["range_test/note"]:
            line += f"; {srow['range_test/note']}"
        caption.append(line)
        rows.append({"experiment": experiment, "run": run, "curve": curve, "scale": srow.get("scale"),
                     "batch_size": _num(srow.get("batch_size")), "iterations_run": _num(srow.get("iterations_run")),
                     "stopped_at": _num(srow.get("range_test/stopped_at")), "stop_lr": stop_lr,
                     "min_smoothed_loss": float(smoothed[i_min]) if i_min is not None else None,
                     "min_smoothed_loss_lr": float(lrs[i_min]) if i_min is not None else None,
                     **{k: sugg[k] for k in ("valley", "steep", "minimum", "slide")},
                     "note": srow.get("range_test/note") or None})
    notes = []
    unfinished = summaries[(summaries["experiment"] == experiment) & (summaries["status"] == "unfinished")] \
        if len(summaries) else summaries
    if not names:
        notes.append(f"no results yet for {experiment}: python -m superconv.range_test "
                     f"experiment_name={experiment} range_test.mode=loss")
        _empty_note(ax, notes[-1])
    if len(unfinished):
        notes.append(f"{experiment}: {len(unfinished)} unfinished run(s) not drawn")
    if names:
        ax.set_xscale("log")
        if np.isfinite(y_lo) and np.isfinite(y_hi) and y_hi > y_lo:
            # the smoothed curves' range: a raw spike (the loss blowing up) must not flatten them
            pad = 0.05 * (y_hi - y_lo)
            ax.set_ylim(y_lo - pad, y_hi + pad)
        ax.legend(fontsize=6, loc="best", framealpha=0.85)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel(f"training loss (smoothed, beta {BETA};\nlight: raw, clipped to the smoothed range)")
    ours = textwrap.wrap("ours: " + ("; ".join(titles) or "no results yet"), 90)
    fig.suptitle("\n".join([f"lr_find (fastai, exponential LR): {experiment}", *ours]), fontsize=9)
    fig.tight_layout()
    _caption(fig, caption + [f"Note: {n}" for n in notes])
    written = style.save(fig, out_dir / stem)
    written.append(style.write_table(pd.DataFrame(rows, columns=LR_FIND_TABLE_COLUMNS), out_dir / f"{stem}.csv"))
    return written


# ---------------------------------------------------------------------------------------- entry
def draw(runs: pd.DataFrame, summaries: pd.DataFrame, out_dir: Path,
         reference: dict[str, CaffeLog] | None) -> list[Path]:
    """Every range-test figure: registry.RANGE, a generic one per other accuracy-mode experiment, and one
    lr_find figure per loss-mode experiment. Returns every path written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    acc_exps, loss_exps = range_experiments(runs, summaries)
    named = {e for spec in registry.RANGE for e in spec.experiments}
    extra = [FigureSpec(f"range_test_{e}", "(not in the paper)", f"LR range test {e}", (e,), hue="experiment")
             for e in acc_exps if e not in named]
    written: list[Path] = []
    for spec in (*registry.RANGE, *extra):
        written += draw_range(spec, runs, summaries, out_dir, reference)
    for e in loss_exps:
        written += draw_lr_find(e, runs, summaries, out_dir)
    return written
