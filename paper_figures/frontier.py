"""The accuracy-versus-budget frontier: final accuracy against training budget for CLR, 1cycle and PC-LR, the
speedup factor of the cyclic schedules over PC-LR, and the paper's budget claims judged at converged lengths.

The paper's central claim is about budget ("CLR reaches PC-LR's accuracy with ~8x fewer iterations"). One
budget pair answers it with a yes or no that flips with the pair chosen; the frontier is the quantity behind it.
Read from the `frontier` experiment's runs (experiments/suites.py, `frontier()`: ResNet-20, batch 1000, a budget
ladder per schedule and training-set fraction):

- **Frontier** (`frontier_table`): per fraction, schedule and budget (iterations of batch 1000), the mean and sd
  of the final test accuracy over seeds, and the mean final training accuracy with its source.
- **Speedup factor** (`speedups`): at each CLR and 1cycle budget B, the PC-LR budget b* whose accuracy,
  interpolated linearly on log-budget between the two ladder points around it, equals the cyclic run's mean
  accuracy; the factor is b* / B. The PC-LR curve is crossed at its first rung at or above the target. Outside
  the ladder the factor is a bound: "< b_min / B" when PC-LR's smallest budget already reaches the target,
  "> b_max / B" when its largest does not. The interval pairs every seed of the cyclic run with every PC-LR
  seed's own curve; n = the seeds on each side. PC-LR's curves are read on the rungs that all its seeds
  finished (`baseline_ladder`), so a rung that has landed for one seed only waits for the other.
- **Claims at converged lengths** (`converged_claims`): Table 1's 10k-image row is the first CLR budget whose
  runs converged (mean final training accuracy >= superconv.health.UNDERFIT_BELOW) against PC-LR at 8x that
  budget; Fig 1a is the same on the full training set, and our equal-budget extension of it compares CLR with
  PC-LR at that same budget. Judged with the report's own rule
  (`paper_figures.judging.compare`) and, as noise, the frontier scale's seed sd: that of its converged
  configurations, the ladder's and the sweeps' (`paper_figures.verdicts.converged_seed_sd`).
- **BN horizon of the baseline** (`bn_horizon_table`): PC-LR at the top of the 10k-subset ladder with its BN
  average scaled with the run (the frontier's) beside the paper's unscaled Caffe fraction 0.999 (the
  `bn_horizon` experiment at this scale), so the report can say whether the author's baseline failure (test
  near chance while the training batches fit) appears at this length: it reads the run-health flag
  `test_lags_train` (superconv.health), the rule that finds that failure in the author's own logs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.suites import FRONTIER_FULL, FRONTIER_SUBSET_PCLR
from superconv.health import UNDERFIT_BELOW

from . import style
from .judging import NOT_RUN, NOT_TESTABLE, Side, compare, fit_text
from .verdicts import (FRONTIER_EXPERIMENT, TRAIN_ACC_COL, TRAIN_SRC_COL, attach_fit, batch_train_acc, lag_reading,
                       converged_seed_sd, finished_runs, scale_sds)

__all__ = ["EXPERIMENT", "SCHEDULES", "Factor", "frontier_table", "crossing", "speedups", "converged_claims",
           "bn_horizon_table", "draw", "report_section", "readme_block"]

EXPERIMENT = FRONTIER_EXPERIMENT
HORIZON_EXPERIMENT = "bn_horizon"  # the PC-LR run at the paper's unscaled BN fraction (experiments/suites.py)
LAG_FLAG = "test_lags_train"  # superconv.health's flag for the author's failure: test near chance, batches fit
SCHEDULES = {"clr": "CLR", "one_cycle": "1cycle", "multistep": "PC-LR"}  # schedule.name -> label
BASELINE = "multistep"
BUDGET_RATIO = 8  # the paper's: CLR 10k iterations against PC-LR 80k
# The claims judged on the frontier's runs: (fraction, PC-LR budget / CLR budget, name, claim id). Fig 1a at equal
# budget is our extension (the mini study's `fig1a_equal_budget`), judged here where CLR converged.
CONVERGED_CLAIMS = ((0.2, BUDGET_RATIO, "Table 1, 10k images", "table1_fraction"),
                    (1.0, BUDGET_RATIO, "Fig 1a, full training set", "fig1a_clr_vs_pclr"),
                    (1.0, 1, "Fig 1a extended (ours), equal budget, full training set", "fig1a_equal_budget"))
FRACTIONS = sorted({f for f, *_ in CONVERGED_CLAIMS})  # the figure's panels
# PC-LR's planned budgets per fraction: a claim whose 8x budget lies outside them says so instead of "yet"
PCLR_LADDER = {0.2: FRONTIER_SUBSET_PCLR, 1.0: FRONTIER_FULL}


def frontier_runs(summaries: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The finished training runs of the frontier experiment at its own scale, with their training accuracy
    (`attach_fit`). `make reproduce SCALE=paper` runs the frontier experiment too, at the paper's lengths and batch:
    those runs are not points of this ladder."""
    if summaries.empty or "experiment" not in summaries:
        return summaries.iloc[0:0]
    rows = summaries[summaries["experiment"] == EXPERIMENT]
    if "scale" in rows:
        rows = rows[rows["scale"] == EXPERIMENT]
    if TRAIN_ACC_COL not in rows:
        rows = attach_fit(rows, runs)
    return finished_runs(rows)


