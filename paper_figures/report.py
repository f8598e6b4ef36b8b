"""The reproduction report: for every claim of the paper, its number, the author's re-run, ours, a verdict.

    python -m paper_figures     (make figures: figures, then this; the author's runs from paper_figures/author_runs/)

The rendering third of the report. `build_report(summaries, reference, figures, out_path, command, runs=runs)`
writes `paper_figures/REPORT.md` from `paper_figures.load.load_summaries(results)` and `load_runs(results)` alone
(nothing is trained, nothing typed in): one table per claim of `paper_figures.claims.CLAIMS` (the claims, as
data), with the verdict `paper_figures.verdicts.judge_all` gives (the judging: pure functions of the runs, whose
rules are `paper_figures.judging`). README.md's results table (`paper_figures.readme_table`) shows the same
verdicts, shortened.

Why it is written the way it is:
- Every number in the report comes from a results summary, a run's metrics or an author log: the "author
  re-run" column is `reference[stem].final_test_acc`, never a typed-in value; without a reference folder it
  shows "-". The paper column is the only text typed in (it is what the paper printed). Each scale's network,
  batch, lengths, epochs, precision and hardware are described from its runs' config and summary.
- Only runs with status "completed" (and a final accuracy) are accuracy numbers. A diverged run is a result
  too, but a failure, not an accuracy: it is counted and shown beside the mean ("1 diverged"), a group
  whose runs all diverged loses its comparison, and a diverged run on the side the claim favours caps the
  verdict at "partly". Unfinished runs (no DONE) never count; the cell says they exist.
- Runs of different scales or protocols are never pooled: `verdicts.judge` splits a claim's runs by scale and, within
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
from pathlib import Path

import numpy as np
import pandas as pd

from superconv import health as run_health
from superconv.atomic import write_if_changed

from . import author_health, frontier
from .caffe_log import CaffeLog
from .claims import BUDGET, CLAIMS, Claim
from .controls import control_text
from .judging import (HIGH_SHARE, INCONCLUSIVE, INDICATIVE, MIN_N, NOT_RUN, NOT_TESTABLE, STILL_RISING, TAIL,
                      protocol_of, split_flags)
from .load import scale_labels, scales_in
from .verdicts import (CONVERGED_NOISE_SCALES, ESTIMATE_PREFIX, HEALTH_COL, HEALTH_SRC_COL, HEALTH_WHY_COL,
                       LABEL_COL, PEAK_COL, PEAK_LR_COL, Verdict, as_number, axis_values, by_scale, by_setting,
                       claim_cases, claim_pool, counted_runs, diverged_runs, finished_runs, fmt_value, judge_all,
                       pct_text, ref_for, run_epochs, run_fits, run_flags, same_value, scale_sds, select_runs,
                       unfinished_runs)

__all__ = ["build_report", "render_report", "decision_rule", "cell_text", "result_text"]

# ------------------------------------------------------------------------------ table cells
def join_values(values) -> str:
    vals = sorted({fmt_value(v.item() if isinstance(v, np.generic) else v) for v in values if not pd.isna(v)})
    return "/".join(vals) if vals else "?"


def iters_text(values) -> str:
    out = set()
    for v in values:
        if pd.isna(v):
            continue
        v = int(v)
        out.add((v, f"{v // 1000}k" if v >= 1000 and v % 1000 == 0 else (f"{v / 1000:g}k" if v >= 1000 else str(v))))
    return "/".join(s for _, s in sorted(out)) if out else "?"


def column_values(df: pd.DataFrame, c: str) -> list:
    return df[c].tolist() if c in df else []


def epochs_text(df: pd.DataFrame) -> str:
    """ "0.768 epochs" / "0.384-3.84 epochs" from the runs' config (`judging.epochs`); "" when unknown."""
    e = [x for x in run_epochs(df) if x is not None]
    if not e:
        return ""
    lo, hi = f"{min(e):.3g}", f"{max(e):.3g}"
    return f"{lo} epochs" if lo == hi else f"{lo}-{hi} epochs"


