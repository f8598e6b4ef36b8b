"""README.md's results table, written between its two markers by `python -m paper_figures` (`make figures`).

    <!-- results-table:begin (written by `make figures` from results/: do not edit) -->
    | claim | scale | ours (mean ± sd, n; protocol) | paper | verdict |
    ...
    <!-- results-table:end -->

`render_table(summaries, verdicts, reference, report_link)` gives the block from `verdicts.judge_all` (the same
verdicts paper_figures/REPORT.md shows); `update_readme(readme, summaries, runs, reference, report)` judges,
renders and splices it into the README (`splice`), writing only when a byte changed.

Why it is written the way it is:
- The README's results are the report's: the same claims (`claims.CLAIMS`), the same runs and the same
  verdicts (`verdicts.judge_all`), shortened. Nothing in the block is typed in but the claims table (the
  paper's numbers and each claim's `headline`); every number comes from a run, a summary or an author log.
- One row per claim and setting (scale, and protocol within a scale: `verdicts.by_setting`, never pooled), for
  the claims the report judges from numbers ("A beats B", "A does not beat B", range tests) and only where
  at least one of the setting's runs ended (finished or diverged). Qualitative and out-of-scope claims, and
  claims nobody ran, have no row: the report lists them.
- The scale cell says what the runs did (network, iterations, batch, the epochs they make, hardware), read
  from their config; the "ours" cell the accuracies with n and the protocol (precision, BatchNorm rule); the
  verdict cell the verdict label and the numbers it rests on (difference against the noise, or why there is
  no verdict). The claim links to its section of the report, where the long form is.
- Only the block changes: everything outside the markers is someone else's prose and stays byte-identical.
  The README is read right before it is written, written atomically (temp file + rename), and not at all
  when the block is unchanged. Missing or repeated markers raise `ReadmeError` and nothing is written.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from superconv.atomic import write_if_changed

from . import frontier
from .caffe_log import CaffeLog
from .claims import Claim
from .judging import NOT_RUN, NOT_TESTABLE, comparison_noise
from .report import cell_text, column_values, epochs_text, iters_text, join_values, protocols_text, result_text
from .verdicts import (MAX_LR_COL, PEAK_LR_COL, SHARE_COL, Verdict, as_number, axis_values, by_setting, claim_cases,
                       claim_pool, counted_runs, fmt_value, judge_all, pct_text, range_runs, ref_for,
                       same_value, scale_sds, select_runs, side_of)

__all__ = ["BEGIN", "END", "FRONTIER_BEGIN", "FRONTIER_END", "splice_frontier", "HEADER", "ReadmeError", "check_readme", "render_table", "splice", "update_readme"]

BEGIN, END = "<!-- results-table:begin", "<!-- results-table:end -->"
FRONTIER_BEGIN, FRONTIER_END = "<!-- frontier-table:begin", "<!-- frontier-table:end -->"
HEADER = ("| claim | scale | ours (mean ± sd, n; protocol) | paper | verdict |", "|---|---|---|---|---|")
KINDS = ("better", "not_better", "range")  # the claims judged from numbers (the others have no verdict to show)


class ReadmeError(ValueError):
    """The README lacks a marker (or repeats one): the table has nowhere to go, nothing is written."""


# ------------------------------------------------------------------------------ the rows
def _sides(claim: Claim, part: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(label, runs) of each side of an "A vs B" claim without a sweep (all its sub-cases together); one
    unlabelled side of every run for sweeps and range tests."""
    if claim.a is None or claim.sweep is not None:
        return [("", part)]
    cases = claim_cases(claim, part)
    out = []
    for label, key in ((claim.a.label, "show_a"), (claim.b.label, "show_b")):
        rows = pd.concat([select_runs(part, c[key]) for c in cases])
        out.append((label, rows[~rows.index.duplicated()]))
    return out


def _regime(rows: pd.DataFrame) -> str:
    """ "150 it, batch 256 = 0.768 epochs" from the runs' config."""
    ep = epochs_text(rows)
    text = f"{iters_text(column_values(rows, 'iterations'))} it, batch {join_values(column_values(rows, 'batch_size'))}"
    return text + (f" = {ep}" if ep else "")