def frontier_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per fraction x schedule x budget: n, test mean / sd (fractions), train mean, its source."""
    cols = ["fraction", "schedule", "iterations", "images", "n", "test_mean", "test_sd", "train_mean", "train_source"]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for (fraction, schedule, it), g in rows.groupby(["fraction", "schedule", "iterations"], sort=True):
        test = g["final_test_acc"].astype(float)
        train = pd.to_numeric(g[TRAIN_ACC_COL], errors="coerce").dropna()
        out.append({"fraction": float(fraction), "schedule": schedule, "iterations": int(it),
                    "images": int(it) * int(g["batch_size"].iloc[0]), "n": len(test), "test_mean": test.mean(),
                    "test_sd": test.std(ddof=1) if len(test) > 1 else float("nan"),
                    "train_mean": train.mean() if len(train) else float("nan"),
                    "train_source": ", ".join(sorted(set(g[TRAIN_SRC_COL].dropna().astype(str))))})
    return pd.DataFrame(out, columns=cols)


@dataclass(frozen=True)
class Factor:
    """A speedup factor: `value` with `kind` "=" (interpolated), "<" or ">" (a bound: outside the ladder)."""

    value: float
    kind: str = "="

    def text(self) -> str:
        return f"{self.value:.2g}x" if self.kind == "=" else f"{self.kind} {self.value:.2g}x"


def crossing(budgets, accs, target: float) -> Factor:
    """The budget at which a frontier (`budgets` ascending, `accs` its accuracies) first reaches `target`,
    interpolated linearly on log-budget; a bound (Factor kind "<" / ">") outside the ladder. Not divided by B."""
    b, a = np.asarray(budgets, float), np.asarray(accs, float)
    if len(b) == 0:
        raise ValueError("an empty frontier has no crossing")
    hit = np.nonzero(a >= target - 1e-12)[0]  # a target a rounding error above a rung is on it
    if len(hit) == 0:
        return Factor(float(b[-1]), ">")
    i = int(hit[0])
    if math.isclose(a[i], target, rel_tol=0.0, abs_tol=1e-12):  # on a rung: its budget (no rounding error)
        return Factor(float(b[i]))
    if i == 0:
        return Factor(float(b[0]), "<") if a[0] > target else Factor(float(b[0]))
    lo, hi = math.log(b[i - 1]), math.log(b[i])
    t = (target - a[i - 1]) / (a[i] - a[i - 1])
    return Factor(math.exp(lo + t * (hi - lo)))


def _per_seed(rows: pd.DataFrame) -> dict[int, pd.Series]:
    """seed -> that seed's accuracy per budget (a PC-LR curve of one seed)."""
    return {int(s): g.groupby("iterations")["final_test_acc"].mean().sort_index() for s, g in rows.groupby("seed")}


