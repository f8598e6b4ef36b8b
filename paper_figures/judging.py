"""The report's verdict rules, as pure functions of numbers and small frames: no files, no claims, no text layout.

`paper_figures.report` decides which runs form each side of each claim of the paper and renders the tables;
this module decides what those runs show. Kept apart so that every rule can be tested on a handful of
constructed numbers, and so that the rules a reader must trust are in one short file.

Why the rules are what they are:
- **Evidence needs repetition** (`MIN_N`). One run per side says which way a difference went, not that it is
  real: this project's own seed pairs at mini scale differ by several points. So "reproduced" and "not
  reproduced" need at least `MIN_N` runs that ended (finished with an accuracy, or diverged) on each side of a
  comparison, and at least `MIN_N` judged runs of a range test; with fewer the verdict is `INDICATIVE`.
- **Noise is measured, never assumed** (`comparison_noise`). A difference counts only when it exceeds the
  larger of the pooled sd of the two groups compared and the seed sd of their scale (`seed_sd`: every group of
  runs that differ only in their seed, pooled over the whole study at that scale). A fixed floor (0.5 pp, as
  before) would call differences real that the seeds alone produce.
- **A range test still rising at its end has not shown that it stays high** (`range_run`). If its highest
  accuracy is at the last LR tested, nothing says what a larger LR would do; only a curve that was already
  high over the last `HIGH_SHARE` of the tested LR range counts as staying high (`high_share`).
- **A claim is only testable where its runs converged** (`Regime`, `regime_gap`). "CLR in 1/8 of the budget beats
  PC-LR", and every sweep on the CLR run, is about a CLR run that finished learning: the author's end at ~100%
  training accuracy. Where the claim's reference arm (the CLR run it is about) ended below the `underfit`
  threshold (superconv.health.UNDERFIT_BELOW), the comparison measures how far each run got, so the claim is
  "not testable: underfit", with the arm's training accuracy. Other arms are data whatever they did: a weight
  decay that makes its run collapse is the claim's point, not a reason to withhold the verdict.
- **Runs of different protocols are never pooled** (`Protocol`): precision and the BatchNorm rules (statistics
  per group of images, Caffe's bias-corrected running averages) change the result, so they are part of a
  group's identity exactly as the scale is.
- **A flagged run still counts, but says so** (`flag_note`): a run the health check flags (superconv.health:
  test accuracy lagging the training accuracy at chance, never learning, still improving at its end) is a result
  like any other, yet a verdict resting on it is weaker than its label alone says, so its detail names the flags.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from superconv.health import UNDERFIT_BELOW
from superconv.range_analysis import BOUNDARY_SLACK, default_window, running_median

from .load import FACTORS

__all__ = ["REPRODUCED", "PARTLY", "NOT_REPRODUCED", "INDICATIVE", "INCONCLUSIVE", "STILL_RISING", "NOT_TESTABLE",
           "NOT_JUDGED", "NOT_RUN", "VERDICTS", "JUDGED", "MIN_N", "HIGH_SHARE", "TRAIN_IMAGES", "FULL_PASS", "TAIL",
           "PROTOCOL_COLUMNS", "IDENTITY", "Protocol", "protocol_of", "SeedSd", "Side", "Regime", "pooled_sd",
           "identity_key", "seed_sd", "comparison_noise", "compare", "epochs", "fit_text", "regime_gap", "high_share",
           "range_run", "range_case", "combine", "flag_note", "split_flags"]

REPRODUCED, PARTLY, NOT_REPRODUCED = "reproduced", "partly", "not reproduced"
INDICATIVE = "indicative (n=1)"
INCONCLUSIVE, STILL_RISING = "inconclusive", "inconclusive: still rising"
NOT_TESTABLE, NOT_JUDGED, NOT_RUN = "not testable", "not judged automatically", "not run yet"
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, INDICATIVE, INCONCLUSIVE, STILL_RISING, NOT_TESTABLE, NOT_JUDGED,
            NOT_RUN)
JUDGED = (REPRODUCED, PARTLY, NOT_REPRODUCED)  # the labels that rest on evidence
# What a claim none of whose parts was judged says: the first of these found among its parts.
UNJUDGED_ORDER = (INDICATIVE, INCONCLUSIVE, STILL_RISING, NOT_TESTABLE, NOT_JUDGED, NOT_RUN)

MIN_N = 2  # runs per side (that ended: finished or diverged) before a verdict is more than indicative
HIGH_SHARE = 1 / 3  # a still-rising range test counts as staying high when it was high over this top share
TRAIN_IMAGES = {"cifar10": 50_000, "cifar100": 50_000}  # training images of the full data set (data.name)
# Where a run's training accuracy comes from (paper_figures.verdicts.attach_fit): the full pass every run makes
# since it existed, or, for runs stored before, the mean per-batch accuracy of the last 5% of iterations.
FULL_PASS, TAIL = "full pass", "last 5% of batches"

# Protocol columns of paper_figures.load.load_summaries, and what a run without them (made before they existed)
# ran: nn.BatchNorm2d statistics over the whole batch, PyTorch's un-corrected running averages, protocol 1.
PROTOCOL_COLUMNS = ("precision", "bn_stats", "bn_group", "protocol_version", "dropout_at")
LEGACY = {"bn_stats": "torch", "bn_group": None, "protocol_version": 1, "dropout_at": "fc"}
# What makes runs the same configuration but for their seed (the seed sd pools within such groups).
IDENTITY = tuple(f for f in FACTORS if f != "seed") + ("job_type",) + PROTOCOL_COLUMNS


def _missing(v) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


# ------------------------------------------------------------------------------ protocol identity
@dataclass(frozen=True)
class Protocol:
    """How a run computed, beyond its factors: precision and BatchNorm. Runs of different protocols are never
    pooled or compared (see the module docstring)."""

    precision: str
    bn_stats: str  # "torch" (nn.BatchNorm2d's running averages) | "caffe" (bias-corrected sums)
    bn_group: int | None  # images per BN statistics group; None = the whole batch
    version: int  # config protocol_version (absent = 1)
    dropout_at: str = "fc"
    # BN groups as the rule that made them: batch / bn_replicas (`per_replica_rule`; bn_group is None then)
    bn_replicas: int | None = None

    def text(self) -> str:
        over = ("the whole batch" if self.bn_group is None and self.bn_replicas is None
                else f"groups of batch/{self.bn_replicas}" if self.bn_replicas is not None
                else f"groups of {self.bn_group}")
        out = f"{self.precision}, BN {self.bn_stats} over {over}, protocol v{self.version}"
        return out + ("" if self.dropout_at == "fc" else f", dropout at {self.dropout_at}")

    def sort_key(self) -> tuple:
        return (self.version, self.precision, self.bn_stats, -1 if self.bn_group is None else self.bn_group,
                self.dropout_at, -1 if self.bn_replicas is None else self.bn_replicas)

    def per_replica_rule(self, batch_size) -> Protocol:
        """This protocol with its BN groups as the rule batch / replicas when the group divides `batch_size`.

        `model.bn_group` follows the batch (`superconv.config.per_replica`: batch_size / train.replicas), so a
        batch sweep run under one rule holds one BN group size per batch. Keyed by group size, each batch would
        be a setting of its own and the sweep could never be compared; keyed by the rule, the sweep is one
        setting, as in the paper (8 GPUs at every batch size)."""
        b = None if _missing(batch_size) else int(batch_size)
        if self.bn_group is None or b is None or b % self.bn_group:
            return self
        return replace(self, bn_group=None, bn_replicas=b // self.bn_group)


def protocol_of(row: Mapping) -> Protocol:
    """The protocol of one summaries row; absent keys take their LEGACY value (precision: "unknown"). BN groups
    are keyed by the rule that sized them where the row has a batch size (`Protocol.per_replica_rule`)."""
    def get(k):
        v = row.get(k)
        return LEGACY.get(k) if _missing(v) else v

    group = get("bn_group")
    precision = row.get("precision")
    p = Protocol(precision="unknown" if _missing(precision) else str(precision), bn_stats=str(get("bn_stats")),
                 bn_group=None if group is None else int(group), version=int(get("protocol_version")),
                 dropout_at=str(get("dropout_at")))
    return p.per_replica_rule(row.get("batch_size"))


# ------------------------------------------------------------------------------ noise
@dataclass(frozen=True)
class SeedSd:
    """The seed-to-seed sd of the final test accuracy at one scale, in pp, from `groups` groups of runs that
    differ only in their seed, with `df` degrees of freedom."""

    scale: str
    sd: float
    groups: int
    df: int

    def text(self) -> str:
        return f"{self.scale} seed sd {self.sd:.2f} pp ({self.groups} group{'s' if self.groups != 1 else ''})"


def pooled_sd(groups: Sequence[Sequence[float]]) -> tuple[float | None, int]:
    """(sd, degrees of freedom): sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1)) over the groups with >= 2 values,
    the usual pooled within-group sd; (None, 0) when no group has two values."""
    num, df = 0.0, 0
    for g in groups:
        v = np.asarray(g, dtype=float)
        if len(v) >= 2:
            num += (len(v) - 1) * float(v.var(ddof=1))
            df += len(v) - 1
    return (math.sqrt(num / df), df) if df else (None, 0)


def _norm(v):
    """A hashable, comparable form of a factor value (NaN and None alike; 1 and 1.0 alike)."""
    if _missing(v):
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    return str(v)


def identity_key(r) -> tuple:
    """A run's configuration without its seed (`IDENTITY`, the protocol as `protocol_of` reads it): runs with
    equal keys differ only in their seed."""
    return tuple(_norm(r.get(c)) for c in IDENTITY if c not in PROTOCOL_COLUMNS) + (protocol_of(r),)


def seed_sd(runs: pd.DataFrame, scale: str) -> SeedSd | None:
    """The seed sd of one scale, from every run of the study at that scale (pass only that scale's rows).

    How: the finished training runs (status completed, a final accuracy; range tests excluded) are grouped by
    their identity (`IDENTITY`: every factor but the seed, the job type and the protocol, the experiment name
    not included, so one configuration repeated by several experiments is one group). Within a group, runs of
    the same seed are one observation (their mean): the same configuration and seed run again by another
    experiment is a copy, not a new seed. Every group with >= 2 seeds then contributes its within-group
    variance, and the groups are pooled (`pooled_sd`), in percentage points. None when no group has 2 seeds.
    """
    if runs.empty or "status" not in runs or "final_test_acc" not in runs:
        return None
    fin = runs[(runs["status"] == "completed") & runs["final_test_acc"].notna()]
    if "job_type" in fin:
        fin = fin[fin["job_type"].map(lambda j: j != "range_test")]
    groups: dict[tuple, dict] = {}
    for _, r in fin.iterrows():
        key = identity_key(r)
        seed = _norm(r.get("seed"))
        seed = ("run", r.get("run")) if seed is None else seed
        groups.setdefault(key, {}).setdefault(seed, []).append(100 * float(r["final_test_acc"]))
    per_seed = [[float(np.mean(v)) for v in g.values()] for g in groups.values()]
    sd, df = pooled_sd(per_seed)
    if sd is None:
        return None
    return SeedSd(scale, sd, sum(len(g) >= 2 for g in per_seed), df)


def comparison_noise(a: Sequence[float], b: Sequence[float], scale_sd: SeedSd | None) -> tuple[float | None, str]:
    """(noise in pp, how it was found): the larger of the pooled sd of the two groups (when either has two
    values) and the scale's seed sd; (None, ...) when neither can be measured."""
    own, _ = pooled_sd([a, b])
    parts = ([(own, f"pooled sd {own:.2f} pp")] if own is not None else []) + \
            ([(scale_sd.sd, scale_sd.text())] if scale_sd is not None else [])
    if not parts:
        return None, "no seed sd measurable (every group n=1, no group of seeds at this scale)"
    value = max(p[0] for p in parts)
    how = parts[0][1] if len(parts) == 1 else "max(" + ", ".join(p[1] for p in parts) + ")"
    return value, f"noise {value:.2f} pp = {how}"


# ------------------------------------------------------------------------------ "A beats B"
@dataclass(frozen=True)
class Side:
    """One side of a comparison: its label, the final test accuracies (in %) of its finished runs and the
    number of its diverged runs. `n` counts both: a diverged run is a result (a failure), not an accuracy."""

    label: str
    accs: tuple[float, ...] = ()
    diverged: int = 0

    @property
    def n(self) -> int:
        return len(self.accs) + self.diverged


def compare(a: Side, b: Side, *, better: bool, scale_sd: SeedSd | None) -> tuple[str, str]:
    """(label, detail) of the claim "A beats B" (`better`) or "A does not beat B" (not `better`).

    d = mean(A) - mean(B) in pp against the noise of `comparison_noise`. "A beats B": reproduced if d > noise,
    partly if 0 < d <= noise, not reproduced if d <= 0. "A does not beat B": reproduced if d <= noise, else not
    reproduced. A side whose runs all diverged is the worse side; a diverged run of A caps "reproduced" at
    partly. Any of those labels becomes INDICATIVE when a side has fewer than MIN_N runs, or when no noise can
    be measured; the detail keeps the direction either way.
    """
    la, lb = a.label, b.label
    if not a.n or not b.n:
        missing = [s.label for s in (a, b) if not s.n]
        return NOT_RUN, f"no finished run of {' and '.join(missing)}"
    if not a.accs and not b.accs:
        return INCONCLUSIVE, f"every run of both groups diverged ({a.diverged} + {b.diverged})"
    capped, no_noise = False, False
    if not a.accs:
        label = NOT_REPRODUCED if better else REPRODUCED
        detail = f"every {la} run diverged ({a.diverged}); {lb} finished"
    elif not b.accs:
        label = REPRODUCED if better else NOT_REPRODUCED
        detail = f"every {lb} run diverged ({b.diverged}); {la} finished"
        if better and a.diverged:
            label, detail = PARTLY, detail + f", but {a.diverged} {la} run(s) diverged"
    else:
        va, vb = np.asarray(a.accs, float), np.asarray(b.accs, float)
        diff = float(va.mean() - vb.mean())
        noise, how = comparison_noise(a.accs, b.accs, scale_sd)
        detail = f"{la} - {lb} = {diff:+.2f} pp, {how}, n = {len(va)} vs {len(vb)}"
        beyond = noise is not None and abs(diff) > noise
        within = "beyond the noise" if beyond else ("within the noise" if noise is not None else "noise unknown")
        if better:
            if diff > 0:
                label = REPRODUCED if beyond else PARTLY
                detail += f": right direction, {within}"
            else:
                label = NOT_REPRODUCED
                detail += ": no difference" if diff == 0 else f": opposite direction, {within}"
            if a.diverged and label == REPRODUCED:
                label, capped = PARTLY, True
        else:
            gain = noise is not None and diff > noise
            label = NOT_REPRODUCED if gain else REPRODUCED
            detail += ": " + ("a gain beyond the noise" if gain else f"no gain beyond the noise ({within})")
        no_noise = noise is None
    if a.diverged and a.accs:
        detail += f"; {a.diverged} {la} run(s) diverged"
    if b.diverged and b.accs:
        detail += f"; {b.diverged} {lb} run(s) diverged"
    if capped:
        detail += f" (a diverged {la} run caps the verdict at partly)"
    if label in JUDGED and min(a.n, b.n) < MIN_N:
        few = ", ".join(f"{s.n} {s.label} run{'s' if s.n != 1 else ''}" for s in (a, b) if s.n < MIN_N)
        label, detail = INDICATIVE, detail + f"; indicative only: {few} (a verdict needs >= {MIN_N} per side)"
    elif label in JUDGED and no_noise:
        label, detail = INDICATIVE, detail + "; indicative only: no noise to judge the difference against"
    return label, detail


# ------------------------------------------------------------------------------ regimes
@dataclass(frozen=True)
class Regime:
    """Where a claim is testable: the runs of its reference arm (`side`, "a" or "b": the CLR run the claim is
    about) ended fitting their training set, their mean final training accuracy at or above
    superconv.health.UNDERFIT_BELOW; `why` says why, in words."""

    why: str
    side: str = "a"


def epochs(iterations, batch_size, dataset, fraction) -> float | None:
    """Epochs of its training subset a run trains: iterations x batch / (TRAIN_IMAGES[dataset] x fraction);
    None when a value is missing or the data set's size is not known (synthetic data)."""
    n = TRAIN_IMAGES.get(dataset) if isinstance(dataset, str) else None
    if n is None or _missing(iterations) or _missing(batch_size):
        return None
    fr = 1.0 if _missing(fraction) else float(fraction)
    return float(iterations) * float(batch_size) / (n * fr) if fr > 0 else None


def fit_text(accs: Sequence[float], sources: Sequence[str]) -> str:
    """ "75.31%, last 5% of batches, n=2": the mean training accuracy of runs and where it comes from."""
    src = ", ".join(sorted(set(sources))) if sources else "source unknown"
    return f"{100 * float(np.mean(accs)):.2f}%, {src}{f', n={len(accs)}' if len(accs) > 1 else ''}"


def regime_gap(label: str, fits: Sequence[tuple[float | None, str | None]]) -> str | None:
    """None when the reference arm converged (or has no finished run with a training accuracy: "not run yet" and a
    side that diverged are the caller's, and a run that measured nothing is no evidence either way); else why the
    claim is not testable: "underfit (CLR training accuracy 75.31% ...)". `fits`: (training accuracy as a
    fraction or None, source) of each of the arm's finished runs; the mean is over those that have one."""
    known = [(a, s) for a, s in fits if a is not None and math.isfinite(a)]
    if not known:  # nothing measured it (no full pass, no metrics): not evidence of underfitting
        return None
    accs = [a for a, _ in known]
    if float(np.mean(accs)) >= UNDERFIT_BELOW:
        return None
    return (f"underfit ({label} training accuracy {fit_text(accs, [s for _, s in known])}; a converged run "
            f"reaches {UNDERFIT_BELOW:.0%})")


# ------------------------------------------------------------------------------ range tests
def high_share(lrs: Sequence[float], accs: Sequence[float], tolerance: float) -> tuple[float, float]:
    """(share, from_lr): how much of the tested LR range, counted down from the largest LR, the curve was high.

    "High" is the range-test verdict's own rule (`superconv.range_analysis.verdict`): the running median of the
    test accuracy (same window, `default_window`) at or above (1 - tolerance) x its peak. `from_lr` is the LR
    of the first evaluation of the last unbroken high stretch, which must reach the last evaluation; share =
    (last LR - from_lr) / (last LR - first LR): 0 when the last evaluation itself is not high.
    """
    lr, acc = np.asarray(lrs, float), np.asarray(accs, float)
    keep = np.isfinite(lr) & np.isfinite(acc)
    lr, acc = lr[keep], acc[keep]
    if len(lr) == 0:
        raise ValueError("empty range-test curve: no (lr, accuracy) evaluations")
    med = running_median(acc, default_window(len(acc)))
    threshold = (1.0 - tolerance) * float(med.max()) - BOUNDARY_SLACK
    i = len(med) - 1
    if med[i] < threshold:
        return 0.0, float(lr[-1])
    while i > 0 and med[i - 1] >= threshold:
        i -= 1
    span = float(lr[-1] - lr[0])
    return ((float(lr[-1] - lr[i]) / span) if span > 0 else 0.0), float(lr[i])


def range_run(label, peak_lr, max_lr_tested, share: float | None = None, from_lr: float | None = None,
              tolerance: float = 0.2) -> tuple[str, str]:
    """(outcome, text) of one accuracy-mode range test from its stored verdict `label`.

    outcome: "high" (accuracy stays high: the claim's side), "low" (collapses or diverged), "rising" (the
    verdict is stays_high but the highest accuracy is at the last LR tested, and the curve was not high over
    at least HIGH_SHARE of the tested LR range: `high_share`; also when the curve was not read, share None),
    "none" (never learns, or no verdict).
    """
    if label in ("collapses", "diverged"):
        return "low", label
    if label != "stays_high":
        return "none", str(label) if isinstance(label, str) else "no verdict"
    if _missing(peak_lr) or _missing(max_lr_tested) or float(peak_lr) < float(max_lr_tested) - 1e-12:
        return "high", "stays_high"
    top = f"stays_high with its peak at the last LR tested ({float(max_lr_tested):.3g}), i.e. still rising"
    if share is None:
        return "rising", top + " (its curve was not read)"
    where = (f"within {tolerance:.0%} of its peak from LR {from_lr:.3g} on: {share:.0%} of the tested LR range"
             if share > 0 else "not within tolerance of its peak at its last evaluation")
    if share >= HIGH_SHARE - 1e-12:
        return "high", f"{top}; {where} (>= {HIGH_SHARE:.0%}), so it counts as staying high"
    return "rising", f"{top}; {where} (< {HIGH_SHARE:.0%})"


def range_case(outcomes: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """(label, detail) of one range-test experiment from its runs' `range_run` outcomes: reproduced when they
    stay high, not reproduced when they collapse (each with >= MIN_N such runs, else INDICATIVE), partly when
    they disagree; STILL_RISING when every run with a verdict is still rising; INCONCLUSIVE when none learned."""
    if not outcomes:
        return NOT_RUN, "no finished accuracy-mode range test with a verdict"
    kinds = [o for o, _ in outcomes]
    texts = "; ".join(t for _, t in outcomes)
    high, low = kinds.count("high"), kinds.count("low")
    if high and low:
        return PARTLY, f"{texts} (runs disagree)"
    if high or low:
        n, label = (high, REPRODUCED) if high else (low, NOT_REPRODUCED)
        if n < MIN_N:
            return INDICATIVE, f"{texts}; indicative only: {n} judged run (a verdict needs >= {MIN_N})"
        return label, texts
    if "rising" in kinds:
        return STILL_RISING, texts + ": no verdict on whether it stays high at larger LRs"
    return INCONCLUSIVE, texts + " (the network never learned: no verdict on super-convergence)"


# ------------------------------------------------------------------------------ combining parts
def combine(labels: Sequence[str]) -> str:
    """One label for several parts (sub-cases, scales): the judged parts' label when they agree, partly when
    they differ; with no judged part, the first of UNJUDGED_ORDER among them (an indicative part says more
    than an inconclusive one, which says more than one not run)."""
    judged = [x for x in labels if x in JUDGED]
    if judged:
        return judged[0] if len(set(judged)) == 1 else PARTLY
    return next((x for x in UNJUDGED_ORDER if x in labels), NOT_RUN)


# ------------------------------------------------------------------------------ run health
def split_flags(cell) -> tuple[str, ...]:
    """A summaries `health` cell ("flag1,flag2"; "" = none; None/NaN = not known) as a tuple of flags."""
    if _missing(cell) or not isinstance(cell, str):
        return ()
    return tuple(f for f in cell.split(",") if f)


def flag_note(sides: Sequence[tuple[str, Sequence]], skip: Sequence[str] = ("diverged",)) -> str:
    """"" when no run of any side carries a health flag; else "; rests on flagged runs: CLR 1 of 2
    still_improving; PC-LR 2 of 2 test_lags_train" (each side: its label and one `health` cell per run that
    counted). `skip`: flags already stated elsewhere (diverged runs are counted by `compare`)."""
    parts = []
    for label, cells in sides:
        cells = list(cells)
        counts: dict[str, int] = {}
        for c in cells:
            for f in split_flags(c):
                if f not in skip:
                    counts[f] = counts.get(f, 0) + 1
        if counts:
            who = f"{label} " if label else ""
            parts.append(who + ", ".join(f"{k} of {len(cells)} {f}" for f, k in sorted(counts.items())))
    return f"; rests on flagged runs: {'; '.join(parts)}" if parts else ""
