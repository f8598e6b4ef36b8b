"""The reproduction report: for every claim of the paper, its number, the author's re-run, ours, a verdict.

    python -m paper_figures.report results --reference ../shared/reference/author_logs \
        --figures paper_figures/figures --out paper_figures/REPORT.md

`build_report(summaries, reference, figures, out_path, command)` writes `paper_figures/REPORT.md` from
`paper_figures.load.load_summaries(results)` alone (nothing is trained, nothing typed in): one table per
claim of docs/PAPER.md §2 (`CLAIMS`), with the verdict decided by `judge(claim, summaries)`.

Why it is written the way it is:
- Every number in the report comes from a results summary or an author log: the "author re-run"
  column is `reference[stem].final_test_acc`, never a typed-in value; without a reference folder it
  shows "-". The paper column is the only text typed in (it is what the paper printed).
- Only runs with status "completed" (and a final accuracy) are accuracy numbers. A diverged run is a
  result too, but a failure, not an accuracy: it is counted and shown beside the mean ("1 diverged"),
  a group whose runs all diverged loses its comparison, and a diverged run on the side the claim
  favours caps the verdict at "partly". Unfinished runs (no DONE) never count; the cell says they exist.
- Runs of different scales (`paper`: ResNet-56, the paper's lengths, a GPU; `mini`: ResNet-20, a few
  hundred iterations) are never pooled: `judge` splits a claim's runs by scale and judges each scale on its
  own (`Verdict.scales`); the report then shows one table and one verdict per scale, and the summary the
  verdict of each scale ("paper: not run yet; mini: reproduced"). With one scale the report is unchanged.
- The report is deterministic (no timestamps, everything sorted, fixed number formats) and rewritten
  only when its text changed, so `make figures` leaves it byte-identical and its mtime unchanged.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .caffe_log import CaffeLog
from .load import scale_labels, scales_in
from .style import _write_if_changed

__all__ = ["Claim", "Group", "Ref", "Verdict", "CLAIMS", "VERDICTS", "NOISE_PP", "judge", "by_scale", "build_report",
           "render_report", "main"]

NOISE_PP = 0.5  # percentage points: the noise floor when a group has fewer than 2 finished runs
REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_RUN = "reproduced", "partly", "not reproduced", "not run yet"
INCONCLUSIVE, NOT_JUDGED = "inconclusive", "not judged automatically"
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_RUN, INCONCLUSIVE, NOT_JUDGED)
KINDS = ("better", "not_better", "range", "qualitative", "out_of_scope")
RANGE_OK, RANGE_BAD, RANGE_NONE = ("stays_high",), ("collapses", "diverged"), ("never_learns",)
LABEL_COL, PEAK_COL, PEAK_LR_COL = "range_test/verdict/label", "range_test/verdict/peak_acc", "range_test/verdict/peak_lr"

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


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict. When its runs span several scales, `scales` holds the verdict of each scale, judged
    on that scale's runs alone, and `label` / `detail` only sum those up (label: combined like sub-cases;
    detail: "scale: label (detail)" per scale); `cases` is then empty. The report shows the per-scale ones."""

    label: str  # one of VERDICTS
    detail: str
    cases: tuple[tuple[str, str, str], ...] = ()  # (sub-case, label, detail) for split / range claims
    scales: tuple[tuple[str, "Verdict"], ...] = ()  # (scale, verdict) when the runs span several scales


CLR, PC = _w(schedule="clr"), _w(schedule="multistep")
MAX, MIN = "@max", "@min"