def baseline_ladder(base: pd.DataFrame) -> pd.DataFrame:
    """PC-LR's runs that the speedup factors read: the seed set that most rungs finished (the larger on a tie),
    on the rungs that finished all of it. While a rung has landed for one seed only, the mean and the per-seed
    curves would otherwise be built from different seeds at different rungs, and a seed whose curve stops early
    would give a bound ("> its top") below the other seeds' exact crossings. A seed added at one rung only (a
    third seed at the top) leaves the ladder as it was."""
    if base.empty:
        return base
    sets = base.groupby("iterations")["seed"].agg(lambda s: frozenset(int(x) for x in s))
    counts = sets.value_counts()
    seeds = max(counts.index, key=lambda k: (counts[k], len(k), sorted(k)))
    rungs = sets[sets.map(lambda k: seeds <= k)].index
    return base[base["iterations"].isin(rungs) & base["seed"].astype(int).isin(seeds)]


def speedups(rows: pd.DataFrame) -> pd.DataFrame:
    """Per fraction and cyclic schedule, at each of its budgets B: the speedup factor over PC-LR (b* / B) with its
    interval from the seeds (see the module docstring)."""
    cols = ["fraction", "schedule", "iterations", "n", "n_baseline", "accuracy", "factor", "low", "high"]
    out = []
    if rows.empty:
        return pd.DataFrame(columns=cols)
    for fraction, part in rows.groupby("fraction", sort=True):
        base = baseline_ladder(part[part["schedule"] == BASELINE])
        if base.empty:
            continue
        mean_curve = base.groupby("iterations")["final_test_acc"].mean().sort_index()
        seed_curves = _per_seed(base)
        for schedule in [s for s in SCHEDULES if s != BASELINE]:
            mine = part[part["schedule"] == schedule]
            for it, g in mine.groupby("iterations", sort=True):
                accs = g["final_test_acc"].astype(float).tolist()
                f = crossing(mean_curve.index, mean_curve.values, float(np.mean(accs)))
                each = [crossing(c.index, c.values, a) for a in accs for c in seed_curves.values()]
                low = min(each, key=lambda x: (x.value, x.kind != "<"))
                high = max(each, key=lambda x: (x.value, x.kind == ">"))
                out.append({"fraction": float(fraction), "schedule": schedule, "iterations": int(it), "n": len(accs),
                            "n_baseline": len(seed_curves), "accuracy": float(np.mean(accs)),
                            "factor": Factor(f.value / it, f.kind), "low": Factor(low.value / it, low.kind),
                            "high": Factor(high.value / it, high.kind)})
    return pd.DataFrame(out, columns=cols)


def _side(label: str, rows: pd.DataFrame) -> Side:
    return Side(label, tuple(100 * rows["final_test_acc"].astype(float)), 0)


def noise(summaries: pd.DataFrame):
    """The frontier scale's seed sd (`verdicts.scale_sds`: its converged configurations, the ladder's and the
    sweeps'): the noise of the claims at converged lengths, as of every other claim judged at this scale."""
    return scale_sds(summaries).get(EXPERIMENT) if not summaries.empty else None


def converged_claims(rows: pd.DataFrame, sd=None) -> list[tuple[str, str, str, str]]:
    """(claim, claim id, label, detail) of each of CONVERGED_CLAIMS: the first CLR budget whose runs converged
    against PC-LR at the claim's multiple of it (module docstring). `sd`: the frontier scale's seed sd
    (`noise`); by default that of `rows` alone."""
    sd = converged_seed_sd(rows, EXPERIMENT) if sd is None else sd
    out = []
    for fraction, ratio, name, cid in CONVERGED_CLAIMS:
        part = rows[np.isclose(rows["fraction"].astype(float), fraction)] if not rows.empty else rows
        clr = part[part["schedule"] == "clr"] if not part.empty else part
        if clr.empty:
            out.append((name, cid, NOT_RUN, "no finished CLR run at this fraction"))
            continue
        fits = clr.groupby("iterations")[TRAIN_ACC_COL].mean().sort_index()
        ok = fits[fits >= UNDERFIT_BELOW]
        if ok.empty:
            best = int(fits.idxmax())
            acc = clr[clr["iterations"] == best]
            run = _span(int(fits.index.min()), int(fits.index.max()))
            # "<setup>: <numbers>", as every other detail here: the README splits its cells at the first ": "
            out.append((name, cid, NOT_TESTABLE,
                        f"CLR {run} iterations: underfit at every budget run (largest training accuracy "
                        f"{fit_text(acc[TRAIN_ACC_COL].tolist(), acc[TRAIN_SRC_COL].dropna().tolist())} at {best} "
                        f"iterations; converged means >= {UNDERFIT_BELOW:.0%})"))
            continue
        b = int(ok.index[0])
        a = clr[clr["iterations"] == b]
        pc = part[(part["schedule"] == BASELINE) & (part["iterations"] == ratio * b)]
        where = f"CLR {b} iterations (first converged budget) vs PC-LR {ratio * b}"
        if pc.empty:
            done = part[part["schedule"] == BASELINE]["iterations"]
            top = f"; PC-LR's largest finished budget here is {int(done.max())} iterations" if not done.empty else ""
            ladder = PCLR_LADDER.get(float(fraction), ())
            why = (" yet" if ratio * b in ladder else
                   f" (not in the study's PC-LR ladder, {_span(*_ends(ladder))} iterations: experiments/suites.py)")
            out.append((name, cid, NOT_RUN, f"{where}: no finished PC-LR run at {ratio * b} iterations{why}{top}"))
            continue
        label, detail = compare(_side("CLR", a), _side("PC-LR", pc), better=True, scale_sd=sd)
        out.append((name, cid, label, f"{where}: {detail}"))
    return out