def _scale_cell(claim: Claim, scale: str, part: pd.DataFrame) -> str:
    """scale: network (data when not all of CIFAR-10), iterations, batch, epochs (per side when they differ);
    hardware. Read from the runs that ended."""
    counted = counted_runs(part)
    net = f"ResNet-{join_values(column_values(counted, 'depth'))}"
    data = {str(d) for d in column_values(counted, "dataset") if not pd.isna(d)}
    if data != {"cifar10"}:
        net += f", {join_values(data)}"
    fractions = [f for f in column_values(counted, "fraction") if not pd.isna(f) and not same_value(f, 1.0)]
    if fractions:
        net += f", fraction {join_values(fractions)}"
    sides = [(label, counted_runs(rows)) for label, rows in _sides(claim, part)]
    texts = [(label, _regime(rows)) for label, rows in sides if not rows.empty]
    if len(texts) == len(sides) and len({t for _, t in texts}) == 1:
        regime = texts[0][1]
    else:
        regime = "; ".join(f"{label} {t}" for label, t in texts)
    return f"{scale}: {net}; {regime}; {join_values(column_values(counted, 'device'))}"


def _ours_cell(claim: Claim, part: pd.DataFrame) -> str:
    """Each group's accuracies (mean ± sd, n; diverged and unfinished runs beside them), then the protocol."""
    if claim.kind == "range":
        groups = [(e, select_runs(part, {"experiment": e})) for e in claim.experiments]
        shown = [(e, rows) for e, rows in groups if not counted_runs(rows).empty]
        text = "; ".join((f"{e}: " if len(shown) > 1 else "") + result_text(rows, range_test=True) for e, rows in shown)
    elif claim.sweep is not None:
        values = [(v, select_runs(part, {claim.sweep: v})) for v in axis_values(claim, claim.sweep, part)]
        text = f"{claim.sweep} " + "; ".join(f"{fmt_value(v)}: {result_text(rows)}" for v, rows in values
                                              if not counted_runs(rows).empty)
    else:
        parts = []
        for case in claim_cases(claim, part):
            a, b = select_runs(part, case["show_a"]), select_runs(part, case["show_b"])
            if counted_runs(a).empty and counted_runs(b).empty:
                continue  # a sub-case nobody ran: the report lists it
            prefix = "" if claim.split is None else f"{case['label']}: "
            parts.append(f"{prefix}{claim.a.label} {result_text(a)} vs {claim.b.label} {result_text(b)}")
        text = "; ".join(parts)
    return f"{text}; {protocols_text(counted_runs(part))}"


def _author(reference: Mapping[str, CaffeLog] | None, stem: str | None, *, peak: bool = False) -> str | None:
    log = None if reference is None or stem is None else reference.get(stem)
    value = None if log is None else (log.peak_test_acc if peak else log.final_test_acc)
    return None if value is None else pct_text(value)


def _paper_cell(claim: Claim, part: pd.DataFrame, reference: Mapping[str, CaffeLog] | None) -> str:
    """The paper's number; the author's own re-run (his Caffe log) where one claim is one comparison."""
    extra = ""
    if claim.kind == "range":
        shown = [e for e in claim.experiments if not counted_runs(select_runs(part, {"experiment": e})).empty]
        peaks = [(e, _author(reference, getattr(ref_for(claim, {"experiment": e}), "author", None), peak=True))
                 for e in shown]
        peaks = [(e, p) for e, p in peaks if p is not None]
        if peaks:
            extra = "; author's log peak " + ", ".join((f"{e} " if len(shown) > 1 else "") + p for e, p in peaks)
    elif claim.split is None and claim.sweep is None and claim.a is not None:
        case = claim_cases(claim, part)[0]
        logs = [_author(reference, getattr(ref_for(claim, case[k]), "author", None)) for k in ("show_a", "show_b")]
        if all(x is not None for x in logs):
            extra = f" (author's logs: {logs[0]} vs {logs[1]})"
    return claim.paper + extra


