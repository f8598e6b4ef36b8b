"""The reproduction report: for every claim of the paper, its number, the author's re-run, ours, a verdict.

    python -m paper_figures --reference ../shared/reference/author_logs     (make figures: figures, then this)

`build_report(summaries, reference, figures, out_path, command, runs=runs)` writes `paper_figures/REPORT.md`
from `paper_figures.load.load_summaries(results)` and `load_runs(results)` alone (nothing is trained, nothing
typed in): one table per claim of docs/PAPER.md §2 (`CLAIMS`), with the verdict decided by
`judge(claim, summaries)`, whose rules are the pure functions of `paper_figures.judging`. `judge_all` gives
every claim's verdict: the report and README.md's results table (`paper_figures.readme_table`) show the same.

Why it is written the way it is:
- Every number in the report comes from a results summary, a run's metrics or an author log: the "author
  re-run" column is `reference[stem].final_test_acc`, never a typed-in value; without a reference folder it
  shows "-". The paper column is the only text typed in (it is what the paper printed). Each scale's network,
  batch, lengths, epochs, precision and hardware are described from its runs' config and summary.
- Only runs with status "completed" (and a final accuracy) are accuracy numbers. A diverged run is a result
  too, but a failure, not an accuracy: it is counted and shown beside the mean ("1 diverged"), a group
  whose runs all diverged loses its comparison, and a diverged run on the side the claim favours caps the
  verdict at "partly". Unfinished runs (no DONE) never count; the cell says they exist.
- Runs of different scales or protocols are never pooled: `judge` splits a claim's runs by scale and, within
  a scale, by protocol (precision, BatchNorm rule, protocol version: `by_setting`) and judges each on its own
  (`Verdict.scales`); the report then shows one table and one verdict per setting, and the summary the verdict
  of each ("paper: not run yet; mini: indicative (n=1)"). With one setting the report has no sub-sections.
- The report is deterministic (no timestamps, everything sorted, fixed number formats) and rewritten
  only when its text changed, so `make figures` leaves it byte-identical and its mtime unchanged.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .caffe_log import CaffeLog
from superconv import health as run_health
from superconv.lr_estimate import landmarks

from .judging import (HIGH_SHARE, INCONCLUSIVE, INDICATIVE, JUDGED, MIN_CLR_EPOCHS, MIN_N, NOT_JUDGED, NOT_RUN,
                      NOT_TESTABLE, STILL_RISING, TRAIN_IMAGES, VERDICTS, Regime, SeedSd, Side, combine, compare,
                      epochs, flag_note, high_share, protocol_of, range_case, range_run, regime_gap, seed_sd,
                      split_flags)
from .load import scale_labels, scales_in
from superconv.atomic import write_if_changed

__all__ = ["Claim", "Group", "Ref", "Verdict", "CLAIMS", "VERDICTS", "judge", "judge_all", "by_scale", "by_setting",
           "attach_curves", "attach_health", "attach_estimates", "build_report", "render_report"]

KINDS = ("better", "not_better", "range", "qualitative", "out_of_scope")
VERDICT_COL = "range_test/verdict/"
LABEL_COL, PEAK_COL, PEAK_LR_COL = VERDICT_COL + "label", VERDICT_COL + "peak_acc", VERDICT_COL + "peak_lr"
MAX_LR_COL, TOL_COL = VERDICT_COL + "max_lr_tested", VERDICT_COL + "tolerance"
SHARE_COL, FROM_LR_COL = "curve/high_share", "curve/high_from_lr"  # added by attach_curves from metrics.csv
TOLERANCE = 0.2  # a range test's tolerance when its summary has none: superconv.range_analysis.verdict's default
HEALTH_COL = "health"  # the run's health flags, comma-joined (paper_figures.load; attach_health fills the gaps)
HEALTH_WHY_COL, HEALTH_SRC_COL = "health/why", "health/source"  # added by attach_health
ESTIMATE_PREFIX = "lr_estimate/"  # + start, middle, end, peak (and _it): added by attach_estimates from metrics.csv

Where = tuple[tuple[str, object], ...]


def _w(**kw) -> Where:
    return tuple(sorted(kw.items()))


@dataclass(frozen=True)
class Group:
    """One side of a comparison: `column == value` filters; the value "@max" / "@min" means the largest /
    smallest value of that column among the claim's runs (e.g. the largest batch size tested)."""

    label: str
    where: Where = ()


@dataclass(frozen=True)
class Ref:
    """The paper's number and the author's log for the table rows whose filters include `where`."""

    where: Where
    paper: str = "-"
    author: str | None = None  # author log stem in the reference folder


