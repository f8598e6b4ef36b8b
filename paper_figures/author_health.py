"""The author's own runs through this project's health rules: which of the paper's numbers were hurt by BatchNorm
test statistics or a fall late in the run rather than by their schedule.

The author's 43 Caffe logs (github.com/lnsmith54/super-convergence, `Results/`) are read like our metrics.csv:
one row per logged iteration with its LR, training loss and per-batch training accuracy, and the test accuracy
where the log tested. `superconv.health.assess` then applies exactly the rules our runs get (`test_lags_train`,
`never_learns`, `still_improving`, `ends_below_peak`). Range tests are listed but not judged: they end at their
largest LR by design. The training accuracy shown is the mean per-batch accuracy of the last 5% of logged
iterations (`superconv.health.tail_train_acc`): Caffe logs have no full pass.

`implications` turns the flags of each claim's baseline log into sentences for the report, so what the report
says about the paper's comparisons follows from the same rules and numbers, not from text typed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from superconv import health

from .caffe_log import CaffeLog
from .claims import CLAIMS, Claim

__all__ = ["AuthorHealth", "log_rows", "is_training_log", "assess_log", "assess_logs", "implications", "section",
           "table"]

TRAINING_PREFIXES = ("clr", "lr35")  # the author's training runs; lrRange*, range2*, range3* are range tests


@dataclass(frozen=True)
class AuthorHealth:
    """One author log through the health rules."""

    log: str
    training: bool  # False: a range test (listed, not judged)
    final: float | None  # final / best test accuracy (fractions)
    peak: float | None
    train_acc: float | None  # mean per-batch training accuracy of the last 5% of logged iterations
    bn_fraction: float | None  # Caffe's BN moving_average_fraction in the log's net
    health: health.Health


def is_training_log(name: str) -> bool:
    return name.startswith(TRAINING_PREFIXES)


def log_rows(log: CaffeLog) -> list[dict]:
    """The log as metrics rows (`superconv.results.read_metrics`' keys; None where the log has no value)."""
    df = log.test.merge(log.train, on="iteration", how="outer").merge(log.lr, on="iteration", how="outer")
    df = df.sort_values("iteration", kind="mergesort")
    cols = ["iteration", "lr", "train/loss", "train/acc", "test/acc"]
    for c in cols:
        if c not in df:
            df[c] = None
    return df[cols].astype(object).where(df[cols].notna(), None).to_dict("records")


def num_classes(name: str) -> int:
    return 100 if "cifar100" in name.lower() else 10


def assess_log(name: str, log: CaffeLog) -> AuthorHealth:
    rows = log_rows(log)
    training = is_training_log(name)
    h = health.assess(rows, num_classes(name), range_test=not training)
    if not training:  # a range test: nothing is judged, but its numbers are listed
        h = health.Health((), {}, {"all": "a range test: it ends at its largest LR by design"})
    return AuthorHealth(name, training, log.final_test_acc, log.peak_test_acc, health.tail_train_acc(rows),
                        log.bn_moving_average_fraction, h)


def assess_logs(reference: Mapping[str, CaffeLog]) -> list[AuthorHealth]:
    return [assess_log(name, reference[name]) for name in sorted(reference)]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _flag_sentence(h: AuthorHealth, flag: str) -> str:
    why = h.health.why[flag]
    if flag == "test_lags_train":
        bn = "" if h.bn_fraction is None else f" (BN moving-average fraction {h.bn_fraction:g})"
        return (f"its test accuracy sat near chance while it fit its training batches{bn}: {why}; the running BN "
                "statistics used at test time lagged the weights")
    if flag == "ends_below_peak":
        return f"its reported number is a point after a fall: {why}"
    if flag == "still_improving":
        return (f"its test accuracy was still rising at its last LR while its training batches were fit at "
                f"{_pct(h.train_acc)}%: {why}")
    return f"{flag}: {why}"


def _baselines(claim: Claim) -> list[tuple[str, str]]:
    """(row label, log) of the claim's PC-LR logs (the baselines: schedule multistep in the ref's filter)."""
    out = []
    for ref in claim.refs:
        where = dict(ref.where)
        if ref.author and where.get("schedule") == "multistep":
            rest = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in ref.where
                             if k != "schedule")
            out.append((rest, ref.author))
    return out


def implications(checked: list[AuthorHealth]) -> list[str]:
    """One bullet per claim whose PC-LR baseline log is flagged: which row, what the rules found, and what it
    means for the comparison; and one that names the baselines that pass every check."""
    by_log = {h.log: h for h in checked}
    out, clean = [], []
    for claim in CLAIMS:
        for label, log in _baselines(claim):
            h = by_log.get(log)
            if h is None:
                continue
            where = f"{claim.artifact}{f' ({label})' if label else ''}"
            if not h.health.flags:
                clean.append(f"{where}: `{log}` {_pct(h.final)}%")
                continue
            sentences = "; ".join(_flag_sentence(h, f) for f in h.health.flags)
            bn = "test_lags_train" in h.health.flags
            out.append(f"**{where}**, baseline `{log}` (final {_pct(h.final)}%, best {_pct(h.peak)}%, training "
                       f"batches {_pct(h.train_acc)}%): {sentences}. "
                       + ("So the paper's gap on this row measures the baseline's BN test statistics as much as its "
                          "schedule: a baseline whose test-time statistics lag cannot show what its weights learned."
                          if bn else "So the paper's number for this baseline is not the run's result at its end."))
    if clean:
        out.append("Baselines that pass every check (their gap is not explained by these rules): "
                   + "; ".join(clean) + ".")
    return out


def section(reference: Mapping[str, CaffeLog] | None) -> list[str]:
    """The report's section: every author log that a rule flags, why, and what it means for the claims."""
    if reference is None:
        return ["No author logs were given: nothing to check."]
    checked = assess_logs(reference)
    training = [h for h in checked if h.training]
    flagged = [h for h in training if h.health.flags]
    lines = [f"The same health rules as our runs (`superconv.health`), applied to the author's {len(training)} "
             f"training logs ({len(checked) - len(training)} range tests are not judged: they end at their largest "
             f"LR by design). Training accuracy: mean per-batch accuracy of the last 5% of logged iterations. "
             f"{len(flagged)} of {len(training)} training logs are flagged:", "",
             "| log | final / best test % | training batches % | flags | why |", "|---|---|---|---|---|"]
    for h in flagged:
        why = "; ".join(f"{f}: {h.health.why[f]}" for f in h.health.flags)
        lines.append(f"| `{h.log}` | {_pct(h.final)} / {_pct(h.peak)} | {_pct(h.train_acc)} | "
                     f"{', '.join(h.health.flags)} | {why.replace('|', '/')} |")
    lines += ["", "What this means for the claims their numbers serve:", ""]
    lines += [f"- {x}" for x in implications(checked)]
    return lines


def table(reference: Mapping[str, CaffeLog]) -> pd.DataFrame:
    """Every log's numbers and flags as a frame (for tests and readers of the report's section)."""
    return pd.DataFrame([{"log": h.log, "training": h.training, "final": h.final, "peak": h.peak,
                          "train_acc": h.train_acc, "flags": ",".join(h.health.flags)}
                         for h in assess_logs(reference)])