def _comparison_reason(claim: Claim, case: dict, label: str, detail: str, part: pd.DataFrame,
                       scale_sd) -> str:
    """Why one comparison has its verdict, in a few words: the difference against the noise, the regime the
    runs miss, or what is missing."""
    rows_a, rows_b = select_runs(part, case["show_a"]), select_runs(part, case["show_b"])
    if label == NOT_TESTABLE and claim.regime is not None:
        return detail
    a, b = side_of(claim.a.label, rows_a), side_of(claim.b.label, rows_b)
    if not a.accs or not b.accs or case["a"] is None or case["b"] is None:
        return detail.split("; ")[0]
    d = sum(a.accs) / len(a.accs) - sum(b.accs) / len(b.accs)
    noise, _ = comparison_noise(a.accs, b.accs, scale_sd)
    what = (f"{claim.sweep} {fmt_value(case['a'][claim.sweep])} vs {fmt_value(case['b'][claim.sweep])}"
            if claim.sweep is not None else f"{a.label} vs {b.label}")
    return f"{what}: {d:+.2f} pp, " + ("noise unknown" if noise is None else f"noise {noise:.2f} pp")


def _range_reason(row: pd.Series, outcome: str, text: str) -> str:
    max_lr, peak_lr = as_number(row.get(MAX_LR_COL)), as_number(row.get(PEAK_LR_COL))
    share = as_number(row.get(SHARE_COL))
    at_end = max_lr is not None and peak_lr is not None and peak_lr >= max_lr - 1e-12
    if outcome == "high":
        if at_end and share is not None:
            return f"stays high (peak at the last LR, {max_lr:.3g}; high over the top {share:.0%} of the range)"
        return "stays high"
    if outcome == "rising":
        return f"still rising at LR {max_lr:.3g}" + ("" if share is None else f" (high over the top {share:.0%} only)")
    return text


def _verdict_cell(claim: Claim, v: Verdict, part: pd.DataFrame, scale_sd) -> str:
    """The verdict label (bold), then per sub-case that has runs the numbers it rests on."""
    cases = {c[0]: c for c in v.cases}
    reasons = []
    if claim.kind == "range":
        for e in claim.experiments:
            rows = select_runs(part, {"experiment": e})
            if counted_runs(rows).empty:
                continue
            found = Counter(_range_reason(r, *o) for r, o in range_runs(rows))
            text = "; ".join(t + (f" ({k} runs)" if k > 1 else "") for t, k in sorted(found.items())) \
                or cases[f"{claim.split} {e}"][2]
            reasons.append((f"{claim.split} {e}", e, text))
    else:
        for case in claim_cases(claim, part):
            if all(counted_runs(select_runs(part, case[side])).empty for side in ("show_a", "show_b")):
                continue
            _, label, detail = cases[case["label"]]
            reasons.append((case["label"], case["label"],
                            _comparison_reason(claim, case, label, detail, part, scale_sd)))
    several = len(reasons) > 1 or claim.split not in (None, "experiment")
    out = []
    for key, name, text in reasons:
        label = cases[key][1] if key in cases else v.label
        head = (f"{name}: " if several else "") + (f"{label}, " if label != v.label else "")
        out.append(head + text)
    return f"**{v.label}**" + (": " + "; ".join(out) if out else "")