CLAIMS: tuple[Claim, ...] = (
    Claim("fig1a_clr_vs_pclr", "Fig 1a", "CLR 0.1-3 for 10k iterations beats PC-LR 0.35 for 80k iterations",
          "92.4 vs 91.2", "better", ("fig1a",), a=Group("CLR", CLR), b=Group("PC-LR", PC),
          refs=(Ref(CLR, "92.4", "clr3SS5kFig1a"), Ref(PC, "91.2", "lr35Fig1a")), figure="fig1a_clr_vs_pclr"),
    Claim("fig1a_curve", "Fig 1a", "CLR test accuracy stays ~65-80% while the LR is high, then rises to the "
          "end: 85.6 @9k, 90.5 @9.5k, 92.4 @10k", "65-80% at high LR; 85.6 / 90.5 / 92.4", "qualitative",
          ("fig1a",), where=CLR, refs=(Ref(CLR, "92.4 @10k", "clr3SS5kFig1a"),), figure="fig1a_clr_vs_pclr",
          rule="curve shape: compare the CLR curve with the author's in the figure"),
    Claim("table1_fraction", "Table 1 / Fig 6a", "CLR beats PC-LR on reduced training sets (40k/30k/20k/10k "
          "images = fraction 0.8/0.6/0.4/0.2); PC-LR 'has difficulties'",
          "91.1/89.6/87.9/80.6 vs 89.1/85.7/82.7/71.4", "better", ("fig6a_fraction",),
          a=Group("CLR", CLR), b=Group("PC-LR", PC), split="fraction",
          refs=tuple(Ref(_w(schedule=s, fraction=f), p, f"{stem}Tr{k}kTab1")
                     for f, k, pc, pp in ((0.8, 40, "91.1", "89.1"), (0.6, 30, "89.6", "85.7"),
                                          (0.4, 20, "87.9", "82.7"), (0.2, 10, "80.6", "71.4"))
                     for s, p, stem in (("clr", pc, "clr3SS5k"), ("multistep", pp, "lr35"))),
          figure="sweep_fraction"),
    Claim("table1_maxlr", "Table 1", "The cycle's maximum LR can be large: the largest max LR tested (paper "
          "3.5) does at least as well as the smallest (paper 1.0)", "3.5/3/2.5/2/1.5/1: 92.1/92.4/92.3/91.7/90.9/91.3",
          "better", ("table1_maxlr",), where=CLR, a=Group("largest max LR", _w(max_lr=MAX)),
          b=Group("smallest max LR", _w(max_lr=MIN)), sweep="max_lr",
          refs=(Ref(_w(max_lr=3.5), "92.1"), Ref(_w(max_lr=3.0), "92.4", "clr3SS5kFig1a"), Ref(_w(max_lr=2.5), "92.3"),
                Ref(_w(max_lr=2.0), "91.7"), Ref(_w(max_lr=1.5), "90.9"), Ref(_w(max_lr=1.0), "91.3")),
          figure="table1_maxlr"),
    Claim("table1_stepsize", "Table 1 / Fig 1b", "Longer cycles end higher, short ones still train: the longest "
          "run (stepsize 10k = 20k it) beats the shortest (stepsize 1k = 2k it)",
          "stepsize 10k/5k/4k/3k/2k/1k: 92.7/92.4/91.7/92.1/91.1/89.7", "better", ("fig1b_stepsize",),
          where=CLR, a=Group("longest run", _w(iterations=MAX)), b=Group("shortest run", _w(iterations=MIN)),
          sweep="iterations",
          refs=(Ref(_w(iterations=20000), "92.7"), Ref(_w(iterations=10000), "92.4", "clr3SS5kFig1a"),
                Ref(_w(iterations=8000), "91.7"), Ref(_w(iterations=6000), "92.1"), Ref(_w(iterations=4000), "91.1"),
                Ref(_w(iterations=2000), "89.7")), figure="fig1b_stepsize"),
    Claim("fig2b_range_test", "Fig 2b", "LR range test 0 -> 3 (5k/20k/100k it): test accuracy 'remains "
          "consistently high' up to LR 3", "~70-80% over LR 0.3-3; peaks 81.6/83.1/86.5", "range",
          ("range_fig2b_5k", "range_fig2b_20k", "range_fig2b_100k"), split="experiment",
          refs=(Ref(_w(experiment="range_fig2b_5k"), "stays high, peak 81.6", "range3Iter5kFig2b"),
                Ref(_w(experiment="range_fig2b_20k"), "stays high, peak 83.1", "range3Iter20kFig2b"),
                Ref(_w(experiment="range_fig2b_100k"), "stays high, peak 86.5", "range3Iter100kFig2b")),
          figure="fig2b_range_test"),
    Claim("fig4_range_loss", "Fig 4", "In range tests (0 -> 2, ResNet-20/-110) the training loss rises while "
          "the test loss falls for LR ~0.2-2", "qualitative", "qualitative",
          ("range_fig4b_resnet20", "range_fig4b_resnet110"), split="experiment",
          refs=(Ref(_w(experiment="range_fig4b_resnet20"), "qualitative", "range2Res20Fig4b"),
                Ref(_w(experiment="range_fig4b_resnet110"), "qualitative", "range2Res110Fig4b")),
          figure="fig4_range_depth", rule="loss curves: read the figure"),
    Claim("fig5_hessian_free", "Fig 5", "A Hessian-free estimate of the optimal LR is 2-4 early in training and "
          "stays high under CLR", "2-4 early; stays high", "out_of_scope",
          rule="out of scope: this project implements no Hessian-free LR estimate"),
    Claim("fig6b_depth", "Fig 6b", "CLR beats PC-LR for ResNet-20 and ResNet-110 too",
          "ResNet-20 90.4 vs 88.6; ResNet-110 92.1 vs 91.0", "better", ("fig6b_depth",),
          a=Group("CLR", CLR), b=Group("PC-LR", PC), split="depth",
          refs=(Ref(_w(schedule="clr", depth=20), "90.4", "clr3SS5kRes20Tab1"),
                Ref(_w(schedule="multistep", depth=20), "88.6", "lr35Res20Fig6b"),
                Ref(_w(schedule="clr", depth=110), "92.1", "clr3SS5kRes110Tab1"),
                Ref(_w(schedule="multistep", depth=110), "91.0", "lr35Res110Fig6b")), figure="fig6b_depth"),
    Claim("fig7a_cifar100_range", "Fig 7a", "CIFAR-100 LR range test 0 -> 3: accuracy stays high",
          "stays high", "range", ("range_fig7a_cifar100",), split="experiment",
          refs=(Ref(_w(experiment="range_fig7a_cifar100"), "stays high", "range3Cifar100kFig8"),),
          figure="fig7a_range_cifar100"),
    Claim("fig7b_cifar100", "Fig 7b", "CIFAR-100: CLR beats PC-LR", "68.6 vs 59.8", "better", ("fig7b_cifar100",),
          a=Group("CLR", CLR), b=Group("PC-LR", PC),
          refs=(Ref(CLR, "68.6", "clr3SS5kCifar100Fig8"), Ref(PC, "59.8", "lr35Cifar100Fig8")),
          figure="fig7b_cifar100"),
    Claim("fig8_nesterov", "Fig 8", "With Nesterov momentum, CLR (10k it) beats PC-LR (80k it)", "92.1 vs 90.9",
          "better", ("fig8b_optimizers",), where=_w(optimizer="sgd", nesterov=True),
          a=Group("CLR + Nesterov", CLR), b=Group("PC-LR + Nesterov", PC),
          refs=(Ref(CLR, "92.1", "clr3SS5kNestFig9"), Ref(PC, "90.9", "lr35NestFig9")), figure="fig8b_optimizers"),
    Claim("fig8_adaptive", "Fig 8", "Super-convergence with AdaDelta and AdaGrad: CLR beats PC-LR",
          "SC (CLR) vs no SC (PC-LR)", "better", ("fig8b_optimizers",), a=Group("CLR", CLR), b=Group("PC-LR", PC),
          split="optimizer", split_known_only=True,
          refs=(Ref(_w(schedule="clr", optimizer="adadelta"), "SC"),
                Ref(_w(schedule="multistep", optimizer="adadelta"), "no SC", "lr35AdaDeltaFig9"),
                Ref(_w(schedule="clr", optimizer="adagrad"), "SC"),
                Ref(_w(schedule="multistep", optimizer="adagrad"), "no SC", "lr35AdaGradFig9")),
          figure="fig8b_optimizers"),
    Claim("fig8_adam", "Fig 8", "No super-convergence with Adam: CLR does not beat PC-LR", "no SC with Adam",
          "not_better", ("fig8b_optimizers",), where=_w(optimizer="adam"), a=Group("CLR + Adam", CLR),
          b=Group("PC-LR + Adam", PC), refs=(Ref(CLR, "no SC"), Ref(PC, "no SC", "lr35AdamFig9")),
          figure="fig8b_optimizers"),
    Claim("fig9a_batch", "Fig 9a / Table 5", "Larger total batches do better: the largest batch tested beats the "
          "smallest (paper: 256 is clearly worst)", "1536/1000/512/256: 92.1/92.4/91.7/89.5", "better",
          ("fig9a_batch",), where=CLR, a=Group("largest batch", _w(batch_size=MAX)),
          b=Group("smallest batch", _w(batch_size=MIN)), sweep="batch_size",
          refs=(Ref(_w(batch_size=1536), "92.1"), Ref(_w(batch_size=1000), "92.4", "clr3SS5kFig1a"),
                Ref(_w(batch_size=512), "91.7"), Ref(_w(batch_size=256), "89.5")), figure="sweep_batch_size"),
    Claim("fig9b_dropout", "Fig 9b", "Dropout 0.2 gives a small improvement over no dropout", "qualitative: small gain",
          "better", ("fig9b_dropout",), where=CLR, a=Group("dropout 0.2", _w(dropout=0.2)),
          b=Group("no dropout", _w(dropout=0.0)), sweep="dropout",
          refs=(Ref(_w(dropout=0.2), "small gain"), Ref(_w(dropout=0.0), "-", "clr3SS5kFig1a")),
          figure="sweep_dropout"),
    Claim("fig10a_momentum", "Fig 10a / Table 6", "Momentum 0.9 is best; 0.95 is clearly worse (judged: 0.9 beats 0.95)",
          "0.80/0.85/0.90/0.95: 92.1/91.9/92.4/90.7", "better", ("fig10a_momentum",), where=CLR,
          a=Group("momentum 0.9", _w(momentum=0.9)), b=Group("momentum 0.95", _w(momentum=0.95)), sweep="momentum",
          refs=(Ref(_w(momentum=0.8), "92.1", "clr3SS5kMom8Fig11"), Ref(_w(momentum=0.85), "91.9", "clr3SS5kMom85Fig11"),
                Ref(_w(momentum=0.9), "92.4", "clr3SS5kFig1a"), Ref(_w(momentum=0.95), "90.7", "clr3SS5kMom95Fig11")),
          figure="fig10a_momentum"),
    Claim("fig10b_weight_decay", "Fig 10b", "Weight decay 1e-3 prevents super-convergence; 1e-4 (best), 1e-5 and "
          "1e-6 do not (judged: 1e-4 beats 1e-3, a diverged 1e-3 run counts as failing)",
          "1e-3 prevents SC; 1e-4 best", "better", ("fig10b_weight_decay",), where=CLR,
          a=Group("weight decay 1e-4", _w(weight_decay=1e-4)), b=Group("weight decay 1e-3", _w(weight_decay=1e-3)),
          sweep="weight_decay",
          refs=(Ref(_w(weight_decay=1e-3), "prevents SC", "clr3SS5kWD-3Fig11"),
                Ref(_w(weight_decay=1e-4), "best", "clr3SS5kFig1a"),
                Ref(_w(weight_decay=1e-5), "SC", "clr3SS5kWD-5Fig11"),
                Ref(_w(weight_decay=1e-6), "SC", "clr3SS5kWD-6Fig11")), figure="sweep_weight_decay"),
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


def _compare(claim: Claim, a: pd.DataFrame, b: pd.DataFrame) -> tuple[str, str]:
    """(label, detail) of one comparison of group A against group B (rows of the pool)."""
    fa, fb, da, db = _finished(a), _finished(b), _diverged(a), _diverged(b)
    la, lb = claim.a.label, claim.b.label
    if (fa.empty and da.empty) or (fb.empty and db.empty):
        missing = [g for g, f, d in ((la, fa, da), (lb, fb, db)) if f.empty and d.empty]
        return NOT_RUN, f"no finished run of {' and '.join(missing)}"
    better = claim.kind == "better"
    if fa.empty and fb.empty:
        return INCONCLUSIVE, f"every run of both groups diverged ({len(da)} + {len(db)})"
    if fa.empty:  # A only diverged, B finished: A is the worse side
        return (NOT_REPRODUCED if better else REPRODUCED), f"every {la} run diverged ({len(da)}); {lb} finished"
    if fb.empty:
        label = REPRODUCED if better else NOT_REPRODUCED
        detail = f"every {lb} run diverged ({len(db)}); {la} finished"
        if better and len(da):
            label, detail = PARTLY, detail + f", but {len(da)} {la} run(s) diverged"
        return label, detail
    va, vb = 100 * fa["final_test_acc"].to_numpy(float), 100 * fb["final_test_acc"].to_numpy(float)
    na, nb = len(va), len(vb)
    diff = float(va.mean() - vb.mean())
    if na >= 2 and nb >= 2:
        noise = math.sqrt(((na - 1) * va.var(ddof=1) + (nb - 1) * vb.var(ddof=1)) / (na + nb - 2))
        noise_txt = f"pooled sd {noise:.2f} pp"
    else:
        noise, noise_txt = NOISE_PP, f"noise floor {NOISE_PP:.2f} pp (n < 2)"
    detail = f"{la} - {lb} = {diff:+.2f} pp, {noise_txt}, n = {na} vs {nb}"
    capped = False
    if better:
        if diff > noise:
            label = REPRODUCED
        elif diff > 0:
            label, detail = PARTLY, detail + ": right direction, within the noise"
        else:
            label = NOT_REPRODUCED
            detail += (": no difference" if diff == 0 else
                       ": opposite direction" + (", beyond the noise" if -diff > noise else ", within the noise"))
        if len(da) and label == REPRODUCED:
            label, capped = PARTLY, True
    else:
        label = NOT_REPRODUCED if diff > noise else REPRODUCED
        detail += ": " + ("a gain beyond the noise" if diff > noise else "no gain beyond the noise")
    if len(da):
        detail += f"; {len(da)} {la} run(s) diverged"
    if len(db):
        detail += f"; {len(db)} {lb} run(s) diverged"
    if capped:
        detail += f" (a diverged {la} run caps the verdict at partly)"
    return label, detail


def _range_case(rows: pd.DataFrame) -> tuple[str, str]:
    """(label, detail) of one range-test experiment from its runs' verdict labels."""
    done = rows if rows.empty else rows[rows["status"].isin(["completed", "diverged"])]
    labels = [] if done.empty or LABEL_COL not in done else [x for x in done[LABEL_COL].tolist() if isinstance(x, str)]
    if not labels:
        return NOT_RUN, "no finished accuracy-mode range test with a verdict"
    counts = ", ".join(f"{k} x{labels.count(k)}" for k in sorted(set(labels)))
    ok = sum(x in RANGE_OK for x in labels)
    bad = sum(x in RANGE_BAD for x in labels)
    if ok and not bad:
        return REPRODUCED, counts
    if bad and not ok:
        return NOT_REPRODUCED, counts
    if ok and bad:
        return PARTLY, counts + " (runs disagree)"
    return INCONCLUSIVE, counts + " (the network never learned: no verdict on super-convergence)"


def _combine(cases: list[tuple[str, str, str]]) -> tuple[str, str]:
    judged = [c for c in cases if c[1] in (REPRODUCED, PARTLY, NOT_REPRODUCED)]
    if not judged:
        if any(c[1] == INCONCLUSIVE for c in cases):
            return INCONCLUSIVE, "no sub-case could be judged"
        return NOT_RUN, "no sub-case has results"
    labels = {c[1] for c in judged}
    label = labels.pop() if len(labels) == 1 else PARTLY
    by = {}
    for case, lab, _ in cases:
        by.setdefault(lab, []).append(case)
    detail = "; ".join(f"{lab}: {', '.join(by[lab])}" for lab in VERDICTS if lab in by)
    return label, f"{detail} ({len(judged)} of {len(cases)} sub-cases judged)"


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


def _combine_scales(per: Sequence[tuple[str, Verdict]]) -> tuple[str, str]:
    """One label summing up per-scale verdicts (never their numbers): the judged scales' label when they agree,
    partly when they differ; else inconclusive / not judged / not run yet."""
    labels = [v.label for _, v in per]
    judged = [x for x in labels if x in (REPRODUCED, PARTLY, NOT_REPRODUCED)]
    if judged:
        label = judged[0] if len(set(judged)) == 1 else PARTLY
    else:
        label = next((x for x in (INCONCLUSIVE, NOT_JUDGED) if x in labels), NOT_RUN)
    return label, "; ".join(f"{s}: {v.label} ({v.detail})" for s, v in per)


def judge(claim: Claim, summaries: pd.DataFrame) -> Verdict:
    """The verdict on one claim from the runs in `summaries` (pure: reads nothing else). Runs of different
    scales are never pooled: with more than one scale, each is judged alone (see `Verdict.scales`)."""
    if claim.kind == "out_of_scope":
        return Verdict(NOT_RUN, claim.rule or "out of scope")
    pool = _pool(claim, summaries)
    parts = by_scale(pool)
    if len(parts) > 1:
        per = tuple((s, _judge_pool(claim, p)) for s, p in parts)
        return Verdict(*_combine_scales(per), scales=per)
    return _judge_pool(claim, pool)


def _judge_pool(claim: Claim, pool: pd.DataFrame) -> Verdict:
    """The verdict from `pool` (the claim's runs, all of one scale)."""
    if claim.kind == "qualitative":
        counted = pool if pool.empty else pool[~pool.index.isin(_unfinished(pool).index)]
        if counted.empty:
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
        if ra is None or rb is None:
            counted = len(pool) - len(_unfinished(pool))
            why = (f"fewer than two values of {claim.sweep} run" if claim.sweep is not None and counted
                   else f"no finished run of both {claim.a.label} and {claim.b.label}")
            cases.append((case["label"], NOT_RUN, why))
            continue
        cases.append((case["label"], *_compare(claim, _select(pool, ra), _select(pool, rb))))
    if claim.split is None:
        return Verdict(cases[0][1], cases[0][2], tuple(cases))
    return Verdict(*_combine(cases), tuple(cases))


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


def _protocol(df: pd.DataFrame) -> str:
    """scale; network, data, batch, iterations; hardware, from the runs' own columns."""
    net = f"ResNet-{_join(_col(df, 'depth'))} {_join(_col(df, 'variant'))}"
    data = _join(_col(df, "dataset"))
    fr = [f for f in _col(df, "fraction") if not pd.isna(f) and not _same(f, 1.0)]
    if fr:
        data += f" x{_join(fr)}"
    aug = _join(_col(df, "augment"))
    return (f"{_join(_col(df, 'scale'))}; {net}, {data} (aug {aug}), batch {_join(_col(df, 'batch_size'))}, "
            f"{_iters(_col(df, 'iterations'))} it; {_join(_col(df, 'device'))}")


def _ours(rows: pd.DataFrame, *, range_test: bool = False) -> str:
    fin, div, unf = _finished(rows), _diverged(rows), _unfinished(rows)
    tail = f"; {len(unf)} unfinished, not counted" if len(unf) else ""
    if fin.empty and div.empty:
        return NOT_RUN + (f" ({len(unf)} unfinished)" if len(unf) else "")
    counted = pd.concat([fin, div])
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
        head = "; ".join(parts) + f" (n={len(counted)})"
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
    return f"{head}{tail}; {_protocol(counted)}"


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
                 _ours(_select(pool, where), range_test=is_range), verdict_cell]
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
RULES = f"""\
- **Finished runs only.** A run counts as an accuracy number only when it finished (status `completed`,
  a DONE file and a final test accuracy). Unfinished runs are never counted (the cell says how many exist).
  A **diverged** run is a result but not an accuracy: it is shown beside the mean ("1 diverged"); a group
  whose runs all diverged counts as the worse side of its comparison; a diverged run on the side the
  claim favours caps "reproduced" at "partly".
- **Ours** = mean ± sd of the final test accuracy over the finished runs (seeds) of a group, in %, n runs,
  then the scale, the protocol (network, data, batch, iterations) and the hardware, read from the runs.
- **"A beats B" claims** (CLR vs PC-LR, and the sweeps judged as one value against another): d = mean(A) -
  mean(B) in percentage points; noise = the pooled sd of the two groups when both have n >= 2, else
  {NOISE_PP:.2f} pp. **reproduced** if d > noise; **partly** if 0 < d <= noise (right direction, within the
  noise); **not reproduced** if d <= 0 (opposite direction or no difference; the cell says whether beyond the
  noise); **not run yet** if either group has no finished or diverged run. "@max"/"@min" sides (largest vs
  smallest batch, max LR, run length) take the largest / smallest value actually run.
- **"A does not beat B" claims** (Adam): reproduced if d <= noise, not reproduced if d > noise.
- **Claims judged per sub-case** (training-set fraction, depth, optimizer, range-test length): each
  sub-case is judged alone; the claim is **reproduced** / **not reproduced** if every judged sub-case is,
  **partly** if they differ; sub-cases without results are listed as not run yet and do not count.
- **Range tests** ("accuracy remains consistently high"): the run's own verdict
  (`superconv.range_analysis.verdict`, stored in its summary): **reproduced** if `stays_high`,
  **not reproduced** if `collapses` or `diverged`, **partly** only when several runs disagree,
  **inconclusive** if `never_learns` (the network never learned, so the test says nothing), **not run yet**
  if no accuracy-mode range test with a verdict exists.
- **Qualitative claims** (curve shapes, loss curves) are **not judged automatically**: our numbers are
  shown and the figure is named; read it. Out-of-scope claims say **not run yet**.
- The paper column is the number the paper printed; the author re-run column is the final test accuracy of
  the author's own Caffe log (`Results/` of the official repository), read from the log, "-" without one.
"""