def converged_verdicts(summaries: pd.DataFrame, runs: pd.DataFrame | None = None) -> dict[str, tuple[str, str]]:
    """claim id -> (label, detail) of `converged_claims` on the frontier's finished runs; {} when none finished.
    The report's summary and the README's claim table both show these beside each claim's own verdict."""
    budget = frontier_runs(summaries, runs)
    return {} if budget.empty else {cid: (label, detail)
                                    for _, cid, label, detail in converged_claims(budget, noise(summaries))}


def bn_horizon_table(summaries: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """PC-LR on the 10k subset at the BN-horizon run's budget (before it has finished: the largest frontier
    budget), per BN momentum and source: n, test accuracy, the full-pass training accuracy (eval mode: the
    running statistics the test uses) and the per-batch training accuracy of the last 5% of iterations
    (training mode: each batch's own statistics)."""
    cols = ["bn_momentum", "source", "iterations", "n", "test", "train_full_pass", "train_batches", "lagging",
            "lag_reading"]
    rows = frontier_runs(summaries, runs)
    base = rows[(rows["schedule"] == BASELINE) & np.isclose(rows["fraction"].astype(float), 0.2)] if not rows.empty \
        else rows
    if base.empty:
        return pd.DataFrame(columns=cols)
    other = summaries[(summaries.get("experiment") == HORIZON_EXPERIMENT) & (summaries.get("scale") == "frontier")]
    other = finished_runs(attach_fit(other, runs)) if not other.empty else other
    if not other.empty:
        other = other[np.isclose(other["fraction"].astype(float), 0.2)]
    budget = int(other["iterations"].max()) if not other.empty else int(base["iterations"].max())
    out = []
    for source, part in ((EXPERIMENT, base), (HORIZON_EXPERIMENT, other)):
        part = part[part["iterations"] == budget] if not part.empty else part
        if part.empty:
            continue
        batches = batch_train_acc(part, runs)
        reading = lag_reading(part, runs)
        if "bn_momentum" not in part:  # runs stored without the column: one group
            part = part.assign(bn_momentum=np.nan)
        for m, g in part.groupby("bn_momentum", sort=True, dropna=False):
            out.append({"bn_momentum": float(m), "source": source, "iterations": budget, "n": len(g),
                        "test": g["final_test_acc"].astype(float).mean(),
                        "train_full_pass": pd.to_numeric(g[TRAIN_ACC_COL], errors="coerce").mean(),
                        "train_batches": batches.loc[g.index].mean(), "lagging": _lagging(g),
                        "lag_reading": "; ".join(str(x) for x in reading.loc[g.index].dropna()) or None})
    return pd.DataFrame(out, columns=cols)


def _lagging(runs: pd.DataFrame) -> float:
    """How many of `runs` carry the run-health flag `test_lags_train` (superconv.health: test accuracy near
    chance while the training batches are fit, the author's baseline failure); NaN when any run's flags were
    not stored under the current rules."""
    flags = runs["health"] if "health" in runs else pd.Series([None] * len(runs), index=runs.index)
    if flags.isna().any():
        return float("nan")
    return float(sum(LAG_FLAG in str(f).split(",") for f in flags))


def bn_horizon_lines(summaries: pd.DataFrame, runs: pd.DataFrame | None = None) -> list[str]:
    table = bn_horizon_table(summaries, runs)
    if table.empty:
        return ["No finished PC-LR run on the 10k subset yet."]
    budget = int(table["iterations"].iloc[0])
    lines = [f"PC-LR, 10k-image subset, {budget} iterations. The same weights are scored twice on their own "
             "training images: with each batch's statistics (training mode) and with the running statistics the "
             "test uses (eval mode). A large gap between the two is the BN average, not the schedule.", "",
             "| BN momentum (Caffe fraction) | runs | test % | train % per batch, last 5% (training mode) | "
             "train % full pass (eval mode) |", "|---|---|---|---|---|"]
    for _, r in table.iterrows():
        what = "scaled with the run" if r["source"] == EXPERIMENT else "not scaled"
        seeds = f"n={r['n']}" + (", 1 seed" if r["n"] == 1 else "")
        momentum = "?" if math.isnan(r["bn_momentum"]) else f"{r['bn_momentum']:g} ({1 - r['bn_momentum']:g}, {what})"
        lines.append(f"| {momentum} | `{r['source']}`, {seeds} | "
                     f"{_pct(r['test'])} | {_pct(r['train_batches'])} | {_pct(r['train_full_pass'])} |")
    horizon = table[table["source"] == HORIZON_EXPERIMENT]
    scaled = table[table["source"] == EXPERIMENT]
    for _, r in horizon.iterrows():
        also = (f", against {_pct(scaled['test'].iloc[0])}% with the fraction scaled with the run"
                if not scaled.empty else "")
        numbers = (f"test {_pct(r['test'])}% with {_pct(r['train_batches'])}% of its training batches fit "
                   f"({_pct(r['train_full_pass'])}% in a full pass with the running statistics){also}")
        n = int(r["n"])
        reads = f": the rule reads {r['lag_reading']}" if r["lag_reading"] else ""
        if math.isnan(r["lagging"]):
            said = f"{numbers}. Not judged by the flag (the run's health flags were not stored){reads}"
        elif r["lagging"] > 0:
            said = (f"**it appears** ({int(r['lagging'])} of {n} run{'s' if n != 1 else ''} flagged "
                    f"`{LAG_FLAG}`: test accuracy near chance while the training batches are fit): {numbers}{reads}")
        else:  # the effect first, then why the flag stays down
            said = (f"{numbers}. **No `{LAG_FLAG}` flag** on {'its run' if n == 1 else f'its {n} runs'} "
                    f"(superconv.health's test for the failure: a lagging final evaluation, or lagging evaluations "
                    f"for a quarter of the run){reads}")
        lines += ["", f"The author's baseline failure (his `lr35Tr10kTab1`: test accuracy near chance for much of the "
                      f"run while the training batches were fit) at this length, with the paper's unscaled fraction "
                      f"(momentum {r['bn_momentum']:g}, {n} seed{'s' if n != 1 else ''}): {said}."]
    if not (table["source"] == HORIZON_EXPERIMENT).any():
        lines += ["", f"The run at the paper's unscaled fraction (`{HORIZON_EXPERIMENT}`, momentum 0.001, at the "
                      "ladder's top budget) has not finished yet."]
    elif not (table["source"] == EXPERIMENT).any():
        lines += ["", f"The frontier's own PC-LR runs at {budget} iterations have not finished yet."]
    return lines


# ------------------------------------------------------------------------------ figure
def draw(runs: pd.DataFrame, summaries: pd.DataFrame, out_dir: Path, reference=None) -> list[Path]:
    """frontier.png/.pdf: final test accuracy (solid, band and bar = seed range) and training accuracy (thin)
    against training images (log axis), one colour per schedule, one panel per training-set fraction;
    frontier.csv."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    rows = frontier_runs(summaries, runs)
    table = frontier_table(rows)
    fractions = sorted(set(table["fraction"].astype(float)) | set(FRACTIONS))  # the study's panels, run or not
    fig, axes = plt.subplots(1, len(fractions), figsize=(5.0 * len(fractions), 3.8), squeeze=False, sharey=True)
    colours = dict(zip(SCHEDULES, sns.color_palette(n_colors=len(SCHEDULES))))
    images = table["images"].astype(float).tolist() + [1e5, 1e6]  # every panel spans the same budgets, at least the
    xlim = (min(images) / 1.4, max(images) * 1.4)                    # study's first decade, so panels compare
    for ax, fraction in zip(axes[0], fractions):
        part = rows[np.isclose(rows["fraction"].astype(float), fraction)] if not rows.empty else rows
        for schedule, label in SCHEDULES.items():
            g = part[part["schedule"] == schedule] if not part.empty else part
            if g.empty:
                continue
            g = g.assign(images=g["iterations"] * g["batch_size"])
            stats = g.groupby("images").agg(test=("final_test_acc", "mean"), lo=("final_test_acc", "min"),
                                            hi=("final_test_acc", "max"), train=(TRAIN_ACC_COL, "mean"),
                                            n=("final_test_acc", "count")).sort_index()
            x = stats.index.to_numpy(float)
            ax.plot(x, stats["test"], "-o", color=colours[schedule], markersize=3,
                    label=f"{label} test")
            ax.fill_between(x, stats["lo"], stats["hi"], color=colours[schedule], alpha=0.2, linewidth=0)
            ax.vlines(x, stats["lo"], stats["hi"], color=colours[schedule], linewidth=0.8, alpha=0.6)  # a band
            # has no width at a lone budget: the bar keeps its seed range visible there
            ax.plot(x, stats["train"], "-x", color=colours[schedule], linewidth=0.7, markersize=3, alpha=0.8,
                    label=f"{label} train")
        ax.axhline(UNDERFIT_BELOW, color="grey", linewidth=0.6, linestyle=":")
        ax.set_xscale("log")
        ax.set_xlim(*xlim)
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel("training images (iterations x batch 1000)")
        ax.set_title(f"fraction {fraction:g} ({int(round(50_000 * fraction)):,} training images)")
        if part.empty:
            ax.text(0.5, 0.5, "no finished run yet", ha="center", va="center", transform=ax.transAxes)
    axes[0][0].set_ylabel("final accuracy")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        h, lab = ax.get_legend_handles_labels()
        handles += [x for x, y in zip(h, lab) if y not in labels]
        labels += [y for y in lab if y not in labels]
    if handles:
        axes[0][-1].legend(handles, labels, fontsize="x-small", loc="lower right")
    fig.suptitle("Accuracy against training budget (ResNet-20, batch 1000; bands and bars: seed range; "
                 f"dotted: {UNDERFIT_BELOW:.0%} training accuracy)", fontsize="small")
    written = style.save(fig, out_dir / "frontier")
    written.append(style.write_table(table, out_dir / "frontier.csv"))
    return written


# ------------------------------------------------------------------------------ text
def _ends(budgets) -> tuple[int, int]:
    return (min(budgets), max(budgets)) if budgets else (0, 0)


def _span(lo: int, hi: int) -> str:
    """"100-3200", or "250" for a ladder of one budget."""
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _pct(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * float(x):.2f}"


def speedup_table(rows: pd.DataFrame) -> list[str]:
    sp = speedups(rows)
    if sp.empty:
        return ["No speedup factor yet: it needs finished runs of a cyclic schedule and of PC-LR at one fraction."]
    base = rows[rows["schedule"] == BASELINE]
    ladder = {f: (int(g["iterations"].min()), int(g["iterations"].max()))
              for f, g in ((f, baseline_ladder(g)) for f, g in base.groupby("fraction"))}
    fit = frontier_table(rows).set_index(["fraction", "schedule", "iterations"])["train_mean"]
    lines = ["| fraction | schedule | budget (iterations) | its test accuracy % (n) | its training accuracy % | "
             "PC-LR budget to match it | range over seed pairs (n = seeds x PC-LR seeds) | PC-LR budgets finished |",
             "|---|---|---|---|---|---|---|---|"]
    for _, r in sp.iterrows():
        lo, hi = ladder[r["fraction"]]
        train = fit.get((r["fraction"], r["schedule"], r["iterations"]), float("nan"))
        low, high = r["low"].text(), r["high"].text()
        spread = f"{low}, every pair" if low == high else f"{low} to {high}"
        lines.append(f"| {r['fraction']:g} | {SCHEDULES[r['schedule']]} | {r['iterations']} | "
                     f"{_pct(r['accuracy'])} (n={r['n']}) | {_pct(train)}{_fit_mark(train)} | "
                     f"**{r['factor'].text()}** | {spread} (n = {r['n']} x {r['n_baseline']}) | {_span(lo, hi)} it |")
    lines += ["", "How to read it: PC-LR's accuracy at each of its budgets is interpolated on log-budget; the factor "
                  "is the PC-LR budget that reaches the cyclic run's mean test accuracy, divided by the cyclic "
                  "budget. Above 1x the cyclic schedule needs fewer iterations, below 1x more. \"< kx\": even "
                  "PC-LR's smallest finished budget beats it (\"< 1x\": the cyclic run is behind PC-LR at equal "
                  "budget). \"> kx\": PC-LR's largest finished budget still falls short; where PC-LR has converged "
                  "at its top budgets, that is a higher accuracy ceiling as much as a speedup, and a longer PC-LR "
                  "run may never match it. The range pairs every seed of the cyclic run with every PC-LR seed's "
                  "own ladder: the spread of those pairs, not a confidence interval. A budget marked underfit "
                  f"ended below {UNDERFIT_BELOW:.0%} training accuracy (full pass): its factor compares runs that "
                  "had not finished learning."]
    return lines


def _fit_mark(train: float) -> str:
    return " underfit" if not math.isnan(train) and train < UNDERFIT_BELOW else ""


def frontier_lines(rows: pd.DataFrame) -> list[str]:
    table = frontier_table(rows)
    if table.empty:
        return ["No finished frontier run yet (`make plan SCALE=frontier` lists them)."]
    lines = ["| fraction | schedule | budget (iterations) | epochs | test % (mean ± sd, n) | train % (source) |",
             "|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        sd = "" if math.isnan(r["test_sd"]) else f" ± {100 * r['test_sd']:.2f}"
        flag = " **underfit**" if r["train_mean"] < UNDERFIT_BELOW else ""
        seeds = f"n={r['n']}" + (", 1 seed" if r["n"] == 1 else "")
        lines.append(f"| {r['fraction']:g} | {SCHEDULES.get(r['schedule'], r['schedule'])} | {r['iterations']} | "
                     f"{r['images'] / (50_000 * r['fraction']):g} | {_pct(r['test_mean'])}{sd} ({seeds}) | "
                     f"{_pct(r['train_mean'])} ({r['train_source'] or '-'}){flag} |")
    return lines


def report_section(summaries: pd.DataFrame, runs: pd.DataFrame | None = None) -> list[str]:
    """The REPORT's frontier section: rules, the speedup factors, the converged claims and the frontier table."""
    rows = frontier_runs(summaries, runs)
    lines = [__doc__.split("\n\n", 1)[1].split("\n\n")[0].replace("\n", " "), "",
             "Speedup factor of each cyclic budget over PC-LR (PC-LR budget / cyclic budget at equal final test "
             "accuracy):", ""]
    lines += speedup_table(rows)
    lines += ["", "The budget claims at converged lengths (the paper's two, and our equal-budget extension of Fig 1a):",
              ""]
    lines += [f"- **{name}** (`{cid}`): **{label}**: {detail}"
              for name, cid, label, detail in converged_claims(rows, noise(summaries))]
    lines += ["", "Every frontier point (figure `frontier`):", ""] + frontier_lines(rows)
    lines += ["", "### BN horizon of the baseline", ""] + bn_horizon_lines(summaries, runs)
    return lines


def readme_block(summaries: pd.DataFrame, runs: pd.DataFrame | None = None) -> str:
    """README.md's frontier block: the speedup factors and the converged claims, generated."""
    rows = frontier_runs(summaries, runs)
    lines = speedup_table(rows) + [""]
    lines += [f"- {name}: **{label}**: {detail}" for name, _, label, detail in converged_claims(rows, noise(summaries))]
    done = len(rows)
    horizon = bn_horizon_table(summaries, runs) if done else pd.DataFrame(columns=["source"])
    also = " and the BN-horizon run" if (horizon["source"] == HORIZON_EXPERIMENT).any() else ""
    lines += ["", f"From {done} finished frontier run{'s' if done != 1 else ''}{also} "
                  "([REPORT](paper_figures/REPORT.md#the-frontier) has every point)."]
    return "\n".join(lines) + "\n"