def render_table(summaries: pd.DataFrame, verdicts: Sequence[tuple[Claim, Verdict]],
                 reference: Mapping[str, CaffeLog] | None = None, report_link: str = "paper_figures/REPORT.md",
                 converged: Mapping[str, tuple[str, str]] | None = None) -> str:
    """The block between the markers (pure): the header and one row per judged claim and setting with runs.
    `summaries` and `verdicts` as `verdicts.judge_all` gives them; `report_link`: the report, relative to the
    README (each claim links to its section); `converged`: claim id -> (label, detail) of the budget claims
    judged at converged lengths (`frontier.converged_claims`), each a row after the claim's own, once it has
    both arms."""
    lines = list(HEADER)
    sds = scale_sds(summaries) if not summaries.empty else {}
    for claim, v in verdicts:
        if claim.kind not in KINDS:
            continue
        settings = by_setting(claim_pool(claim, summaries), summaries)
        per = dict(v.scales) if v.scales else {name: v for name, _, _ in settings}
        for name, scale, part in settings:
            if counted_runs(part).empty:
                continue
            cells = [f"[{claim.artifact}]({report_link}#{claim.id}): {claim.headline or claim.text}",
                     _scale_cell(claim, scale, part), _ours_cell(claim, part), _paper_cell(claim, part, reference),
                     _verdict_cell(claim, per[name], part, sds.get(scale))]
            lines.append("| " + " | ".join(cell_text(c) for c in cells) + " |")
        label, detail = (converged or {}).get(claim.id, (NOT_RUN, ""))
        if label != NOT_RUN:
            where, _, numbers = detail.partition(": ")
            cells = [f"[{claim.artifact}]({report_link}#{claim.id}): {claim.headline or claim.text}",
                     f"frontier, at converged lengths: {where}", numbers, claim.paper, f"**{label}**"]
            lines.append("| " + " | ".join(cell_text(c) for c in cells) + " |")
    if len(lines) == len(HEADER):
        lines.append("| no claim has a run that ended yet | | | | |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ the README
def splice(text: str, block: str, name: str = "README.md", begin: str = BEGIN, end: str = END) -> str:
    """`text` with everything between the line holding `begin` and the `end` marker replaced by `block`; the
    marker lines and all outside them unchanged. ReadmeError (one line, naming `name` and the marker) when a
    marker is missing or repeated."""
    what = "the results table" if begin == BEGIN else "the frontier table"
    for marker in (begin, end):
        n = text.count(marker)
        if n != 1:
            shown = f"{begin} ... -->" if marker == begin else end
            raise ReadmeError(f"{name}: {'no' if n == 0 else f'{n} copies of the'} marker '{shown}' "
                              f"({what} goes between '{begin} ... -->' and '{end}'); nothing written")
    start = text.index(begin)
    line_end = text.find("\n", start)
    stop = text.index(end)
    if line_end < 0 or stop <= line_end:
        raise ReadmeError(f"{name}: marker '{end}' must follow the line of '{begin} ... -->'; nothing written")
    return text[:line_end + 1] + block + text[stop:]


def splice_frontier(text: str, block: str, name: str = "README.md") -> str:
    """The frontier block (`paper_figures.frontier.readme_block`) spliced in where the README has its markers;
    a README with neither marker is left as it is (a fork's README need not show the frontier)."""
    if FRONTIER_BEGIN not in text and FRONTIER_END not in text:
        return text
    return splice(text, block, name, FRONTIER_BEGIN, FRONTIER_END)


def check_readme(readme: Path) -> None:
    """ReadmeError (or FileNotFoundError) now, before any work, when `readme` has no place for the table."""
    text = Path(readme).read_bytes().decode("utf-8")
    splice_frontier(splice(text, "", str(readme)), "", str(readme))


def update_readme(readme: Path, summaries: pd.DataFrame, runs: pd.DataFrame | None,
                  reference: Mapping[str, CaffeLog] | None, report: Path) -> bool:
    """Judge the claims (`verdicts.judge_all`), render the table and splice it into `readme`, written atomically
    and only when its bytes change; True when it was written. ReadmeError (nothing written) on bad markers,
    FileNotFoundError when there is no README."""
    readme = Path(readme)
    summaries, verdicts = judge_all(summaries, runs)
    link = Path(os.path.relpath(Path(report).resolve(), readme.resolve().parent)).as_posix()
    block = render_table(summaries, verdicts, reference, link, frontier.converged_verdicts(summaries, runs))
    old = readme.read_bytes()  # read right before writing: others edit the rest of the file
    text = splice(old.decode("utf-8"), block, str(readme))
    new = splice_frontier(text, frontier.readme_block(summaries, runs), str(readme)).encode("utf-8")
    if new == old:
        return False
    write_if_changed(readme, new)
    return True