def protocols_text(df: pd.DataFrame) -> str:
    """The runs' protocols (precision, BatchNorm rule, protocol version: `judging.Protocol.text`)."""
    return "/".join(sorted({protocol_of(r).text() for _, r in df.iterrows()})) or "?"


def _protocol(df: pd.DataFrame) -> str:
    """scale; network, data, batch, iterations (epochs); precision and BN; hardware, from the runs' own columns."""
    net = f"ResNet-{join_values(column_values(df, 'depth'))} {join_values(column_values(df, 'variant'))}"
    data = join_values(column_values(df, "dataset"))
    fr = [f for f in column_values(df, "fraction") if not pd.isna(f) and not same_value(f, 1.0)]
    if fr:
        data += f" x{join_values(fr)}"
    aug = join_values(column_values(df, "augment"))
    ep = epochs_text(df)
    batch = join_values(column_values(df, "batch_size"))
    return (f"{join_values(column_values(df, 'scale'))}; {net}, {data} (aug {aug}), batch {batch}, "
            f"{iters_text(column_values(df, 'iterations'))} it{f' = {ep}' if ep else ''}; {protocols_text(df)}; "
            f"{join_values(column_values(df, 'device'))}")


def _ours(rows: pd.DataFrame, *, range_test: bool = False, metric: str | None = None) -> str:
    """The "ours" cell: `result_text` (or, for a claim about a run metric, `_estimates`), then the scale and protocol
    of the runs that ended (`_protocol`)."""
    counted = counted_runs(rows)
    head = _estimates(rows) if metric == "lr_estimate" else result_text(rows, range_test=range_test)
    return head + ("" if counted.empty else f"; {_protocol(counted)}")


def _estimates(rows: pd.DataFrame) -> str:
    """Each run's LR estimate at its start, middle and end, and its peak (`attach_estimates`), then the final
    accuracy as `result_text` gives it; NOT_RUN when no run ended."""
    counted = counted_runs(rows)
    if counted.empty:
        return result_text(rows)
    parts = []
    for _, r in counted.sort_values("run").iterrows():
        name = "" if len(counted) == 1 else f"{r['run']}: "
        if as_number(r.get(ESTIMATE_PREFIX + "end")) is None:
            parts.append(f"{name}no lr_estimate values (train.lr_estimate_every off)")
            continue
        e = {k: as_number(r.get(ESTIMATE_PREFIX + k)) for k in ("start", "middle", "end", "peak")}
        it = {k: int(as_number(r.get(ESTIMATE_PREFIX + k + "_it"))) for k in ("start", "middle", "end", "peak")}
        parts.append(f"{name}start {e['start']:.3g} (it {it['start']}), middle {e['middle']:.3g} (it {it['middle']}),"
                     f" end {e['end']:.3g} (it {it['end']}), peak {e['peak']:.3g} (it {it['peak']})")
    return "LR estimate: " + "; ".join(parts) + f"; final accuracy {result_text(rows)}"


