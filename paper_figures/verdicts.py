"""Verdicts from runs: which runs a claim pools, how they split into settings and cases, and the label each gets.

Pure functions of the runs' summaries (and, for range tests, health and Fig 5, their metrics): `judge(claim,
summaries)` selects the claim's runs, splits them by scale and protocol (`by_setting`: never pooled), and
applies the rules of `paper_figures.judging` to each comparison, range test or sub-case; `judge_all` does
every claim after attaching what the metrics say (`attach_health`, `attach_curves`, `attach_estimates`).
Nothing here renders text beyond the one-line details of a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from superconv import health as run_health
from superconv.lr_estimate import landmarks

from .claims import CLAIMS, MAX, MIN, Claim, Group, Ref
from .controls import with_controls
from .selection import is_num, same_value, select_runs
from .judging import (FULL_PASS, JUDGED, NOT_JUDGED, NOT_RUN, NOT_TESTABLE, TAIL, VERDICTS, SeedSd, Side, combine,
                      compare, epochs, flag_note, high_share, identity_key, protocol_of, range_case, range_run,
                      regime_gap, seed_sd, split_flags)
from .load import scale_labels, scales_in

__all__ = ["Verdict", "judge", "judge_all", "by_scale", "by_setting", "attach_curves", "attach_health",
           "batch_train_acc", "attach_estimates", "attach_fit", "run_fits"]

VERDICT_COL = "range_test/verdict/"
LABEL_COL, PEAK_COL, PEAK_LR_COL = VERDICT_COL + "label", VERDICT_COL + "peak_acc", VERDICT_COL + "peak_lr"
MAX_LR_COL, TOL_COL = VERDICT_COL + "max_lr_tested", VERDICT_COL + "tolerance"
SHARE_COL, FROM_LR_COL = "curve/high_share", "curve/high_from_lr"  # added by attach_curves from metrics.csv
TOLERANCE = 0.2  # a range test's tolerance when its summary has none: superconv.range_analysis.verdict's default
HEALTH_COL = "health"  # the run's health flags, comma-joined (paper_figures.load; attach_health fills the gaps)
HEALTH_WHY_COL, HEALTH_SRC_COL = "health/why", "health/source"  # added by attach_health
TRAIN_ACC_COL, TRAIN_SRC_COL = "train_acc", "train_acc/source"  # added by attach_fit
ESTIMATE_PREFIX = "lr_estimate/"  # + start, middle, end, peak (and _it): added by attach_estimates from metrics.csv


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


# ------------------------------------------------------------------------------ selecting runs
def claim_pool(claim: Claim, summaries: pd.DataFrame) -> pd.DataFrame:
    """Every run of the claim's experiments, and of the runs that stand in for an arm they do not run
    (paper_figures.controls), matching its base filters (unfinished ones included)."""
    if summaries is None or summaries.empty or "experiment" not in summaries:
        return pd.DataFrame(columns=["experiment", "status"])
    df = with_controls(summaries, claim.experiments)
    return select_runs(df, dict(claim.where))


def finished_runs(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    return df[(df["status"] == "completed") & df["final_test_acc"].notna()]


def diverged_runs(df: pd.DataFrame) -> pd.DataFrame:
    return df if df.empty else df[df["status"] == "diverged"]


def unfinished_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Runs that are neither finished nor diverged (no DONE, or no usable final accuracy): never counted."""
    if df.empty:
        return df
    done = ((df["status"] == "completed") & df["final_test_acc"].notna()) | (df["status"] == "diverged")
    return df[~done]


def _resolve(group: Group, pool: pd.DataFrame) -> dict[str, object] | None:
    """The group's filters with "@max"/"@min" replaced by values of the finished or diverged runs of the pool;
    None when a "@" column has no such value."""
    out: dict[str, object] = {}
    counted = pool if pool.empty else pool[pool.index.isin(finished_runs(pool).index) | (pool["status"] == "diverged")]
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