@dataclass(frozen=True)
class Claim:
    id: str
    artifact: str  # the paper's figure/table (ICLR-2018 numbering)
    text: str
    paper: str  # the paper's number(s), as printed
    kind: str  # one of KINDS
    experiments: tuple[str, ...] = ()
    where: Where = ()  # filters applied to every run of the claim
    a: Group | None = None  # the side the claim says is better ("better"), or would be ("not_better")
    b: Group | None = None
    split: str | None = None  # judged separately per value of this column (then combined)
    split_known_only: bool = False  # only the split values the refs name (else also those run)
    sweep: str | None = None  # the table shows one row per value of this column (A and B among them)
    refs: tuple[Ref, ...] = ()
    figure: str | None = None  # figure stem (paper_figures/figures/<stem>.png) to look at
    rule: str = ""  # the claim's own rule, in words
    regime: Regime | None = None  # the least its runs must do for the claim to be testable at a scale
    headline: str = ""  # the claim in a few words: README.md's results table (paper_figures.readme_table)
    metric: str | None = None  # a run metric the "ours" cell summarises instead of the final accuracy
    # ("lr_estimate": the estimate's start, middle, end and peak, `attach_estimates`)


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict. When its runs span several settings (scales, or protocols within a scale: `by_setting`),
    `scales` holds the verdict of each, judged on its runs alone, and `label` / `detail` only sum those up
    (label: combined like sub-cases; detail: "setting: label (detail)" each); `cases` is then empty. The report
    shows the per-setting ones."""

    label: str  # one of VERDICTS
    detail: str
    cases: tuple[tuple[str, str, str], ...] = ()  # (sub-case, label, detail) for split / range claims
    scales: tuple[tuple[str, "Verdict"], ...] = ()  # (setting, verdict) when the runs span several settings


CLR, PC = _w(schedule="clr"), _w(schedule="multistep")
LR_ESTIMATE_RULE = ("estimate curve: compare its values (ours) and the figure with the paper's; where minibatch noise "
                    "dominates the gradients, SGD with momentum 0.9 reads ~2.24x the LR in use whatever the curvature "
                    "(superconv.lr_estimate)")
MAX, MIN = "@max", "@min"
# CLR vs PC-LR at 1/8 of the budget: only testable where the CLR run is long enough to converge at all.
BUDGET = Regime(MIN_CLR_EPOCHS, "the claim is that 1/8 of PC-LR's budget is enough for CLR to converge (the "
                "paper's CLR runs train 40 to 200 epochs); a run this short ends long before it could, so the comparison "
                "would measure how far each run got")

# CLR vs PC-LR at CLR's own budget (our extension): testable where CLR trains long enough to converge at all.
EQUAL = Regime(MIN_CLR_EPOCHS, "at equal budget the question is which schedule converges better in the same "
               "number of steps; a run this short ends long before either could")

CLAIMS: tuple[Claim, ...] = (
    Claim("fig1a_clr_vs_pclr", "Fig 1a", "CLR 0.1-3 for 10k iterations beats PC-LR 0.35 for 80k iterations",
          "92.4 vs 91.2", "better", ("fig1a",), a=Group("CLR", CLR), b=Group("PC-LR", PC),
          refs=(Ref(CLR, "92.4", "clr3SS5kFig1a"), Ref(PC, "91.2", "lr35Fig1a")), figure="fig1a_clr_vs_pclr",
          regime=BUDGET, headline="CLR (10k it) beats PC-LR (80k it)"),
    Claim("fig1a_curve", "Fig 1a", "CLR test accuracy stays ~65-80% while the LR is high, then rises to the "
          "end: 85.6 @9k, 90.5 @9.5k, 92.4 @10k", "65-80% at high LR; 85.6 / 90.5 / 92.4", "qualitative",
          ("fig1a",), where=CLR, refs=(Ref(CLR, "92.4 @10k", "clr3SS5kFig1a"),), figure="fig1a_clr_vs_pclr",
          rule="curve shape: compare the CLR curve with the author's in the figure",
          headline="CLR accuracy stays ~65-80% at high LR, then rises"),
    Claim("fig1a_equal_budget", "Fig 1a, extended (ours)", "Not in the paper: at equal budget (the CLR run's "
          "iterations for every schedule) CLR beats PC-LR; 1cycle (LR 0.1 -> 3 -> 0.1, then annihilation to 0.001, "
          "cyclical momentum 0.95-0.85) is shown beside", "not in the paper", "better", ("fig1a_equal_budget",),
          a=Group("CLR", CLR), b=Group("PC-LR", PC), sweep="schedule", figure="fig1a_equal_budget", regime=EQUAL,
          headline="equal budget: CLR beats PC-LR (ours, not the paper's claim)"),
    Claim("table1_fraction", "Table 1 / Fig 6a", "CLR beats PC-LR on reduced training sets (40k/30k/20k/10k "
          "images = fraction 0.8/0.6/0.4/0.2); PC-LR 'has difficulties'",
          "91.1/89.6/87.9/80.6 vs 89.1/85.7/82.7/71.4", "better", ("fig6a_fraction",),
          a=Group("CLR", CLR), b=Group("PC-LR", PC), split="fraction",
          refs=tuple(Ref(_w(schedule=s, fraction=f), p, f"{stem}Tr{k}kTab1")
                     for f, k, pc, pp in ((0.8, 40, "91.1", "89.1"), (0.6, 30, "89.6", "85.7"),
                                          (0.4, 20, "87.9", "82.7"), (0.2, 10, "80.6", "71.4"))
                     for s, p, stem in (("clr", pc, "clr3SS5k"), ("multistep", pp, "lr35"))),
          figure="sweep_fraction", regime=BUDGET, headline="CLR beats PC-LR on reduced training sets"),
    Claim("table1_maxlr", "Table 1", "The cycle's maximum LR can be large: the largest max LR tested (paper "
          "3.5) does at least as well as the smallest (paper 1.0)", "3.5/3/2.5/2/1.5/1: 92.1/92.4/92.3/91.7/90.9/91.3",
          "better", ("table1_maxlr",), where=CLR, a=Group("largest max LR", _w(max_lr=MAX)),
          b=Group("smallest max LR", _w(max_lr=MIN)), sweep="max_lr",
          refs=(Ref(_w(max_lr=3.5), "92.1"), Ref(_w(max_lr=3.0), "92.4", "clr3SS5kFig1a"), Ref(_w(max_lr=2.5), "92.3"),
                Ref(_w(max_lr=2.0), "91.7"), Ref(_w(max_lr=1.5), "90.9"), Ref(_w(max_lr=1.0), "91.3")),
          figure="table1_maxlr", headline="the largest max LR does as well as the smallest"),
    Claim("table1_stepsize", "Table 1 / Fig 1b", "Longer cycles end higher, short ones still train: the longest "
          "run (stepsize 10k = 20k it) beats the shortest (stepsize 1k = 2k it)",
          "stepsize 10k/5k/4k/3k/2k/1k: 92.7/92.4/91.7/92.1/91.1/89.7", "better", ("fig1b_stepsize",),
          where=CLR, a=Group("longest run", _w(iterations=MAX)), b=Group("shortest run", _w(iterations=MIN)),
          sweep="iterations",
          refs=(Ref(_w(iterations=20000), "92.7"), Ref(_w(iterations=10000), "92.4", "clr3SS5kFig1a"),
                Ref(_w(iterations=8000), "91.7"), Ref(_w(iterations=6000), "92.1"), Ref(_w(iterations=4000), "91.1"),
                Ref(_w(iterations=2000), "89.7")), figure="fig1b_stepsize",
          headline="the longest cycle beats the shortest"),
    Claim("fig2b_range_test", "Fig 2b", "LR range test 0 -> 3 (5k/20k/100k it): test accuracy 'remains "
          "consistently high' up to LR 3", "~70-80% over LR 0.3-3; peaks 81.6/83.1/86.5", "range",
          ("range_fig2b_5k", "range_fig2b_20k", "range_fig2b_100k"), split="experiment",
          refs=(Ref(_w(experiment="range_fig2b_5k"), "stays high, peak 81.6", "range3Iter5kFig2b"),
                Ref(_w(experiment="range_fig2b_20k"), "stays high, peak 83.1", "range3Iter20kFig2b"),
                Ref(_w(experiment="range_fig2b_100k"), "stays high, peak 86.5", "range3Iter100kFig2b")),
          figure="fig2b_range_test", headline="range-test accuracy stays high up to LR 3"),
    Claim("fig4_range_loss", "Fig 4", "In range tests (0 -> 2, ResNet-20/-110) the training loss rises while "
          "the test loss falls for LR ~0.2-2", "qualitative", "qualitative",
          ("range_fig4b_resnet20", "range_fig4b_resnet110"), split="experiment",
          refs=(Ref(_w(experiment="range_fig4b_resnet20"), "qualitative", "range2Res20Fig4b"),
                Ref(_w(experiment="range_fig4b_resnet110"), "qualitative", "range2Res110Fig4b")),
          figure="fig4_range_depth", rule="loss curves: read the figure",
          headline="range tests: training loss rises while test loss falls"),
    Claim("fig5a_lr_estimate", "Fig 5a", "Over the first 300 iterations of the Fig 1a CLR run (LR 0.1 -> 0.27) the "
          "Hessian-free estimate of the optimal LR (superconv.lr_estimate: summed absolute values, EMA 0.1) is 2-4",
          "2-4", "qualitative", ("fig5a_lr_estimate",), refs=(Ref((), "2-4"),), figure="fig5_lr_estimate",
          metric="lr_estimate",
          rule=LR_ESTIMATE_RULE,
          headline="Hessian-free LR estimate is 2-4 early in training"),
    Claim("fig5b_constant", "Fig 5b", "With a constant LR of 0.1 for 10k iterations the estimate spikes to ~3 early, "
          "then falls to ~0.2", "spikes ~3, ends ~0.2", "qualitative", ("fig5b_lr_estimate",),
          where=_w(schedule="constant"), refs=(Ref(_w(schedule="constant"), "spikes ~3, ends ~0.2"),),
          figure="fig5_lr_estimate", metric="lr_estimate",
          rule=LR_ESTIMATE_RULE,
          headline="constant LR 0.1: the estimate spikes ~3, falls to ~0.2"),
    Claim("fig5b_clr", "Fig 5b", "With CLR 0.1-3 for 10k iterations the estimate stays high and ends near 0.5",
          "stays high, ends ~0.5", "qualitative", ("fig5b_lr_estimate",), where=CLR,
          refs=(Ref(CLR, "stays high, ends ~0.5"),), figure="fig5_lr_estimate",
          metric="lr_estimate", rule=LR_ESTIMATE_RULE,
          headline="CLR: the estimate stays high, ends ~0.5"),
    Claim("fig6b_depth", "Fig 6b", "CLR beats PC-LR for ResNet-20 and ResNet-110 too",
          "ResNet-20 90.4 vs 88.6; ResNet-110 92.1 vs 91.0", "better", ("fig6b_depth",),
          a=Group("CLR", CLR), b=Group("PC-LR", PC), split="depth",
          refs=(Ref(_w(schedule="clr", depth=20), "90.4", "clr3SS5kRes20Tab1"),
                Ref(_w(schedule="multistep", depth=20), "88.6", "lr35Res20Fig6b"),
                Ref(_w(schedule="clr", depth=110), "92.1", "clr3SS5kRes110Tab1"),
                Ref(_w(schedule="multistep", depth=110), "91.0", "lr35Res110Fig6b")), figure="fig6b_depth",
          regime=BUDGET, headline="CLR beats PC-LR for ResNet-20 and ResNet-110"),
    Claim("fig7a_cifar100_range", "Fig 7a", "CIFAR-100 LR range test 0 -> 3: accuracy stays high",
          "stays high", "range", ("range_fig7a_cifar100",), split="experiment",
          refs=(Ref(_w(experiment="range_fig7a_cifar100"), "stays high", "range3Cifar100kFig8"),),
          figure="fig7a_range_cifar100", headline="CIFAR-100 range-test accuracy stays high"),
    Claim("fig7b_cifar100", "Fig 7b", "CIFAR-100: CLR beats PC-LR", "68.6 vs 59.8", "better", ("fig7b_cifar100",),
          a=Group("CLR", CLR), b=Group("PC-LR", PC),
          refs=(Ref(CLR, "68.6", "clr3SS5kCifar100Fig8"), Ref(PC, "59.8", "lr35Cifar100Fig8")),
          figure="fig7b_cifar100", regime=BUDGET, headline="CIFAR-100: CLR beats PC-LR"),
    Claim("fig8_nesterov", "Fig 8", "With Nesterov momentum, CLR (10k it) beats PC-LR (80k it)", "92.1 vs 90.9",
          "better", ("fig8b_optimizers",), where=_w(optimizer="sgd", nesterov=True),
          a=Group("CLR + Nesterov", CLR), b=Group("PC-LR + Nesterov", PC),
          refs=(Ref(CLR, "92.1", "clr3SS5kNestFig9"), Ref(PC, "90.9", "lr35NestFig9")), figure="fig8b_optimizers",
          regime=BUDGET, headline="with Nesterov momentum, CLR beats PC-LR"),
    Claim("fig8_adaptive", "Fig 8", "Super-convergence with AdaDelta and AdaGrad: CLR beats PC-LR",
          "SC (CLR) vs no SC (PC-LR)", "better", ("fig8b_optimizers",), a=Group("CLR", CLR), b=Group("PC-LR", PC),
          split="optimizer", split_known_only=True,
          refs=(Ref(_w(schedule="clr", optimizer="adadelta"), "SC"),
                Ref(_w(schedule="multistep", optimizer="adadelta"), "no SC", "lr35AdaDeltaFig9"),
                Ref(_w(schedule="clr", optimizer="adagrad"), "SC"),
                Ref(_w(schedule="multistep", optimizer="adagrad"), "no SC", "lr35AdaGradFig9")),
          figure="fig8b_optimizers", regime=BUDGET, headline="AdaDelta and AdaGrad: CLR beats PC-LR"),
    Claim("fig8_adam", "Fig 8", "No super-convergence with Adam: CLR does not beat PC-LR", "no SC with Adam",
          "not_better", ("fig8b_optimizers",), where=_w(optimizer="adam"), a=Group("CLR + Adam", CLR),
          b=Group("PC-LR + Adam", PC), refs=(Ref(CLR, "no SC"), Ref(PC, "no SC", "lr35AdamFig9")),
          figure="fig8b_optimizers", regime=BUDGET, headline="Adam: CLR does not beat PC-LR"),
    Claim("fig9a_batch", "Fig 9a / Table 5", "Larger total batches do better: the largest batch tested beats the "
          "smallest (paper: 256 is clearly worst)", "1536/1000/512/256: 92.1/92.4/91.7/89.5", "better",
          ("fig9a_batch",), where=CLR, a=Group("largest batch", _w(batch_size=MAX)),
          b=Group("smallest batch", _w(batch_size=MIN)), sweep="batch_size",
          refs=(Ref(_w(batch_size=1536), "92.1"), Ref(_w(batch_size=1000), "92.4", "clr3SS5kFig1a"),
                Ref(_w(batch_size=512), "91.7"), Ref(_w(batch_size=256), "89.5")), figure="sweep_batch_size",
          headline="the largest batch beats the smallest"),
    Claim("fig9b_dropout", "Fig 9b", "Dropout 0.2 gives a small improvement over no dropout", "qualitative: small gain",
          "better", ("fig9b_dropout",), where=CLR, a=Group("dropout 0.2", _w(dropout=0.2)),
          b=Group("no dropout", _w(dropout=0.0)), sweep="dropout",
          refs=(Ref(_w(dropout=0.2), "small gain"), Ref(_w(dropout=0.0), "-", "clr3SS5kFig1a")),
          figure="sweep_dropout", headline="dropout 0.2 helps a little"),
    Claim("fig10a_momentum", "Fig 10a / Table 6", "Momentum 0.9 is best; 0.95 is clearly worse (judged: 0.9 beats 0.95)",
          "0.80/0.85/0.90/0.95: 92.1/91.9/92.4/90.7", "better", ("fig10a_momentum",), where=CLR,
          a=Group("momentum 0.9", _w(momentum=0.9)), b=Group("momentum 0.95", _w(momentum=0.95)), sweep="momentum",
          refs=(Ref(_w(momentum=0.8), "92.1", "clr3SS5kMom8Fig11"), Ref(_w(momentum=0.85), "91.9", "clr3SS5kMom85Fig11"),
                Ref(_w(momentum=0.9), "92.4", "clr3SS5kFig1a"), Ref(_w(momentum=0.95), "90.7", "clr3SS5kMom95Fig11")),
          figure="fig10a_momentum", headline="momentum 0.9 beats 0.95"),
    Claim("fig10b_weight_decay", "Fig 10b", "Weight decay 1e-3 prevents super-convergence; 1e-4 (best), 1e-5 and "
          "1e-6 do not (judged: 1e-4 beats 1e-3, a diverged 1e-3 run counts as failing)",
          "1e-3 prevents SC; 1e-4 best", "better", ("fig10b_weight_decay",), where=CLR,
          a=Group("weight decay 1e-4", _w(weight_decay=1e-4)), b=Group("weight decay 1e-3", _w(weight_decay=1e-3)),
          sweep="weight_decay",
          refs=(Ref(_w(weight_decay=1e-3), "prevents SC", "clr3SS5kWD-3Fig11"),
                Ref(_w(weight_decay=1e-4), "best", "clr3SS5kFig1a"),
                Ref(_w(weight_decay=1e-5), "SC", "clr3SS5kWD-5Fig11"),
                Ref(_w(weight_decay=1e-6), "SC", "clr3SS5kWD-6Fig11")), figure="sweep_weight_decay",
          headline="weight decay 1e-4 beats 1e-3"),
)


# ------------------------------------------------------------------------------ selecting runs
def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _same(x, v) -> bool:
    """`x` (a cell) equals `v` (a filter value): floats within rounding, bools as bools, else ==."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return False
    if isinstance(v, (bool, np.bool_)):
        return isinstance(x, (bool, np.bool_)) and bool(x) == bool(v)
    if _is_num(v):
        if isinstance(x, (bool, np.bool_)):
            return False
        try:
            return math.isclose(float(x), float(v), rel_tol=1e-6, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return x == v


def _select(df: pd.DataFrame, where: Mapping[str, object]) -> pd.DataFrame:
    mask = np.ones(len(df), dtype=bool)
    for col, v in where.items():
        if col not in df:
            return df.iloc[0:0]
        mask &= np.array([_same(x, v) for x in df[col].tolist()], dtype=bool)
    return df[mask]


def _pool(claim: Claim, summaries: pd.DataFrame) -> pd.DataFrame:
    """Every run of the claim's experiments matching its base filters (unfinished ones included)."""
    if summaries is None or summaries.empty or "experiment" not in summaries:
        return pd.DataFrame(columns=["experiment", "status"])
    df = summaries[summaries["experiment"].isin(claim.experiments)]
    return _select(df, dict(claim.where))


def _finished(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    return df[(df["status"] == "completed") & df["final_test_acc"].notna()]


def _diverged(df: pd.DataFrame) -> pd.DataFrame:
    return df if df.empty else df[df["status"] == "diverged"]


def _unfinished(df: pd.DataFrame) -> pd.DataFrame:
    """Runs that are neither finished nor diverged (no DONE, or no usable final accuracy): never counted."""
    if df.empty:
        return df
    done = ((df["status"] == "completed") & df["final_test_acc"].notna()) | (df["status"] == "diverged")
    return df[~done]


def _resolve(group: Group, pool: pd.DataFrame) -> dict[str, object] | None:
    """The group's filters with "@max"/"@min" replaced by values of the finished or diverged runs of the pool;
    None when a "@" column has no such value."""
    out: dict[str, object] = {}
    counted = pool if pool.empty else pool[pool.index.isin(_finished(pool).index) | (pool["status"] == "diverged")]
    for col, v in group.where:
        if v in (MAX, MIN):
            vals = pd.to_numeric(counted[col], errors="coerce").dropna() if col in counted else pd.Series([])
            if vals.empty:
                return None
            x = float(vals.max() if v == MAX else vals.min())
            out[col] = int(x) if x.is_integer() and col in ("iterations", "batch_size", "depth") else x
        else:
            out[col] = v
    return out


def _values(claim: Claim, col: str, pool: pd.DataFrame) -> list:
    """Sorted values of `col`: those the claim's refs name, and those of the runs in the pool."""
    known = [v for ref in claim.refs for k, v in ref.where if k == col]
    if col == "experiment":
        return list(claim.experiments)
    found = [] if pool.empty or col not in pool else [x for x in pool[col].tolist() if not pd.isna(x)]
    if col == claim.split and claim.split_known_only:
        found = []
    out: list = []
    for v in known + found:
        if isinstance(v, np.generic):
            v = v.item()
        if not any(_same(u, v) for u in out):
            out.append(v)
    return sorted(out, key=lambda v: (not _is_num(v), v if _is_num(v) else str(v)))


def _ref(claim: Claim, row_where: Mapping[str, object]) -> Ref | None:
    for ref in claim.refs:
        if all(k in row_where and _same(row_where[k], v) for k, v in ref.where):
            return ref
    return None


# ------------------------------------------------------------------------------ verdict logic
def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _counted(df: pd.DataFrame) -> pd.DataFrame:
    """Runs that ended: finished with an accuracy, or diverged (the runs a verdict counts)."""
    return df if df.empty else df[~df.index.isin(_unfinished(df).index)]


def _side(label: str, rows: pd.DataFrame) -> Side:
    fin = _finished(rows)
    accs = () if fin.empty else tuple(100 * fin["final_test_acc"].to_numpy(float))
    return Side(label, accs, len(_diverged(rows)))


def _compare(claim: Claim, a: pd.DataFrame, b: pd.DataFrame, scale_sd: SeedSd | None) -> tuple[str, str]:
    """(label, detail) of one comparison of group A against group B (rows of the pool): `judging.compare`; the
    detail names the health flags of the runs it rests on (`judging.flag_note`)."""
    label, detail = compare(_side(claim.a.label, a), _side(claim.b.label, b), better=claim.kind == "better",
                            scale_sd=scale_sd)
    if label == NOT_RUN:
        return label, detail
    return label, detail + flag_note([(claim.a.label, _flags(a)), (claim.b.label, _flags(b))])


def _flags(rows: pd.DataFrame) -> list:
    """The health cell of every run among `rows` that ended (finished or diverged)."""
    counted = _counted(rows)
    return [] if counted.empty else counted[HEALTH_COL].tolist() if HEALTH_COL in counted else [None] * len(counted)


def _run_epochs(rows: pd.DataFrame) -> list[float | None]:
    """Epochs of its training subset each row's run trains, from its config (`judging.epochs`)."""
    return [epochs(r.get("iterations"), r.get("batch_size"), r.get("dataset"), r.get("fraction"))
            for _, r in rows.iterrows()]


def _num(v) -> float | None:
    """A cell as a finite float; None for a missing cell (None or NaN: a column some runs lack) or text."""
    x = float(pd.to_numeric(v, errors="coerce"))
    return x if math.isfinite(x) else None


def _range_runs(rows: pd.DataFrame) -> list[tuple[pd.Series, tuple[str, str]]]:
    """(row, `judging.range_run` outcome) of every range test among `rows` that ended with a stored verdict,
    judged on its curve too when `attach_curves` read it."""
    done = rows if rows.empty else rows[rows["status"].isin(["completed", "diverged"])]
    out = []
    for _, r in ([] if done.empty or LABEL_COL not in done else done.sort_values("run").iterrows()):
        if not isinstance(r.get(LABEL_COL), str):
            continue
        tol = _num(r.get(TOL_COL))
        out.append((r, range_run(r[LABEL_COL], _num(r.get(PEAK_LR_COL)), _num(r.get(MAX_LR_COL)),
                                 _num(r.get(SHARE_COL)), _num(r.get(FROM_LR_COL)), TOLERANCE if tol is None else tol)))
    return out


def _range_case(rows: pd.DataFrame) -> tuple[str, str]:
    """(label, detail) of one range-test experiment from its runs' stored verdicts and, when `attach_curves`
    read them, their curves (`judging.range_run`, `judging.range_case`)."""
    judged = _range_runs(rows)
    label, detail = range_case([o for _, o in judged])
    if not judged:
        return label, detail
    cells = [r.get(HEALTH_COL) for r, _ in judged]
    return label, detail + flag_note([("", cells)])


def _combine(cases: list[tuple[str, str, str]]) -> tuple[str, str]:
    judged = [c for c in cases if c[1] in JUDGED]
    if not judged and not any(c[1] != NOT_RUN for c in cases):
        return NOT_RUN, "no sub-case has results"
    by = {}
    for case, lab, _ in cases:
        by.setdefault(lab, []).append(case)
    detail = "; ".join(f"{lab}: {', '.join(by[lab])}" for lab in VERDICTS if lab in by)
    return combine([c[1] for c in cases]), f"{detail} ({len(judged)} of {len(cases)} sub-cases judged)"


def _fmt_value(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if _is_num(v):
        v = float(v)
        if v != 0 and abs(v) < 1e-2:  # weight decays: 1e-4, not 0.0001
            mantissa, exp = f"{v:e}".split("e")
            return f"{float(mantissa):g}e{int(exp)}"
        return f"{v:g}"
    return str(v)


def _cases(claim: Claim, pool: pd.DataFrame) -> list[dict]:
    """Sub-cases of a better / not_better claim: label, the resolved A and B filters (None when a side cannot
    be resolved) and the filters to display for each side (resolved, or the fixed part of the group)."""
    splits = [None] if claim.split is None else _values(claim, claim.split, pool)
    out = []
    for v in splits:
        sub = pool if v is None else _select(pool, {claim.split: v})
        ra, rb = _resolve(claim.a, sub), _resolve(claim.b, sub)
        if ra is not None and rb is not None and ra == rb:
            ra = rb = None  # "@max" and "@min" fell on the same value: only one value was run
        extra = {} if v is None else {claim.split: v}
        base = dict(claim.where)
        shown = []
        for g, r in ((claim.a, ra), (claim.b, rb)):
            fixed = {k: x for k, x in g.where if x not in (MAX, MIN)}
            shown.append({**base, **extra, **(fixed if r is None else r)})
        out.append({"label": "all" if v is None else f"{claim.split} {_fmt_value(v)}",
                    "a": None if ra is None else {**extra, **ra}, "b": None if rb is None else {**extra, **rb},
                    "show_a": shown[0], "show_b": shown[1]})
    return out


def by_scale(pool: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The rows of `pool` split by scale, in `scales_in` order (paper, mini, smoke, ...)."""
    if pool.empty:
        return []
    labels = scale_labels(pool)
    return [(s, pool[(labels == s).to_numpy()]) for s in scales_in(pool)]


def by_setting(pool: pd.DataFrame, store: pd.DataFrame | None = None) -> list[tuple[str, str, pd.DataFrame]]:
    """(name, scale, rows): `pool` split by scale, then by protocol (`judging.protocol_of`: precision, BN rule,
    protocol version), so runs that computed differently are never pooled or compared. The name is the scale
    alone when the scale's runs in `store` (default: `pool`) share one protocol, else "scale (protocol)": the
    same setting has the same name in every claim."""
    out = []
    for scale, part in by_scale(pool):
        keys = _protocol_keys(part)
        ref = part if store is None else dict(by_scale(store)).get(scale, part)
        named = len(set(_protocol_keys(ref)) | set(keys)) > 1
        for p in sorted(set(keys), key=lambda p: p.sort_key()):
            out.append((f"{scale} ({p.text()})" if named else scale, scale,
                        part[[k == p for k in keys]] if named else part))
    return out


def _protocol_keys(rows: pd.DataFrame) -> list:
    """`protocol_of` each row; a run without a summary (unfinished: its precision is not known yet) takes the
    protocol of the finished runs its config matches, when exactly one does, so it is listed beside them."""
    keys = [protocol_of(r) for _, r in rows.iterrows()]
    known = {k for k in keys if k.precision != "unknown"}
    out = []
    for k in keys:
        same = [p for p in known if (p.bn_stats, p.bn_group, p.version, p.dropout_at)
                == (k.bn_stats, k.bn_group, k.version, k.dropout_at)]
        out.append(same[0] if k.precision == "unknown" and len(same) == 1 else k)
    return out


def _scale_sds(summaries: pd.DataFrame) -> dict[str, SeedSd | None]:
    """The seed sd of every scale, each from that scale's runs of the study (`judging.seed_sd`): runs of
    experiments some claim judges. Checks outside the study (precision_check: a 10-epoch ResNet-20 labelled
    paper scale because it sets its own lengths) say nothing about the noise of that scale's comparisons."""
    judged = {e for c in CLAIMS for e in c.experiments}
    if "experiment" in summaries:
        summaries = summaries[summaries["experiment"].isin(judged)]
    return {s: seed_sd(part, s) for s, part in by_scale(summaries)}


def judge(claim: Claim, summaries: pd.DataFrame) -> Verdict:
    """The verdict on one claim from the runs in `summaries` (pure: reads nothing else). Runs of different
    scales or protocols are never pooled: with more than one setting, each is judged alone (`Verdict.scales`).
    The noise of every comparison uses the seed sd of its scale, measured over the whole of `summaries`."""
    if claim.kind == "out_of_scope":
        return Verdict(NOT_RUN, claim.rule or "out of scope")
    pool = _pool(claim, summaries)
    parts = by_setting(pool, summaries)
    sds = _scale_sds(summaries) if claim.kind in ("better", "not_better") and parts else {}
    if len(parts) > 1:
        per = tuple((name, _judge_pool(claim, p, sds.get(scale))) for name, scale, p in parts)
        return Verdict(combine([v.label for _, v in per]), "; ".join(f"{s}: {v.label} ({v.detail})" for s, v in per),
                       scales=per)
    return _judge_pool(claim, pool, sds.get(parts[0][1]) if parts else None)


def _judge_pool(claim: Claim, pool: pd.DataFrame, scale_sd: SeedSd | None = None) -> Verdict:
    """The verdict from `pool` (the claim's runs, all of one setting); `scale_sd`: the seed sd of its scale."""
    if claim.kind == "qualitative":
        if _counted(pool).empty:
            return Verdict(NOT_RUN, "no finished run")
        return Verdict(NOT_JUDGED, claim.rule or "qualitative claim: see the figure")
    if claim.kind == "range":
        cases = [(f"{claim.split} {e}", *_range_case(_select(pool, {"experiment": e}))) for e in claim.experiments]
        if len(cases) == 1:
            return Verdict(cases[0][1], cases[0][2], tuple(cases))
        return Verdict(*_combine(cases), tuple(cases))
    if claim.kind not in ("better", "not_better"):
        raise ValueError(f"claim {claim.id}: unknown kind {claim.kind!r}")
    cases = []
    for case in _cases(claim, pool):
        ra, rb = case["a"], case["b"]
        if claim.regime is not None:
            side, group = (ra, claim.a) if claim.regime.side == "a" else (rb, claim.b)
            rows = _counted(_select(pool, side)) if side is not None else pool.iloc[0:0]
            gap = regime_gap(group.label, _run_epochs(rows), claim.regime)
            if gap is not None:
                cases.append((case["label"], NOT_TESTABLE, gap))
                continue
        if ra is None or rb is None:
            counted = len(_counted(pool))
            why = (f"fewer than two values of {claim.sweep} run" if claim.sweep is not None and counted
                   else f"no finished run of both {claim.a.label} and {claim.b.label}")
            cases.append((case["label"], NOT_RUN, why))
            continue
        cases.append((case["label"], *_compare(claim, _select(pool, ra), _select(pool, rb), scale_sd)))
    if claim.split is None:
        return Verdict(cases[0][1], cases[0][2], tuple(cases))
    return Verdict(*_combine(cases), tuple(cases))


def judge_all(summaries: pd.DataFrame | None, runs: pd.DataFrame | None = None
              ) -> tuple[pd.DataFrame, list[tuple[Claim, Verdict]]]:
    """(summaries with the range tests' curves attached, the verdict on every claim of `CLAIMS`): what the
    report and README.md's results table (`paper_figures.readme_table`) are both rendered from."""
    summaries = summaries if summaries is not None else pd.DataFrame(columns=["experiment", "status"])
    summaries = attach_estimates(attach_health(attach_curves(summaries, runs), runs), runs)
    return summaries, [(c, judge(c, summaries)) for c in CLAIMS]


def _run_rows(runs: pd.DataFrame | None) -> dict[tuple, pd.DataFrame]:
    if runs is None or runs.empty:
        return {}
    return {k: g.sort_values("iteration") for k, g in runs.groupby(["experiment", "run"], sort=False)}


def _records(curve: pd.DataFrame) -> list[dict]:
    """A run's rows of `load_runs` as superconv.health reads them (NaN as None)."""
    cols = ["iteration", "lr", "train/loss", "train/acc", "test/acc"]
    out = curve[cols].astype(object).where(curve[cols].notna(), None).to_dict("records")
    return out


def attach_health(summaries: pd.DataFrame, runs: pd.DataFrame | None) -> pd.DataFrame:
    """`summaries` with every finished run's health: its flags (HEALTH_COL: those in its summary.json, or, for a
    run stored before summaries had them, computed here from its metrics.csv by superconv.health with the same
    rules), why each was raised (HEALTH_WHY_COL) and where the flags come from (HEALTH_SRC_COL). Reads `runs`
    (`load_runs`) only; writes nothing. Without `runs`, stored flags only."""
    if summaries.empty or "experiment" not in summaries:
        return summaries
    out = summaries.copy()
    if HEALTH_COL not in out:
        out[HEALTH_COL] = None
    out[HEALTH_COL] = out[HEALTH_COL].astype(object)
    out[HEALTH_WHY_COL], out[HEALTH_SRC_COL] = None, None
    out[HEALTH_WHY_COL] = out[HEALTH_WHY_COL].astype(object)
    out[HEALTH_SRC_COL] = out[HEALTH_SRC_COL].astype(object)
    curves = _run_rows(runs)
    for i, r in out.iterrows():
        stored = r.get(HEALTH_COL)
        known = isinstance(stored, str)
        if known:
            out.at[i, HEALTH_SRC_COL] = "from summary.json"
        curve = curves.get((r["experiment"], r["run"]))
        if curve is None or r.get("status") not in ("completed", "diverged"):
            continue
        h = run_health.assess(_records(curve), run_health.num_classes_of(r.get("dataset")) or 10, r["status"])
        if not known:
            out.at[i, HEALTH_COL] = ",".join(h.flags)
            out.at[i, HEALTH_SRC_COL] = "computed from metrics.csv by the report"
        flags = split_flags(out.at[i, HEALTH_COL])
        out.at[i, HEALTH_WHY_COL] = "; ".join(f"{f}: {h.why.get(f, 'stored in summary.json')}" for f in flags)
    return out


def attach_estimates(summaries: pd.DataFrame, runs: pd.DataFrame | None) -> pd.DataFrame:
    """`summaries` with, for every run whose metrics hold an LR estimate (metrics.csv column lr_estimate), where
    it starts, sits at mid-run, ends and peaks (`superconv.lr_estimate.landmarks`; ESTIMATE_PREFIX columns)."""
    if runs is None or runs.empty or summaries.empty or "lr_estimate" not in runs:
        return summaries
    est = runs[runs["lr_estimate"].notna()]
    if est.empty:
        return summaries
    out = summaries.copy()
    keys = ("start", "start_it", "middle", "middle_it", "end", "end_it", "peak", "peak_it")
    for k in keys:
        out[ESTIMATE_PREFIX + k] = np.nan
    curves = {k: g for k, g in est.groupby(["experiment", "run"], sort=False)}
    for i, r in out.iterrows():
        curve = curves.get((r["experiment"], r["run"]))
        lm = None if curve is None else landmarks(curve["iteration"].tolist(), curve["lr_estimate"].tolist())
        for k in keys if lm else ():
            out.loc[i, ESTIMATE_PREFIX + k] = lm[k]
    return out


def attach_curves(summaries: pd.DataFrame, runs: pd.DataFrame | None) -> pd.DataFrame:
    """`summaries` with, for every accuracy-mode range test with a verdict, how much of its LR range its test
    accuracy was high (`SHARE_COL`, `FROM_LR_COL`: `judging.high_share` with the run's own tolerance), read from
    its metrics in `runs` (`load_runs`). A still-rising range test needs them; without `runs` it is judged
    "inconclusive: still rising" whatever its curve."""
    if runs is None or runs.empty or summaries.empty or LABEL_COL not in summaries:
        return summaries
    out = summaries.copy()
    out[SHARE_COL], out[FROM_LR_COL] = np.nan, np.nan
    evals = runs.dropna(subset=["test/acc", "lr"])
    curves = {k: g for k, g in evals.groupby(["experiment", "run"], sort=False)}
    for i, r in out.iterrows():
        curve = curves.get((r["experiment"], r["run"]))
        if not isinstance(r.get(LABEL_COL), str) or curve is None:
            continue
        tol = _num(r.get(TOL_COL))
        curve = curve.sort_values("iteration")
        share, from_lr = high_share(curve["lr"].to_numpy(float), curve["test/acc"].to_numpy(float),
                                    TOLERANCE if tol is None else tol)
        out.loc[i, SHARE_COL], out.loc[i, FROM_LR_COL] = share, from_lr
    return out


# ------------------------------------------------------------------------------ table cells
def _join(values) -> str:
    vals = sorted({_fmt_value(v.item() if isinstance(v, np.generic) else v) for v in values if not pd.isna(v)})
    return "/".join(vals) if vals else "?"


def _iters(values) -> str:
    out = set()
    for v in values:
        if pd.isna(v):
            continue
        v = int(v)
        out.add((v, f"{v // 1000}k" if v >= 1000 and v % 1000 == 0 else (f"{v / 1000:g}k" if v >= 1000 else str(v))))
    return "/".join(s for _, s in sorted(out)) if out else "?"


def _col(df: pd.DataFrame, c: str) -> list:
    return df[c].tolist() if c in df else []


def _epochs_text(df: pd.DataFrame) -> str:
    """ "0.768 epochs" / "0.384-3.84 epochs" from the runs' config (`judging.epochs`); "" when unknown."""
    e = [x for x in _run_epochs(df) if x is not None]
    if not e:
        return ""
    lo, hi = f"{min(e):.3g}", f"{max(e):.3g}"
    return f"{lo} epochs" if lo == hi else f"{lo}-{hi} epochs"


def _protocols_text(df: pd.DataFrame) -> str:
    """The runs' protocols (precision, BatchNorm rule, protocol version: `judging.Protocol.text`)."""
    return "/".join(sorted({protocol_of(r).text() for _, r in df.iterrows()})) or "?"


def _protocol(df: pd.DataFrame) -> str:
    """scale; network, data, batch, iterations (epochs); precision and BN; hardware, from the runs' own columns."""
    net = f"ResNet-{_join(_col(df, 'depth'))} {_join(_col(df, 'variant'))}"
    data = _join(_col(df, "dataset"))
    fr = [f for f in _col(df, "fraction") if not pd.isna(f) and not _same(f, 1.0)]
    if fr:
        data += f" x{_join(fr)}"
    aug = _join(_col(df, "augment"))
    ep = _epochs_text(df)
    return (f"{_join(_col(df, 'scale'))}; {net}, {data} (aug {aug}), batch {_join(_col(df, 'batch_size'))}, "
            f"{_iters(_col(df, 'iterations'))} it{f' = {ep}' if ep else ''}; {_protocols_text(df)}; "
            f"{_join(_col(df, 'device'))}")


def _ours(rows: pd.DataFrame, *, range_test: bool = False, metric: str | None = None) -> str:
    """The "ours" cell: `_result` (or, for a claim about a run metric, `_estimates`), then the scale and protocol
    of the runs that ended (`_protocol`)."""
    counted = _counted(rows)
    head = _estimates(rows) if metric == "lr_estimate" else _result(rows, range_test=range_test)
    return head + ("" if counted.empty else f"; {_protocol(counted)}")


def _estimates(rows: pd.DataFrame) -> str:
    """Each run's LR estimate at its start, middle and end, and its peak (`attach_estimates`), then the final
    accuracy as `_result` gives it; NOT_RUN when no run ended."""
    counted = _counted(rows)
    if counted.empty:
        return _result(rows)
    parts = []
    for _, r in counted.sort_values("run").iterrows():
        name = "" if len(counted) == 1 else f"{r['run']}: "
        if _num(r.get(ESTIMATE_PREFIX + "end")) is None:
            parts.append(f"{name}no lr_estimate values (train.lr_estimate_every off)")
            continue
        e = {k: _num(r.get(ESTIMATE_PREFIX + k)) for k in ("start", "middle", "end", "peak")}
        it = {k: int(_num(r.get(ESTIMATE_PREFIX + k + "_it"))) for k in ("start", "middle", "end", "peak")}
        parts.append(f"{name}start {e['start']:.3g} (it {it['start']}), middle {e['middle']:.3g} (it {it['middle']}),"
                     f" end {e['end']:.3g} (it {it['end']}), peak {e['peak']:.3g} (it {it['peak']})")
    return "LR estimate: " + "; ".join(parts) + f"; final accuracy {_result(rows)}"


def _missing_cell(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _result(rows: pd.DataFrame, *, range_test: bool = False) -> str:
    """What a group's runs gave: mean ± sd of the finished runs' final accuracy (n), diverged and unfinished runs
    counted beside it; for range tests each run's stored verdict and peak. NOT_RUN when no run ended."""
    fin, div, unf = _finished(rows), _diverged(rows), _unfinished(rows)
    tail = f"; {len(unf)} unfinished, not counted" if len(unf) else ""
    if fin.empty and div.empty:
        return NOT_RUN + (f" ({len(unf)} unfinished)" if len(unf) else "")
    counted = pd.concat([fin, div])
    flagged = _flag_text(counted)
    if range_test:
        parts = []
        for _, r in counted.sort_values("run").iterrows():
            lab = r.get(LABEL_COL)
            if not isinstance(lab, str):
                parts.append(f"no verdict ({r['status']})")
                continue
            peak, plr = r.get(PEAK_COL), r.get(PEAK_LR_COL)
            s = lab
            if peak is not None and not pd.isna(peak):
                s += f", peak {_pct(float(peak))}%" + (f" at LR {float(plr):.3g}" if plr is not None and not pd.isna(plr) else "")
            parts.append(s)
        head = "; ".join(parts) + f" (n={len(counted)})" + flagged
        flagged = ""
    else:
        v = 100 * fin["final_test_acc"].to_numpy(float)
        if len(v) >= 2:
            head = f"{v.mean():.2f} ± {v.std(ddof=1):.2f}% (n={len(v)})"
        elif len(v) == 1:
            head = f"{v[0]:.2f}% (n=1)"
        else:
            head = "no finished run"
        if len(div):
            head += f", {len(div)} diverged"
    return head + flagged + tail


def _flag_text(counted: pd.DataFrame) -> str:
    """ " [flagged: still_improving]" (one run) / " [flagged: test_lags_train 1 of 2]": the health flags of the runs
    behind a number (superconv.health), diverged left out (the cell counts diverged runs already)."""
    cells = _flags(counted)
    counts: dict[str, int] = {}
    for c in cells:
        for f in split_flags(c):
            if f != "diverged":
                counts[f] = counts.get(f, 0) + 1
    if not counts:
        return ""
    if len(cells) == 1:
        return f" [flagged: {', '.join(sorted(counts))}]"
    return f" [flagged: {', '.join(f'{f} {k} of {len(cells)}' for f, k in sorted(counts.items()))}]"


def _author(reference: Mapping[str, CaffeLog] | None, stem: str | None, *, peak: bool = False) -> str:
    if reference is None or stem is None or stem not in reference:
        return "-"
    log = reference[stem]
    final = log.final_test_acc
    if final is None:
        return "-"
    out = f"{_pct(final)} ({stem})"
    if peak and log.peak_test_acc is not None:
        out = f"{_pct(final)}, peak {_pct(log.peak_test_acc)} ({stem})"
    return out


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(claim: Claim, verdict: Verdict, pool: pd.DataFrame, reference) -> list[str]:
    lines = ["| case | paper | author re-run | ours | verdict |", "|---|---|---|---|---|"]
    is_range = claim.kind == "range" or any(e.startswith("range_") for e in claim.experiments)

    def row(label, where, verdict_cell):
        ref = _ref(claim, where)
        cells = [label, ref.paper if ref else "-",
                 _author(reference, ref.author if ref else None, peak=claim.kind in ("range", "qualitative")),
                 _ours(_select(pool, where), range_test=is_range, metric=claim.metric), verdict_cell]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")

    by_case = {c[0]: c for c in verdict.cases}
    if claim.kind == "out_of_scope":
        lines.append(f"| {_cell(claim.artifact)} | {_cell(claim.paper)} | - | {NOT_RUN} | {NOT_RUN} (out of scope) |")
    elif claim.kind == "range" or (claim.kind == "qualitative" and claim.split):
        for e in claim.experiments:
            c = by_case.get(f"{claim.split} {e}")
            row(e, {"experiment": e}, f"{c[1]}: {c[2]}" if c else verdict.label)
    elif claim.kind == "qualitative":
        row(claim.artifact, dict(claim.where), verdict.label)
    elif claim.sweep is not None:
        marks = {}
        for case in _cases(claim, pool):
            if case["a"] is not None:
                marks[_fmt_value(case["a"][claim.sweep])] = f"A ({claim.a.label})"
                marks[_fmt_value(case["b"][claim.sweep])] = f"B ({claim.b.label})"
        for v in _values(claim, claim.sweep, pool):
            row(f"{claim.sweep} {_fmt_value(v)}", {**dict(claim.where), claim.sweep: v}, marks.get(_fmt_value(v), ""))
    else:
        for case in _cases(claim, pool):
            c = by_case[case["label"]]
            suffix = "" if claim.split is None else f", {case['label']}"
            row(claim.a.label + suffix, case["show_a"], f"{c[1]}: {c[2]}" if claim.split else "")
            row(claim.b.label + suffix, case["show_b"], "")
    lines.append(f"| **verdict** | | | | **{verdict.label}**: {_cell(verdict.detail)} |")
    return lines


# ------------------------------------------------------------------------------ the report
def decision_rule(claim: Claim) -> str:
    """The claim's decision criterion in one sentence, from the same thresholds `judge` applies (so it is
    written down before any run exists and cannot drift from the judging)."""
    if claim.kind == "out_of_scope":
        return "none: out of scope"
    if claim.kind == "qualitative":
        return f"not judged automatically ({claim.rule or 'read the figure'})"
    if claim.kind == "range":
        return (f"each range test's own verdict; reproduced if its >= {MIN_N} runs stay high up to the largest LR "
                f"(a still-rising run counts only if high over the top {HIGH_SHARE:.0%} of the LR range), not "
                "reproduced if they collapse")
    a, b = claim.a.label, claim.b.label
    d = f"d = mean({a}) - mean({b}) of the final test accuracy"
    rule = (f"{d}: reproduced if d > noise, partly if 0 < d <= noise, not reproduced if d <= 0"
            if claim.kind == "better" else f"{d}: reproduced if d <= noise, not reproduced if d > noise")
    rule += f"; needs n >= {MIN_N} runs per side (else indicative); noise = the larger of the pooled and the scale's seed sd"
    if claim.split:
        rule += f"; judged per {claim.split}"
    if claim.regime is not None:
        side = a if claim.regime.side == "a" else b
        rule += f"; testable only where the {side} runs train >= {claim.regime.min_epochs:g} epochs of their training set"
    return rule


def _bullets(items: Sequence[str]) -> str:
    """Markdown bullets, each wrapped at 110 columns (the rules are written as one line per bullet so that the
    thresholds filled into them never leave ragged lines). Never breaks around an operator: a continuation
    line starting with ">=" or "- " would turn into a quote or a nested bullet."""
    glue = "\x00"

    def wrap(text: str) -> str:
        text = " ".join(text.split())
        for op in (">=", "<=", ">", "-", "+", "x", "/"):
            text = text.replace(f" {op} ", f"{glue}{op}{glue}")
        return textwrap.fill(text, 110, initial_indent="- ", subsequent_indent="  ").replace(glue, " ")

    return "\n".join(wrap(i) for i in items) + "\n"


def _rules(claims: Sequence[Claim]) -> str:
    """The verdict rules, in words, with the thresholds of `paper_figures.judging` filled in."""
    budget = ", ".join(sorted({c.artifact for c in claims if c.regime is BUDGET}, key=str))
    sizes = " and ".join(f"{k} {v:,}" for k, v in sorted(TRAIN_IMAGES.items()))
    return _bullets([
        """**Finished runs only.** A run counts as an accuracy number only when it finished (status `completed`, a
        DONE file and a final test accuracy). Unfinished runs are never counted (the cell says how many exist). A
        **diverged** run is a result but not an accuracy: it is shown beside the mean ("1 diverged"); a group whose
        runs all diverged counts as the worse side of its comparison; a diverged run on the side the claim favours
        caps "reproduced" at "partly".""",
        """**Ours** = mean ± sd of the final test accuracy over the finished runs (seeds) of a group, in %, n runs,
        then the scale, the protocol (network, data, batch, iterations and the epochs they make, precision,
        BatchNorm rule) and the hardware, read from the runs' config.yaml and summary.json.""",
        f"""**Evidence.** "reproduced" and "not reproduced" need at least {MIN_N} runs that ended (finished, or
        diverged) on each side of a comparison, and at least {MIN_N} judged runs of a range test. With fewer the
        verdict is **{INDICATIVE}**: the cell still says which way the difference went and whether it exceeds the
        noise, but one run is not evidence.""",
        f"""**Noise.** The noise of a comparison is the larger of (a) the pooled sd of its two groups (over those
        with n >= 2) and (b) the seed sd of its scale: the finished runs of that scale that differ only in their
        seed (same factors, job and protocol; the same configuration and seed run by several experiments counts
        once) form groups, and every group with >= 2 seeds contributes, pooled as sqrt(sum (n_i - 1) s_i^2 / sum
        (n_i - 1)). Each scale's seed sd is listed under Scales. No noise measurable (n=1 and no group of seeds at
        the scale): **{INDICATIVE}**.""",
        """**"A beats B" claims** (CLR vs PC-LR, and the sweeps judged as one value against another): d = mean(A) -
        mean(B) in percentage points. **reproduced** if d > noise; **partly** if 0 < d <= noise (right direction,
        within the noise); **not reproduced** if d <= 0 (opposite direction or no difference; the cell says whether
        beyond the noise); **not run yet** if either group has no finished or diverged run. "@max"/"@min" sides
        (largest vs smallest batch, max LR, run length) take the largest / smallest value actually run.""",
        """**"A does not beat B" claims** (Adam): reproduced if d <= noise, not reproduced if d > noise.""",
        f"""**Regimes.** "CLR with 1/8 of PC-LR's budget beats PC-LR" ({budget}) is only testable with CLR runs of
        at least {MIN_CLR_EPOCHS:g} epochs of their own training set (iterations x batch / (training images x
        fraction); {sizes} training images). Where a setting's CLR runs are shorter the claim is
        **{NOT_TESTABLE}**, with the reason; the runs are still shown.""",
        """**Claims judged per sub-case** (training-set fraction, depth, optimizer, range-test length): each
        sub-case is judged alone; the claim is **reproduced** / **not reproduced** if every judged sub-case is,
        **partly** if they differ; with no judged sub-case it says what the sub-cases say (indicative, then
        inconclusive, not testable, not run yet); sub-cases without results are listed as not run yet.""",
        f"""**Range tests** ("accuracy remains consistently high"): each run's own verdict
        (`superconv.range_analysis.verdict`, stored in its summary): `stays_high` counts as staying high,
        `collapses` or `diverged` as not. A `stays_high` run whose highest accuracy is at the last LR tested is
        **still rising**: nothing says what a larger LR would do. It counts as staying high only if its test
        accuracy (the verdict's running median) was at or above (1 - tolerance) x its peak (the verdict's
        tolerance, 20% by default) at every evaluation over at least the top {HIGH_SHARE:.0%} of the tested LR
        range, counted down from the largest LR; otherwise the case is **{STILL_RISING}**. **reproduced** if the
        runs stay high, **not reproduced** if they collapse, **partly** when runs disagree, **{INCONCLUSIVE}** if
        `never_learns` (the network never learned, so the test says nothing), **not run yet** if no accuracy-mode
        range test with a verdict exists.""",
        """**Qualitative claims** (curve shapes, loss curves, the Fig 5 LR estimate) are **not judged
        automatically**: our numbers are shown (for Fig 5 each run's estimate at its start, middle, end and peak)
        and the figure is named; read it. Out-of-scope claims say **not run yet**.""",
        _health_rule(),
        """The paper column is the number the paper printed; the author re-run column is the final test accuracy
        of the author's own Caffe log (`Results/` of the official repository), read from the log, "-" without
        one.""",
    ])


def _health_rule() -> str:
    h = run_health
    return (f"""**Run health** (`superconv.health`, decided from each run's metrics.csv; stored in summary.json,
        computed here with the same rules for runs stored before it existed; C = classes). `test_lags_train`: an evaluation
        lags when its test accuracy <= 1/C + {h.CHANCE_MARGIN:g} while the training accuracy around it (mean over the
        rows since the previous evaluation, at least {h.SMOOTH_ROWS}) is >= test + {h.LAG_GAP:g}; flagged when the
        final evaluation lags or an unbroken stretch of >= {h.LAG_MIN_EVALS} lagging evaluations holds >=
        {h.LAG_MIN_SHARE:.0%} of them (BatchNorm running statistics lagging the weights). `never_learns`: the
        running mean of the training loss over {h.SMOOTH_ROWS} rows never falls below ln C - {h.NEVER_LEARNS_MARGIN:g}.
        `diverged`: the run stopped at a non-finite loss. `still_improving`: over the evaluations in the last
        {h.STILL_TAIL:.0%} of the run while the LR stays within x{h.STEADY_LR_RATIO:g} of its final value without
        rising (>= {h.STILL_MIN_EVALS} of them), the least-squares line of the test accuracy rises >= {h.STILL_RISE:g}
        per {h.STILL_TAIL:.0%} of the run; not judged while the LR still moves at the end (CLR's anneal, range
        tests). A flagged run still counts as a result: its cell names the flags next to its number ("[flagged:
        ...]", diverged runs are counted there already) and a verdict resting on flagged runs says so in its
        detail ("rests on flagged runs").""")


def _health_lines(summaries: pd.DataFrame) -> list[str]:
    """The "Run health" section: every flagged run with why, and how many runs were checked and how."""
    if summaries.empty or HEALTH_COL not in summaries:
        return ["No runs yet."]
    checked = summaries[summaries[HEALTH_COL].map(lambda c: isinstance(c, str))]
    if checked.empty:
        return ["No finished run to check."]
    src = checked[HEALTH_SRC_COL].value_counts().to_dict() if HEALTH_SRC_COL in checked else {}
    head = (f"{len(checked)} finished run{'s' if len(checked) != 1 else ''} checked ("
            + ", ".join(f"{n} {k}" for k, n in sorted(src.items())) + "; the rules are under Verdict rules).")
    flagged = checked[checked[HEALTH_COL].map(lambda c: bool(split_flags(c)))]
    if flagged.empty:
        return [head + " No run is flagged."]
    out = [head + " Flagged:", ""]
    for _, r in flagged.sort_values(["experiment", "run"]).iterrows():
        why = r.get(HEALTH_WHY_COL)
        out.append(f"- `{r['experiment']}/{r['run']}`: **{', '.join(split_flags(r[HEALTH_COL]))}**"
                   + (f" ({why})" if isinstance(why, str) and why else ""))
    return out


CAVEATS = f"""\
- Our CIFAR-10 is a development copy rebuilt from JPEG-compressed images, not the official binary files; the
  compression costs a few points of test accuracy, so compare directions and gaps, not absolute values.
- Only `paper` scale runs the paper's iteration counts and batch sizes; the network, batch, lengths and epochs
  of every scale are listed under Scales, read from its runs. Smaller scales are about the direction of an
  effect, not the paper's absolute numbers.
- The paper used Caffe on 8 GPUs with a total batch of 1000; hardware, batch and BN momentum change the
  outcome (docs/PAPER.md §3: independent reproductions disagree). The hardware of each run is in its cell.
- Runs of protocol v1 (nn.BatchNorm2d statistics over the whole batch, PyTorch's un-corrected running
  averages) do not compute BatchNorm as the author's Caffe did (statistics per GPU, bias-corrected running
  averages); every cell names its runs' protocol and precision, and no verdict mixes protocols.
- A comparison with fewer than {MIN_N} runs on a side is only indicative; more seeds turn it into a verdict.
"""


SCALE_RULE = """\
- **Scales and protocols are judged separately.** Runs of different scales (their network, lengths and
  hardware are under Scales) or, within a scale, of different protocols (precision, BatchNorm statistics and
  running averages, protocol version) are never averaged together or compared with each other: a claim whose
  runs span several such settings gets one table and one verdict per setting, and the summary lists the
  verdict of each.
"""


def _scale_lines(summaries: pd.DataFrame) -> list[str]:
    """One paragraph per scale of the store, every number read from its runs: runs, hardware, networks, per
    schedule the batch sizes, iterations and epochs, the protocols, and the seed sd the verdicts use."""
    if summaries.empty:
        return ["No runs yet."]
    out = []
    sds = _scale_sds(summaries)
    for scale, part in by_scale(summaries):
        nets = ", ".join(f"ResNet-{_join([d])} {_join(_col(g, 'variant'))}"
                         for d, g in part.groupby("depth", sort=True)) if "depth" in part else "?"
        sched = []
        for name, g in part.groupby(part["schedule"].astype(str) if "schedule" in part else [""] * len(part),
                                    sort=True):
            ep = _epochs_text(g)
            sched.append(f"{name}: batch {_join(_col(g, 'batch_size'))}, {_iters(_col(g, 'iterations'))} it"
                         + (f" = {ep}" if ep else " (epochs unknown: no known training-set size)"))
        protos = {}
        for _, r in part.iterrows():
            t = protocol_of(r).text()
            protos[t] = protos.get(t, 0) + 1
        sd = sds.get(scale)
        sd_text = (f"{sd.sd:.2f} pp, from {sd.groups} configuration{'s' if sd.groups != 1 else ''} run with >= 2 "
                   f"seeds ({sd.df} degrees of freedom)" if sd is not None
                   else "not measurable (no configuration finished with 2 seeds)")
        out.append(f"- **{scale}**: {len(part)} run{'s' if len(part) != 1 else ''} on {_join(_col(part, 'device'))}; "
                   f"{nets}; {'; '.join(sched)}. Protocols: "
                   + ", ".join(f"{t} ({n} run{'s' if n != 1 else ''})" for t, n in sorted(protos.items()))
                   + f". Seed sd: {sd_text}.")
    return out


def _summary_cell(claim: Claim, v: Verdict, summaries: pd.DataFrame, several: bool) -> str:
    """The summary's verdict cell: the verdict of each setting ("paper: not run yet; mini: reproduced") when the
    claim's runs span several; "mini: reproduced" when the store holds several settings but this claim's runs
    one; else the bare label."""
    if v.scales:
        return "; ".join(f"{s}: {sv.label}" for s, sv in v.scales)
    if several and claim.kind != "out_of_scope":
        names = [n for n, _, _ in by_setting(_pool(claim, summaries), summaries)]
        if len(names) == 1:
            return f"{names[0]}: {v.label}"
    return v.label


def _rel(fig: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(Path(fig).resolve(), Path(base).resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return Path(fig).as_posix()


def render_report(summaries: pd.DataFrame, reference: Mapping[str, CaffeLog] | None, figures: Sequence[Path],
                  out_dir: Path, command: str, runs: pd.DataFrame | None = None) -> str:
    """The report's text (pure); `build_report` writes it. `runs` (`load_runs`, optional): the metrics, from
    which a still-rising range test's curve is read (`attach_curves`)."""
    summaries, verdicts = judge_all(summaries, runs)
    store_scales = scales_in(summaries)
    several = len(by_setting(summaries)) > 1  # then every summary verdict names its setting
    out = ["# Reproduction report: Super-Convergence (Smith & Topin, arXiv 1708.07120)", "",
           "Generated by `paper_figures/report.py` from the results store and the author's logs; do not edit by "
           "hand. Regenerate with:", "", "```", command, "```", ""]
    n = len(summaries)
    st = summaries["status"].value_counts().to_dict() if n and "status" in summaries else {}
    scale_counts = scale_labels(summaries).value_counts().to_dict()
    out.append(f"Runs read: {n} ({', '.join(f'{k} {st[k]}' for k in sorted(st)) or 'none'}). "
               + (f"Scales: {', '.join(f'{s} {scale_counts[s]}' for s in store_scales)}, judged separately. "
                  if len(store_scales) > 1 else "")
               + (f"Author logs read: {len(reference)}." if reference is not None
                  else "No reference folder given: the author re-run column shows \"-\"."))
    out += ["", "## Summary", "", "| claim | paper artifact | verdict |", "|---|---|---|"]
    out += [f"| [{c.id}](#{c.id}) | {_cell(c.artifact)} | {_summary_cell(c, v, summaries, several)} |"
            for c, v in verdicts]
    out += ["", "## Scales", "", "What each scale ran, read from its runs' config.yaml and summary.json (epochs = "
            "iterations x batch / training images of the subset), and the seed sd its comparisons use as noise:", ""]
    out += _scale_lines(summaries)
    out += ["", "## Verdict rules", "", _rules(CLAIMS).rstrip() + ("\n" + SCALE_RULE.rstrip() if several else ""),
            "", "## Claims", ""]
    for claim, v in verdicts:
        pool = _pool(claim, summaries)
        out += [f"### {claim.id}", "", f"**{claim.artifact}**: {claim.text}. Paper: {claim.paper}."]
        extra = []
        if claim.experiments:
            extra.append("experiments " + ", ".join(f"`{e}`" for e in claim.experiments))
        if claim.where:
            extra.append("runs with " + ", ".join(f"{k} = {_fmt_value(val)}" for k, val in claim.where))
        if claim.a is not None:
            extra.append(f"A = {claim.a.label}, B = {claim.b.label}")
        if claim.figure:
            extra.append(f"figure `{claim.figure}`")
        if v.scales:
            extra.append(f"runs in {len(v.scales)} settings ({'; '.join(s for s, _ in v.scales)}), each judged on "
                         "its own runs: never pooled or compared across scales or protocols")
        if extra:
            out += ["", "Ours: " + "; ".join(extra) + "."]
        out += ["", f"Decision rule (fixed before the runs): {decision_rule(claim)}."]
        if not v.scales:
            out += [""] + _table(claim, v, pool, reference) + [""]
            continue
        out.append("")
        for (name, sv), (_, scale, part) in zip(v.scales, by_setting(pool, summaries)):
            title = f"{scale} scale" + name[len(scale):]
            out += [f"#### {claim.id} at {title}", ""] + _table(claim, sv, part, reference) + [""]
    known = {e for c in CLAIMS for e in c.experiments}
    others = sorted(set(summaries["experiment"].dropna().astype(str)) - known) if n and "experiment" in summaries else []
    if others:
        counts = summaries["experiment"].value_counts().to_dict()
        out += ["Results that no claim judges (see their figures): "
                + ", ".join(f"`{e}` ({counts[e]} run{'s' if counts[e] != 1 else ''})" for e in others) + ".", ""]
    out += ["## Run health", ""] + _health_lines(summaries) + ["", "## Figures", ""]
    pngs = sorted({Path(f) for f in figures if Path(f).suffix.lower() == ".png"}, key=lambda p: _rel(p, out_dir))
    if not pngs:
        out += ["No figures were given.", ""]
    for f in pngs:
        rel = _rel(f, out_dir)
        out += [f"**{f.stem}**", "", f"![{f.stem}]({rel})", ""]
    out += ["## Caveats", "", CAVEATS.rstrip(), ""]
    return "\n".join(out)


def build_report(summaries: pd.DataFrame, reference: dict[str, CaffeLog] | None, figures: list[Path],
                 out_path: Path, command: str, runs: pd.DataFrame | None = None) -> str:
    """Write the report to `out_path` (only when its text changed, so the mtime stays); return the text."""
    out_path = Path(out_path)
    text = render_report(summaries, reference, figures, out_path.parent, command, runs)
    write_if_changed(out_path, text.encode("utf-8"))
    return text