def _missing_cell(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def result_text(rows: pd.DataFrame, *, range_test: bool = False) -> str:
    """What a group's runs gave: mean ± sd of the finished runs' final accuracy (n), diverged and unfinished runs
    counted beside it; for range tests each run's stored verdict and peak. NOT_RUN when no run ended."""
    fin, div, unf = finished_runs(rows), diverged_runs(rows), unfinished_runs(rows)
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
                at = f" at LR {float(plr):.3g}" if plr is not None and not pd.isna(plr) else ""
                s += f", peak {pct_text(float(peak))}%" + at
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
        head += train_text(fin)
        if len(div):
            head += f", {len(div)} diverged"
    return head + flagged + tail


def train_text(fin: pd.DataFrame) -> str:
    """ ", train 75.31% (last 5% of batches)": the mean training accuracy of finished runs (`attach_fit`), with
    its source; "" when none is known (range tests, runs without metrics)."""
    fits = [(a, src) for a, src in run_fits(fin) if a is not None]
    if not fits:
        return ""
    sources = sorted({str(src) for _, src in fits})
    known = "" if len(fits) == len(fin) else f", {len(fits)} of {len(fin)} runs"
    return f", train {100 * sum(a for a, _ in fits) / len(fits):.2f}% ({', '.join(sources)}{known})"


def _flag_text(counted: pd.DataFrame) -> str:
    """ " [flagged: still_improving]" (one run) / " [flagged: test_lags_train 1 of 2]": the health flags of the runs
    behind a number (superconv.health), diverged left out (the cell counts diverged runs already)."""
    cells = run_flags(counted)
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
    out = f"{pct_text(final)} ({stem})"
    if peak and log.peak_test_acc is not None:
        out = f"{pct_text(final)}, peak {pct_text(log.peak_test_acc)} ({stem})"
    return out


def cell_text(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(claim: Claim, verdict: Verdict, pool: pd.DataFrame, reference) -> list[str]:
    lines = ["| case | paper | author re-run | ours | verdict |", "|---|---|---|---|---|"]
    is_range = claim.kind == "range" or any(e.startswith("range_") for e in claim.experiments)

    def row(label, where, verdict_cell):
        ref = ref_for(claim, where)
        cells = [label, ref.paper if ref else "-",
                 _author(reference, ref.author if ref else None, peak=claim.kind in ("range", "qualitative")),
                 _ours(select_runs(pool, where), range_test=is_range, metric=claim.metric), verdict_cell]
        lines.append("| " + " | ".join(cell_text(c) for c in cells) + " |")

    by_case = {c[0]: c for c in verdict.cases}
    if claim.kind == "out_of_scope":
        lines.append(f"| {cell_text(claim.artifact)} | {cell_text(claim.paper)} | - | {NOT_RUN} | "
                     f"{NOT_RUN} (out of scope) |")
    elif claim.kind == "range" or (claim.kind == "qualitative" and claim.split):
        for e in claim.experiments:
            c = by_case.get(f"{claim.split} {e}")
            row(e, {"experiment": e}, f"{c[1]}: {c[2]}" if c else verdict.label)
    elif claim.kind == "qualitative":
        row(claim.artifact, dict(claim.where), verdict.label)
    elif claim.sweep is not None:
        marks = {}
        for case in claim_cases(claim, pool):
            if case["a"] is not None:
                marks[fmt_value(case["a"][claim.sweep])] = f"A ({claim.a.label})"
                marks[fmt_value(case["b"][claim.sweep])] = f"B ({claim.b.label})"
        for v in axis_values(claim, claim.sweep, pool):
            row(f"{claim.sweep} {fmt_value(v)}", {**dict(claim.where), claim.sweep: v}, marks.get(fmt_value(v), ""))
    else:
        for case in claim_cases(claim, pool):
            c = by_case[case["label"]]
            suffix = "" if claim.split is None else f", {case['label']}"
            row(claim.a.label + suffix, case["show_a"], f"{c[1]}: {c[2]}" if claim.split else "")
            row(claim.b.label + suffix, case["show_b"], "")
    lines.append(f"| **verdict** | | | | **{verdict.label}**: {cell_text(verdict.detail)} |")
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
    rule += (f"; needs n >= {MIN_N} runs per side (else indicative); noise = the larger of the pooled and the "
             "scale's seed sd")
    if claim.split:
        rule += f"; judged per {claim.split}"
    if claim.regime is not None:
        side = a if claim.regime.side == "a" else b
        rule += (f"; testable only where the {side} runs converged (mean final training accuracy >= "
                 f"{run_health.UNDERFIT_BELOW:.0%})")
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
    return _bullets([
        """**Finished runs only.** A run counts as an accuracy number only when it finished (status `completed`, a
        DONE file and a final test accuracy). Unfinished runs are never counted (the cell says how many exist). A
        **diverged** run is a result but not an accuracy: it is shown beside the mean ("1 diverged"); a group whose
        runs all diverged counts as the worse side of its comparison; a diverged run on the side the claim favours
        caps "reproduced" at "partly".""",
        """**Ours** = mean ± sd of the final test accuracy over the finished runs (seeds) of a group, in %, n runs,
        and beside it ("train") the mean final training accuracy of the same runs with its source, then the scale, the protocol (network, data, batch, iterations and the epochs they make, precision,
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
        f"""**Convergence.** A claim about a CLR run ({budget}, and the sweeps on the CLR run) is judged only where
        its reference arm (the CLR run the claim is about) converged: the mean final training accuracy of its runs
        at or above {run_health.UNDERFIT_BELOW:.0%} (`underfit` below; docs/PROTOCOL.md, "Convergence"). The
        training accuracy is the full pass over the run's own training set in eval mode each run makes at its
        end, or, for runs stored before that existed, the mean per-batch training accuracy of their last 5% of
        iterations (labelled "{TAIL}"). Otherwise the claim is **{NOT_TESTABLE}**: underfit, with that number;
        the runs are still shown. Other arms are data whatever they did (a weight decay that makes its run
        collapse is the claim's point).""",
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
- Our CIFAR-10 was rebuilt from JPEG-compressed images (docs/PROTOCOL.md §3), not the official binary files; the
  compression costs a few points of test accuracy, so compare directions and gaps, not absolute values.
- Only `paper` scale runs the paper's iteration counts and batch sizes; the network, batch, lengths and epochs
  of every scale are listed under Scales, read from its runs. Smaller scales are about the direction of an
  effect, not the paper's absolute numbers.
- The paper used Caffe on 8 GPUs with a total batch of 1000; hardware, batch and BN momentum change the
  outcome (docs/PROTOCOL.md §8: independent reproductions disagree). The hardware of each run is in its cell.
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


def _cost_text(part: pd.DataFrame) -> str:
    """"; 25.3M training images in 22.6 h of run time": what a scale cost, from its runs' summaries (run time: each
    run's wall time, summed; runs that ran side by side count each; time lost to an interruption after the last
    checkpoint is not in it). Empty where the summaries hold neither."""
    parts = []
    images = pd.to_numeric(part.get("images_seen"), errors="coerce") if "images_seen" in part else None
    if images is not None and images.notna().any():
        total = float(images.sum())
        parts.append(f"{total / 1e6:.2f}M training images" if total >= 1e6 else f"{total:,.0f} training images")
    wall = pd.to_numeric(part.get("wall_s"), errors="coerce") if "wall_s" in part else None
    if wall is not None and wall.notna().any():
        parts.append(f"{float(wall.sum()) / 3600:.1f} h of run time (the runs' wall times summed)")
    return f"; {' in '.join(parts)}" if parts else ""


def _scale_lines(summaries: pd.DataFrame) -> list[str]:
    """One paragraph per scale of the store, every number read from its runs: runs, hardware, cost, networks, per
    schedule the batch sizes, iterations and epochs, the protocols, and the seed sd the verdicts use
    (`verdicts.scale_sds`: of converged configurations only where a scale mixes converged and underfit lengths)."""
    if summaries.empty:
        return ["No runs yet."]
    out = []
    sds = scale_sds(summaries)
    for scale, part in by_scale(summaries):
        nets = ", ".join(f"ResNet-{join_values([d])} {join_values(column_values(g, 'variant'))}"
                         for d, g in part.groupby("depth", sort=True)) if "depth" in part else "?"
        sched = []
        for name, g in part.groupby(part["schedule"].astype(str) if "schedule" in part else [""] * len(part),
                                    sort=True):
            ep = epochs_text(g)
            batch, iters = join_values(column_values(g, "batch_size")), iters_text(column_values(g, "iterations"))
            sched.append(f"{name}: batch {batch}, {iters} it"
                         + (f" = {ep}" if ep else " (epochs unknown: no known training-set size)"))
        protos = {}
        for _, r in part.iterrows():
            t = protocol_of(r).text()
            protos[t] = protos.get(t, 0) + 1
        sd = sds.get(scale)
        which = "converged configuration" if scale in CONVERGED_NOISE_SCALES else "configuration"
        sd_text = (f"{sd.sd:.2f} pp, from {sd.groups} {which}{'s' if sd.groups != 1 else ''} run with >= 2 "
                   f"seeds ({sd.df} degrees of freedom)" if sd is not None
                   else f"not measurable (no {which} of the study finished with 2 seeds)")
        if scale in CONVERGED_NOISE_SCALES:
            sd_text += (" (underfit configurations left out: there one seed may not have started learning when "
                        "the other has)")
        devices = join_values(column_values(part, "device"))
        out.append(f"- **{scale}**: {len(part)} run{'s' if len(part) != 1 else ''} on {devices}{_cost_text(part)}; "
                   f"{nets}; {'; '.join(sched)}. Protocols: "
                   + ", ".join(f"{t} ({n} run{'s' if n != 1 else ''})" for t, n in sorted(protos.items()))
                   + f". Seed sd: {sd_text}.")
    return out


CONVERGED = "at converged lengths (frontier)"  # the label of a budget claim judged on the frontier's runs


def _summary_cell(claim: Claim, v: Verdict, summaries: pd.DataFrame, several: bool) -> str:
    """The summary's verdict cell: the verdict of each setting ("paper: not run yet; mini: reproduced") when the
    claim's runs span several; "mini: reproduced" when the store holds several settings but this claim's runs
    one; else the bare label."""
    if v.scales:
        return "; ".join(f"{s}: {sv.label}" for s, sv in v.scales)
    if several and claim.kind != "out_of_scope":
        names = [n for n, _, _ in by_setting(claim_pool(claim, summaries), summaries)]
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
    # the budget claims judged again at converged lengths, from the frontier's runs (its own section), once any
    converged = frontier.converged_verdicts(summaries, runs)
    out += ["", "## Summary", "", "| claim | paper artifact | verdict |", "|---|---|---|"]
    out += [f"| [{c.id}](#{c.id}) | {cell_text(c.artifact)} | {_summary_cell(c, v, summaries, several)}"
            + (f"; {CONVERGED}: {converged[c.id][0]}" if c.id in converged else "") + " |" for c, v in verdicts]
    out += ["", "## The frontier", ""] + frontier.report_section(summaries, runs)
    out += ["", "## Scales", "", "What each scale ran, read from its runs' config.yaml and summary.json (epochs = "
            "iterations x batch / training images of the subset), and the seed sd its comparisons use as noise:", ""]
    out += _scale_lines(summaries)
    out += ["", "## Verdict rules", "", _rules(CLAIMS).rstrip() + ("\n" + SCALE_RULE.rstrip() if several else ""),
            "", "## Claims", ""]
    for claim, v in verdicts:
        pool = claim_pool(claim, summaries)
        out += [f"### {claim.id}", "", f"**{claim.artifact}**: {claim.text}. Paper: {claim.paper}."]
        extra = []
        if claim.experiments:
            extra.append("experiments " + ", ".join(f"`{e}`" for e in claim.experiments))
            extra += control_text(claim.experiments)
        if claim.where:
            extra.append("runs with " + ", ".join(f"{k} = {fmt_value(val)}" for k, val in claim.where))
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
        if claim.id in converged:
            label, detail = converged[claim.id]
            out += ["", f"{CONVERGED.capitalize()} ([The frontier](#the-frontier)): **{label}**: {detail}."]
        if not v.scales:
            out += [""] + _table(claim, v, pool, reference) + [""]
            continue
        out.append("")
        for (name, sv), (_, scale, part) in zip(v.scales, by_setting(pool, summaries)):
            title = f"{scale} scale" + name[len(scale):]
            out += [f"#### {claim.id} at {title}", ""] + _table(claim, sv, part, reference) + [""]
    known = {e for c in CLAIMS for e in c.experiments} | {frontier.EXPERIMENT}  # the frontier: its own section
    others = sorted(set(summaries["experiment"].dropna().astype(str)) - known) if n and "experiment" in summaries else []
    if others:
        counts = summaries["experiment"].value_counts().to_dict()
        out += ["Results that no claim judges (see their figures): "
                + ", ".join(f"`{e}` ({counts[e]} run{'s' if counts[e] != 1 else ''})" for e in others) + ".", ""]
    out += ["## Run health", ""] + _health_lines(summaries) + [""]
    out += ["## The author's runs through the same checks", ""] + author_health.section(reference)
    out += ["", "## Figures", ""]
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