def axis_values(claim: Claim, col: str, pool: pd.DataFrame) -> list:
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
        if not any(same_value(u, v) for u in out):
            out.append(v)
    return sorted(out, key=lambda v: (not is_num(v), v if is_num(v) else str(v)))


def ref_for(claim: Claim, row_where: Mapping[str, object]) -> Ref | None:
    for ref in claim.refs:
        if all(k in row_where and same_value(row_where[k], v) for k, v in ref.where):
            return ref
    return None


# ------------------------------------------------------------------------------ verdict logic
def pct_text(x: float) -> str:
    return f"{100 * x:.2f}"


def counted_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Runs that ended: finished with an accuracy, or diverged (the runs a verdict counts)."""
    return df if df.empty else df[~df.index.isin(unfinished_runs(df).index)]


def side_of(label: str, rows: pd.DataFrame) -> Side:
    fin = finished_runs(rows)
    accs = () if fin.empty else tuple(100 * fin["final_test_acc"].to_numpy(float))
    return Side(label, accs, len(diverged_runs(rows)))


def _compare(claim: Claim, a: pd.DataFrame, b: pd.DataFrame, scale_sd: SeedSd | None) -> tuple[str, str]:
    """(label, detail) of one comparison of group A against group B (rows of the pool): `judging.compare`; the
    detail names the health flags of the runs it rests on (`judging.flag_note`)."""
    label, detail = compare(side_of(claim.a.label, a), side_of(claim.b.label, b), better=claim.kind == "better",
                            scale_sd=scale_sd)
    if label == NOT_RUN:
        return label, detail
    return label, detail + flag_note([(claim.a.label, run_flags(a)), (claim.b.label, run_flags(b))])


def run_flags(rows: pd.DataFrame) -> list:
    """The health cell of every run among `rows` that ended (finished or diverged)."""
    counted = counted_runs(rows)
    return [] if counted.empty else counted[HEALTH_COL].tolist() if HEALTH_COL in counted else [None] * len(counted)


def run_fits(rows: pd.DataFrame) -> list[tuple[float | None, str | None]]:
    """(training accuracy, its source) of every finished run among `rows`: `attach_fit`'s, else the summary's full
    pass (`final_train_acc`), else (None, None)."""
    out = []
    for _, r in finished_runs(rows).iterrows():
        acc = as_number(r.get(TRAIN_ACC_COL))
        if acc is not None:
            out.append((acc, r.get(TRAIN_SRC_COL)))
        else:  # not attached: the summary's full pass, when there is one
            full = as_number(r.get("final_train_acc"))
            out.append((full, None if full is None else FULL_PASS))
    return out


def run_epochs(rows: pd.DataFrame) -> list[float | None]:
    """Epochs of its training subset each row's run trains, from its config (`judging.epochs`)."""
    return [epochs(r.get("iterations"), r.get("batch_size"), r.get("dataset"), r.get("fraction"))
            for _, r in rows.iterrows()]


def as_number(v) -> float | None:
    """A cell as a finite float; None for a missing cell (None or NaN: a column some runs lack) or text."""
    x = float(pd.to_numeric(v, errors="coerce"))
    return x if math.isfinite(x) else None


def range_runs(rows: pd.DataFrame) -> list[tuple[pd.Series, tuple[str, str]]]:
    """(row, `judging.range_run` outcome) of every range test among `rows` that ended with a stored verdict,
    judged on its curve too when `attach_curves` read it."""
    done = rows if rows.empty else rows[rows["status"].isin(["completed", "diverged"])]
    out = []
    for _, r in ([] if done.empty or LABEL_COL not in done else done.sort_values("run").iterrows()):
        if not isinstance(r.get(LABEL_COL), str):
            continue
        tol = as_number(r.get(TOL_COL))
        lrs = (as_number(r.get(c)) for c in (PEAK_LR_COL, MAX_LR_COL, SHARE_COL, FROM_LR_COL))
        out.append((r, range_run(r[LABEL_COL], *lrs, TOLERANCE if tol is None else tol)))
    return out