CAVEATS = """\
- Our CIFAR-10 is a development copy rebuilt from JPEG-compressed images, not the official binary files; the
  compression costs a few points of test accuracy, so compare directions and gaps, not absolute values.
- Runs at `mini` (ResNet-20, batch 128, ~1k iterations on CPU) or `smoke` scale (synthetic data, a few
  iterations: plumbing only) are about the direction of an effect, not the paper's absolute numbers; only
  `paper` scale runs the paper's iteration counts and batch sizes.
- The paper used Caffe on 8 GPUs with a total batch of 1000; hardware, batch and BN momentum change the
  outcome (docs/PAPER.md §3: independent reproductions disagree). The hardware of each run is in its cell.
- A verdict from one seed per group uses a fixed noise floor of {noise:.2f} pp; more seeds give a real sd.
""".format(noise=NOISE_PP)


SCALE_RULE = """\
- **Scales are judged separately.** Runs of different scales (`paper`: the paper's network, lengths and
  batch on a GPU; `mini`: ResNet-20 and a few hundred iterations; `smoke`: plumbing only) are never averaged
  together or compared with each other: a claim whose runs span several scales gets one table and one
  verdict per scale, and the summary lists the verdict of each scale.
"""


def _summary_cell(claim: Claim, v: Verdict, summaries: pd.DataFrame, several: bool) -> str:
    """The summary's verdict cell: the verdict of each scale ("paper: not run yet; mini: reproduced") when the
    claim's runs span several scales; "mini: reproduced" when the store holds several scales but this claim's
    runs one; else the bare label."""
    if v.scales:
        return "; ".join(f"{s}: {sv.label}" for s, sv in v.scales)
    if several and claim.kind != "out_of_scope":
        scales = scales_in(_pool(claim, summaries))
        if len(scales) == 1:
            return f"{scales[0]}: {v.label}"
    return v.label