def _range_case(rows: pd.DataFrame) -> tuple[str, str]:
    """(label, detail) of one range-test experiment from its runs' stored verdicts and, when `attach_curves`
    read them, their curves (`judging.range_run`, `judging.range_case`)."""
    judged = range_runs(rows)
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


def fmt_value(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if is_num(v):
        v = float(v)
        if v != 0 and abs(v) < 1e-2:  # weight decays: 1e-4, not 0.0001
            mantissa, exp = f"{v:e}".split("e")
            return f"{float(mantissa):g}e{int(exp)}"
        return f"{v:g}"
    return str(v)


def claim_cases(claim: Claim, pool: pd.DataFrame) -> list[dict]:
    """Sub-cases of a better / not_better claim: label, the resolved A and B filters (None when a side cannot
    be resolved) and the filters to display for each side (resolved, or the fixed part of the group)."""
    splits = [None] if claim.split is None else axis_values(claim, claim.split, pool)
    out = []
    for v in splits:
        sub = pool if v is None else select_runs(pool, {claim.split: v})
        ra, rb = _resolve(claim.a, sub), _resolve(claim.b, sub)
        if ra is not None and rb is not None and ra == rb:
            ra = rb = None  # "@max" and "@min" fell on the same value: only one value was run
        extra = {} if v is None else {claim.split: v}
        base = dict(claim.where)
        shown = []
        for g, r in ((claim.a, ra), (claim.b, rb)):
            fixed = {k: x for k, x in g.where if x not in (MAX, MIN)}
            shown.append({**base, **extra, **(fixed if r is None else r)})
        out.append({"label": "all" if v is None else f"{claim.split} {fmt_value(v)}",
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
        same = [p for p in known if (p.bn_stats, p.bn_group, p.bn_replicas, p.version, p.dropout_at)
                == (k.bn_stats, k.bn_group, k.bn_replicas, k.version, k.dropout_at)]
        out.append(same[0] if k.precision == "unknown" and len(same) == 1 else k)
    return out


FRONTIER_EXPERIMENT = "frontier"  # the budget ladder (paper_figures.frontier): judged by its own section
# Scales whose runs mix converged and underfit lengths by design: the frontier's ladder starts where every schedule
# is underfit, and its sweeps' arms (batch 256 at CLR's 400 iterations: 10 epochs) may be. There a claim is judged
# only where its reference arm converged, so the noise is measured on converged configurations alone
# (`converged_seed_sd`); an underfit arm's own spread still enters through the pooled sd of the two arms.
CONVERGED_NOISE_SCALES = ("frontier",)


def converged_seed_sd(rows: pd.DataFrame, scale: str) -> SeedSd | None:
    """`judging.seed_sd` over the configurations of `rows` that converged: mean final training accuracy (TRAIN_ACC_COL,
    `attach_fit` when absent) >= superconv.health.UNDERFIT_BELOW. Underfit configurations are left out: there one
    seed may barely have started learning when the other has (the frontier's 1cycle at 100-200 iterations of the
    subset: 12-16 pp apart), a spread that says nothing about how far two converged runs land apart."""
    if rows.empty:
        return None
    fit = rows if TRAIN_ACC_COL in rows else attach_fit(rows, None)
    keys = [identity_key(r) for _, r in fit.iterrows()]
    ids = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    mean = pd.to_numeric(fit[TRAIN_ACC_COL], errors="coerce").groupby([ids[k] for k in keys]).transform("mean")
    return seed_sd(fit[(mean >= run_health.UNDERFIT_BELOW).to_numpy()], scale)


def scale_sds(summaries: pd.DataFrame) -> dict[str, SeedSd | None]:
    """The seed sd of every scale, each from that scale's runs of the study (`judging.seed_sd`): runs of
    experiments some claim judges (and, at the frontier scale, its ladder), at CONVERGED_NOISE_SCALES of their
    converged configurations only. Checks outside the study (precision_check: a 10-epoch ResNet-20 labelled
    paper scale because it sets its own lengths) say nothing about the noise of that scale's comparisons."""
    judged = {e for c in CLAIMS for e in c.experiments}
    if "experiment" in summaries:
        summaries = summaries[summaries["experiment"].isin(judged | {FRONTIER_EXPERIMENT})]
    out = {}
    for s, part in by_scale(summaries):
        if s in CONVERGED_NOISE_SCALES:
            out[s] = converged_seed_sd(part, s)
        else:
            out[s] = seed_sd(part[part["experiment"] != FRONTIER_EXPERIMENT] if "experiment" in part else part, s)
    return out


def judge(claim: Claim, summaries: pd.DataFrame) -> Verdict:
    """The verdict on one claim from the runs in `summaries` (pure: reads nothing else). Runs of different
    scales or protocols are never pooled: with more than one setting, each is judged alone (`Verdict.scales`).
    The noise of every comparison uses the seed sd of its scale, measured over the whole of `summaries`."""
    if claim.kind == "out_of_scope":
        return Verdict(NOT_RUN, claim.rule or "out of scope")
    pool = claim_pool(claim, summaries)
    parts = by_setting(pool, summaries)
    sds = scale_sds(summaries) if claim.kind in ("better", "not_better") and parts else {}
    if len(parts) > 1:
        per = tuple((name, _judge_pool(claim, p, sds.get(scale))) for name, scale, p in parts)
        return Verdict(combine([v.label for _, v in per]), "; ".join(f"{s}: {v.label} ({v.detail})" for s, v in per),
                       scales=per)
    return _judge_pool(claim, pool, sds.get(parts[0][1]) if parts else None)


def _judge_pool(claim: Claim, pool: pd.DataFrame, scale_sd: SeedSd | None = None) -> Verdict:
    """The verdict from `pool` (the claim's runs, all of one setting); `scale_sd`: the seed sd of its scale."""
    if claim.kind == "qualitative":
        if counted_runs(pool).empty:
            return Verdict(NOT_RUN, "no finished run")
        return Verdict(NOT_JUDGED, claim.rule or "qualitative claim: see the figure")
    if claim.kind == "range":
        cases = [(f"{claim.split} {e}", *_range_case(select_runs(pool, {"experiment": e}))) for e in claim.experiments]
        if len(cases) == 1:
            return Verdict(cases[0][1], cases[0][2], tuple(cases))
        return Verdict(*_combine(cases), tuple(cases))
    if claim.kind not in ("better", "not_better"):
        raise ValueError(f"claim {claim.id}: unknown kind {claim.kind!r}")
    cases = []
    for case in claim_cases(claim, pool):
        ra, rb = case["a"], case["b"]
        if claim.regime is not None:
            side, group = (ra, claim.a) if claim.regime.side == "a" else (rb, claim.b)
            rows = select_runs(pool, side) if side is not None else pool.iloc[0:0]
            gap = regime_gap(group.label, run_fits(rows))
            if gap is not None:
                cases.append((case["label"], NOT_TESTABLE, gap))
                continue
        if ra is None or rb is None:
            counted = len(counted_runs(pool))
            why = (f"fewer than two values of {claim.sweep} run" if claim.sweep is not None and counted
                   else f"no finished run of both {claim.a.label} and {claim.b.label}")
            cases.append((case["label"], NOT_RUN, why))
            continue
        cases.append((case["label"], *_compare(claim, select_runs(pool, ra), select_runs(pool, rb), scale_sd)))
    if claim.split is None:
        return Verdict(cases[0][1], cases[0][2], tuple(cases))
    return Verdict(*_combine(cases), tuple(cases))


def judge_all(summaries: pd.DataFrame | None, runs: pd.DataFrame | None = None
              ) -> tuple[pd.DataFrame, list[tuple[Claim, Verdict]]]:
    """(summaries with the range tests' curves attached, the verdict on every claim of `CLAIMS`): what the
    report and README.md's results table (`paper_figures.readme_table`) are both rendered from."""
    summaries = summaries if summaries is not None else pd.DataFrame(columns=["experiment", "status"])
    summaries = attach_fit(attach_estimates(attach_health(attach_curves(summaries, runs), runs), runs), runs)
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
        h = run_health.assess(_records(curve), run_health.num_classes_of(r.get("dataset")) or 10, r["status"],
                              as_number(r.get("final_train_acc")), range_test=r.get("job_type") == "range_test")
        if not known:
            out.at[i, HEALTH_COL] = ",".join(h.flags)
            out.at[i, HEALTH_SRC_COL] = "computed from metrics.csv by the report"
        flags = split_flags(out.at[i, HEALTH_COL])
        out.at[i, HEALTH_WHY_COL] = "; ".join(f"{f}: {h.why.get(f, 'stored in summary.json')}" for f in flags)
    return out


def attach_fit(summaries: pd.DataFrame, runs: pd.DataFrame | None) -> pd.DataFrame:
    """`summaries` with every finished training run's training accuracy (TRAIN_ACC_COL) and where it comes from
    (TRAIN_SRC_COL): the full pass of its summary (`final_train_acc`), or, for a run stored before the full pass
    existed, the mean per-batch accuracy of its last 5% of iterations from its metrics in `runs`
    (superconv.health.tail_train_acc), labelled so. Range tests get none: they end at their largest LR."""
    if summaries.empty or "experiment" not in summaries:
        return summaries
    out = summaries.copy()
    out[TRAIN_ACC_COL] = np.nan
    out[TRAIN_SRC_COL] = None
    out[TRAIN_SRC_COL] = out[TRAIN_SRC_COL].astype(object)
    tails = batch_train_acc(out, runs)
    for i, r in out.iterrows():
        if r.get("job_type") == "range_test" or r.get("status") != "completed":
            continue
        full = as_number(r.get("final_train_acc"))
        if full is not None:
            out.at[i, TRAIN_ACC_COL], out.at[i, TRAIN_SRC_COL] = full, FULL_PASS
        elif not np.isnan(tails.at[i]):
            out.at[i, TRAIN_ACC_COL], out.at[i, TRAIN_SRC_COL] = tails.at[i], TAIL
    return out


def batch_train_acc(summaries: pd.DataFrame, runs: pd.DataFrame | None) -> pd.Series:
    """Per row of `summaries`, the mean per-batch training accuracy of the run's last 5% of iterations (training
    mode: each batch normalised by its own statistics; superconv.health.tail_train_acc), NaN where no metrics.
    Beside the full pass (eval mode, the running statistics) it separates what the weights fit from what the
    running BN statistics let the test see."""
    curves = _run_rows(runs)
    out = pd.Series(np.nan, index=summaries.index, dtype=float)
    for i, r in summaries.iterrows():
        curve = curves.get((r.get("experiment"), r.get("run")))
        tail = None if curve is None else run_health.tail_train_acc(_records(curve))
        if tail is not None:
            out.at[i] = tail
    return out


def lag_reading(summaries: pd.DataFrame, runs: pd.DataFrame | None) -> pd.Series:
    """Per row of `summaries`, what superconv.health's `test_lags_train` rule reads in the run's metrics (its
    "why": the lagging evaluations, flagged or not), None where no metrics. A run below the flag's threshold
    can still have sat near chance for a while; this says for how long."""
    curves = _run_rows(runs)
    out = pd.Series([None] * len(summaries), index=summaries.index, dtype=object)
    for i, r in summaries.iterrows():
        curve = curves.get((r.get("experiment"), r.get("run")))
        if curve is not None:
            classes = run_health.num_classes_of(r.get("dataset")) or 10  # a summary without its dataset: CIFAR-10
            out.at[i] = run_health.rule_test_lags_train(_records(curve), classes)[1]
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
        tol = as_number(r.get(TOL_COL))
        curve = curve.sort_values("iteration")
        share, from_lr = high_share(curve["lr"].to_numpy(float), curve["test/acc"].to_numpy(float),
                                    TOLERANCE if tol is None else tol)
        out.loc[i, SHARE_COL], out.loc[i, FROM_LR_COL] = share, from_lr
    return out