def _rel(fig: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(Path(fig).resolve(), Path(base).resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return Path(fig).as_posix()


def render_report(summaries: pd.DataFrame, reference: Mapping[str, CaffeLog] | None, figures: Sequence[Path],
                  out_dir: Path, command: str) -> str:
    """The report's text (pure); `build_report` writes it."""
    summaries = summaries if summaries is not None else pd.DataFrame(columns=["experiment", "status"])
    verdicts = [(c, judge(c, summaries)) for c in CLAIMS]
    store_scales = scales_in(summaries)
    several = len(store_scales) > 1  # then every summary verdict names its scale
    out = ["# Reproduction report: Super-Convergence (Smith & Topin, arXiv 1708.07120)", "",
           "Generated by `paper_figures/report.py` from the results store and the author's logs; do not edit by "
           "hand. Regenerate with:", "", "```", command, "```", ""]
    n = len(summaries)
    st = summaries["status"].value_counts().to_dict() if n and "status" in summaries else {}
    scale_counts = scale_labels(summaries).value_counts().to_dict() if several else {}
    out.append(f"Runs read: {n} ({', '.join(f'{k} {st[k]}' for k in sorted(st)) or 'none'}). "
               + (f"Scales: {', '.join(f'{s} {scale_counts[s]}' for s in store_scales)}, judged separately. "
                  if several else "")
               + (f"Author logs read: {len(reference)}." if reference is not None
                  else "No reference folder given: the author re-run column shows \"-\"."))
    out += ["", "## Summary", "", "| claim | paper artifact | verdict |", "|---|---|---|"]
    out += [f"| [{c.id}](#{c.id}) | {_cell(c.artifact)} | {_summary_cell(c, v, summaries, several)} |"
            for c, v in verdicts]
    out += ["", "## Verdict rules", "", RULES.rstrip() + ("\n" + SCALE_RULE.rstrip() if several else ""), "",
            "## Claims", ""]
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
            extra.append(f"runs at {len(v.scales)} scales ({', '.join(s for s, _ in v.scales)}), each judged on "
                         "its own runs: never pooled or compared across scales")
        if extra:
            out += ["", "Ours: " + "; ".join(extra) + "."]
        if not v.scales:
            out += [""] + _table(claim, v, pool, reference) + [""]
            continue
        out.append("")
        for (scale, sv), (_, part) in zip(v.scales, by_scale(pool)):
            out += [f"#### {claim.id} at {scale} scale", ""] + _table(claim, sv, part, reference) + [""]
    known = {e for c in CLAIMS for e in c.experiments}
    others = sorted(set(summaries["experiment"].dropna().astype(str)) - known) if n and "experiment" in summaries else []
    if others:
        counts = summaries["experiment"].value_counts().to_dict()
        out += ["Results that no claim judges (see their figures): "
                + ", ".join(f"`{e}` ({counts[e]} run{'s' if counts[e] != 1 else ''})" for e in others) + ".", ""]
    out += ["## Figures", ""]
    pngs = sorted({Path(f) for f in figures if Path(f).suffix.lower() == ".png"}, key=lambda p: _rel(p, out_dir))
    if not pngs:
        out += ["No figures were given.", ""]
    for f in pngs:
        rel = _rel(f, out_dir)
        out += [f"**{f.stem}**", "", f"![{f.stem}]({rel})", ""]
    out += ["## Caveats", "", CAVEATS.rstrip(), ""]
    return "\n".join(out)


def build_report(summaries: pd.DataFrame, reference: dict[str, CaffeLog] | None, figures: list[Path],
                 out_path: Path, command: str) -> str:
    """Write the report to `out_path` (only when its text changed, so the mtime stays); return the text."""
    out_path = Path(out_path)
    text = render_report(summaries, reference, figures, out_path.parent, command)
    _write_if_changed(out_path, text.encode("utf-8"))
    return text


def main(argv: Sequence[str] | None = None) -> int:
    from .caffe_log import read_reference_dir
    from .load import load_summaries

    p = argparse.ArgumentParser(prog="python -m paper_figures.report", description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path, help="results folder (results/)")
    p.add_argument("--reference", type=Path, default=None, help="folder of the author's Caffe logs")
    p.add_argument("--figures", type=Path, default=Path("paper_figures/figures"), help="folder of the PNGs")
    p.add_argument("--out", type=Path, default=Path("paper_figures/REPORT.md"))
    args = p.parse_args(argv)
    reference = read_reference_dir(args.reference) if args.reference is not None else None
    figures = sorted(args.figures.glob("*.png")) if args.figures.is_dir() else []
    command = " ".join(["python -m paper_figures.report", str(args.results)]
                       + ([f"--reference {args.reference}"] if args.reference else [])
                       + [f"--figures {args.figures}", f"--out {args.out}"])
    build_report(load_summaries(args.results), reference, figures, args.out, command)
    print(f"paper_figures: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
