"""The accuracy-versus-budget frontier (paper_figures.frontier) on constructed runs: the crossing rule, the speedup
factor with its seed interval and bounds, the claims at converged lengths, the figure and its table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from paper_figures import frontier, style
from paper_figures.frontier import Factor, crossing


def run(schedule, iterations, acc, seed=0, fraction=0.2, train=0.99):
    return {"experiment": "frontier", "run": f"{schedule}-{iterations}-{seed}-{fraction}", "status": "completed",
            "job_type": "train", "schedule": schedule, "iterations": iterations, "batch_size": 1000, "seed": seed,
            "fraction": fraction, "final_test_acc": acc, "final_train_acc": train, "precision": "fp32",
            "scale": "frontier", "dataset": "cifar10"}


def frame(*rows) -> pd.DataFrame:
    """The frontier's finished runs with their training accuracy attached, as the report reads them."""
    return frontier.frontier_runs(pd.DataFrame(list(rows)) if rows else pd.DataFrame(columns=["experiment"]))


def test_crossing_interpolates_on_log_budget_and_bounds_outside_the_ladder():
    b, a = [100, 200, 400, 800], [0.50, 0.60, 0.70, 0.80]
    assert crossing(b, a, 0.65).value == pytest.approx(math.sqrt(200 * 400))  # halfway on a log axis
    assert crossing(b, a, 0.70) == Factor(400.0)
    assert crossing(b, a, 0.40) == Factor(100.0, "<") and crossing(b, a, 0.50) == Factor(100.0)
    assert crossing(b, a, 0.90) == Factor(800.0, ">")
    # a frontier that dips: the first rung at or above the target counts
    assert crossing([100, 200, 400], [0.6, 0.5, 0.7], 0.65).value == pytest.approx(200 * 2 ** 0.75)
    assert Factor(3.04).text() == "3x" and Factor(0.5, "<").text() == "< 0.5x" and Factor(32, ">").text() == "> 32x"
    with pytest.raises(ValueError, match="empty"):
        crossing([], [], 0.5)
    assert crossing(b, a, 0.80 + 1e-13) == Factor(800.0)  # a rounding error above the top rung is on it


def test_the_speedup_reads_pc_lr_only_on_the_rungs_every_seed_finished():
    """A rung that has landed for one PC-LR seed waits for the other: with seed 0 alone at 400 and 800, a factor
    read there would come from one seed while n says two, and seed 1's curve, stopping at 200, would give a
    bound ("> 2x") below seed 0's exact 4x, hidden as the interval's low end."""
    rows = [run("multistep", it, acc, seed=0) for it, acc in ((100, 0.5), (200, 0.6), (400, 0.7), (800, 0.8))]
    rows += [run("multistep", it, acc, seed=1) for it, acc in ((100, 0.4), (200, 0.5))]
    rows += [run("clr", 100, 0.70, seed=s) for s in (0, 1)]
    clr = frontier.speedups(frame(*rows)).set_index("schedule").loc["clr"]
    assert (clr["factor"], clr["low"], clr["high"], clr["n_baseline"]) == (Factor(2.0, ">"),) * 3 + (2,)
    assert "| 100-200 it |" in frontier.speedup_table(frame(*rows))[2]
    one_rung = [r for r in rows if r["schedule"] == "clr" or r["iterations"] == 100]  # PC-LR at 100 only
    assert frontier.speedup_table(frame(*one_rung))[2].endswith("| 100 it |")  # not "100-100"
    # a third seed at the top rung only leaves the two-seed ladder whole: the factor is seed 0 and 1's 4x
    rows += [run("multistep", it, acc, seed=1) for it, acc in ((400, 0.7), (800, 0.8))]
    rows += [run("multistep", 800, 0.8, seed=2)]
    clr = frontier.speedups(frame(*rows)).set_index("schedule").loc["clr"]
    assert clr["factor"] == Factor(4.0) and clr["n_baseline"] == 2


def test_the_frontier_reads_only_its_own_scale():
    """`make reproduce SCALE=paper` runs the frontier experiment at the paper's lengths: not a rung of this ladder."""
    rows = [run("multistep", 100, 0.5), {**run("multistep", 80_000, 0.9), "scale": "paper", "run": "paper-run"}]
    assert frontier.frontier_runs(pd.DataFrame(rows))["iterations"].tolist() == [100]


def test_the_speedup_factor_and_its_interval_from_the_seeds():
    rows = [run("multistep", it, acc + d, seed=s) for it, acc in ((100, 0.5), (200, 0.6), (400, 0.7), (800, 0.8))
            for s, d in ((0, -0.01), (1, 0.01))]
    rows += [run("clr", 100, 0.70 + d, seed=s) for s, d in ((0, -0.02), (1, 0.02))]
    rows += [run("one_cycle", 100, 0.95, seed=0)]
    sp = frontier.speedups(frame(*rows)).set_index("schedule")
    clr = sp.loc["clr"]
    assert clr["factor"].kind == "=" and clr["factor"].value == pytest.approx(4.0) and clr["n"] == 2 and clr["n_baseline"] == 2
    # CLR seed 0.68 against PC-LR seed 1 (0.61, 0.71 at 200, 400) is the lowest; 0.72 against seed 0 the highest
    assert clr["low"].value == pytest.approx(math.exp(math.log(200) + 0.7 * math.log(2)) / 100)
    assert clr["high"].value == pytest.approx(math.exp(math.log(400) + 0.3 * math.log(2)) / 100)
    assert sp.loc["one_cycle", "factor"] == Factor(8.0, ">")  # PC-LR never reaches 95% on this ladder
    rows += [run("one_cycle", 200, 0.95, seed=0, train=0.90)]  # underfit: its row says so beside its factor
    lines = frontier.speedup_table(frame(*rows))
    assert lines[2] == "| 0.2 | CLR | 100 | 70.00 (n=2) | 99.00 | **4x** | 3.2x to 4.9x (n = 2 x 2) | 100-800 it |"
    assert lines[3] == "| 0.2 | 1cycle | 100 | 95.00 (n=1) | 99.00 | **> 8x** | > 8x, every pair (n = 1 x 2) | 100-800 it |"
    assert lines[4] == ("| 0.2 | 1cycle | 200 | 95.00 (n=1) | 90.00 underfit | **> 4x** | > 4x, every pair (n = 1 x 2) "
                        "| 100-800 it |")


def test_table1_at_converged_length_is_the_first_converged_clr_budget_against_8x():
    # underfit: skipped, and its seed spread (40 pp) is no noise for converged runs
    rows = [run("clr", 100, 0.40 + 0.40 * s, s, train=0.80) for s in (0, 1)]
    rows += [run("clr", 200, 0.75 + 0.01 * s, s, train=0.98) for s in (0, 1)]  # first converged: 200
    rows += [run("multistep", 1600, 0.70 + 0.01 * s, s) for s in (0, 1)]  # PC-LR at 8 x 200
    claims = {c[1]: c for c in frontier.converged_claims(frame(*rows))}
    name, _, label, detail = claims["table1_fraction"]
    assert label == "reproduced" and detail.startswith("CLR 200 iterations (first converged budget) vs PC-LR 1600")
    assert "+5.00 pp" in detail and "frontier seed sd 0.71 pp (2 groups)" in detail
    assert claims["fig1a_clr_vs_pclr"][2] == "not run yet"
    # PC-LR at 8x not run yet: says which budget is missing
    label, detail = frontier.converged_claims(frame(*rows[:4]))[0][2:]
    assert label == "not run yet" and "no finished PC-LR run at 1600 iterations" in detail
    label, detail = frontier.converged_claims(frame(*rows[:4], run("multistep", 800, 0.7)))[0][2:]
    assert detail.endswith("PC-LR's largest finished budget here is 800 iterations")
    # every CLR budget underfit: not testable, with the best training accuracy
    label, detail = frontier.converged_claims(frame(*rows[:2]))[0][2:]
    assert label == "not testable" and "80.00%, full pass, n=2 at 100 iterations" in detail


def test_the_figure_and_its_table_are_written(tmp_path):
    style.setup()
    rows = [run(s, it, 0.5 + it / 4000, seed, f) for s in ("clr", "one_cycle", "multistep") for it in (100, 200)
            for seed in (0, 1) for f in (0.2, 1.0)]
    written = frontier.draw(pd.DataFrame(), pd.DataFrame(rows), tmp_path)
    assert sorted(p.name for p in written) == ["frontier.csv", "frontier.pdf", "frontier.png"]
    table = pd.read_csv(tmp_path / "frontier.csv")
    assert len(table) == 12 and set(table["n"]) == {2} and table["images"].max() == 200_000
    again = frontier.draw(pd.DataFrame(), pd.DataFrame(rows), tmp_path)  # byte-identical: not rewritten
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written]
    assert "No finished frontier run yet" in "\n".join(frontier.frontier_lines(frame()))


def test_the_bn_horizon_table_sets_the_scaled_baseline_beside_the_papers_unscaled_fraction():
    """PC-LR at the largest finished 10k-subset budget, per BN momentum: the frontier's runs (scaled) and the
    bn_horizon run (0.001); per-batch training accuracy from the metrics' last 5%, the full pass from the
    summary. Smaller PC-LR budgets, other fractions and the bn_horizon runs of other scales stay out."""
    rows = [run("multistep", it, 0.70, seed, train=0.99) | {"bn_momentum": 0.025} for it in (1600, 3200)
            for seed in (0, 1)]
    rows += [run("multistep", 3200, 0.80, 0, fraction=1.0) | {"bn_momentum": 0.025}]
    horizon = run("multistep", 3200, 0.11, train=0.12) | {"experiment": "bn_horizon", "run": "h", "bn_momentum": 0.001}
    mini = horizon | {"run": "m", "scale": "mini"}
    curves = pd.DataFrame([{"experiment": "bn_horizon", "run": "h", "iteration": i, "lr": 0.0035, "train/loss": 0.1,
                            "train/acc": 1.0 if i > 3000 else 0.5, "test/acc": 0.11} for i in range(100, 3300, 100)])
    table = frontier.bn_horizon_table(pd.DataFrame(rows + [horizon, mini]), curves)
    assert table[["bn_momentum", "source", "iterations", "n"]].values.tolist() == [
        [0.025, "frontier", 3200, 2], [0.001, "bn_horizon", 3200, 1]]
    assert table["test"].tolist() == pytest.approx([0.70, 0.11])
    assert table["train_full_pass"].tolist() == pytest.approx([0.99, 0.12])
    assert math.isnan(table["train_batches"].iloc[0]) and table["train_batches"].iloc[1] == pytest.approx(1.0)
    text = "\n".join(frontier.bn_horizon_lines(pd.DataFrame(rows + [horizon]), curves))
    assert "| 0.001 (0.999, not scaled) | `bn_horizon`, n=1, 1 seed | 11.00 | 100.00 | 12.00 |" in text
    assert "Not judged by the flag (the run's health flags were not stored)" in text  # no health column: no claim
    # the sentence the issue asks for, read from the run-health flag the author's own log raises
    said = {flags: "\n".join(frontier.bn_horizon_lines(pd.DataFrame([r | {"health": ""} for r in rows]
                                                                     + [horizon | {"health": flags}]), curves))
            for flags in ("test_lags_train,underfit", "ends_below_peak")}
    assert ("(momentum 0.001, 1 seed): **it appears** (1 of 1 run flagged `test_lags_train`: test accuracy near "
            "chance while the training batches are fit): test 11.00% with 100.00% of its training batches fit "
            "(12.00% in a full pass with the running statistics), against 70.00% with the fraction scaled with "
            "the run: the rule reads final evaluation (iteration 3200)") in said["test_lags_train,underfit"]
    # no flag: the effect first (the numbers), then why the flag stays down
    assert ("against 70.00% with the fraction scaled with the run. **No `test_lags_train` flag** on its run "
            "(superconv.health's test for the failure") in said["ends_below_peak"]
    assert "it appears" not in said["ends_below_peak"]
    # the rule's own reading of the curve, flagged or not: here 11% test at every evaluation while the batches
    # reach 100% (after iteration 3000): the last evaluations lag
    assert "of the run): the rule reads final evaluation (iteration 3200) at test accuracy 0.110" in said["ends_below_peak"]
    assert "unscaled fraction (`bn_horizon`, momentum 0.001, at the ladder's top budget) has not finished" in "\n".join(
        frontier.bn_horizon_lines(pd.DataFrame(rows), curves))
    # the horizon run done before the frontier's own top rung: its budget, and the missing side named
    early = [r for r in rows if r["iterations"] == 1600] + [horizon]
    assert frontier.bn_horizon_table(pd.DataFrame(early), curves)["source"].tolist() == ["bn_horizon"]
    assert "frontier's own PC-LR runs at 3200 iterations have not finished" in "\n".join(
        frontier.bn_horizon_lines(pd.DataFrame(early), curves))


def claims_of(rows) -> dict[str, tuple[str, str]]:
    return {c[1]: c[2:] for c in frontier.converged_claims(frame(*rows))}


def test_fig1a_at_equal_budget_is_judged_at_the_first_converged_clr_budget_of_the_full_set():
    """Our extension of Fig 1a: CLR against PC-LR at CLR's own budget, where CLR first converged on the full set;
    Fig 1a itself (PC-LR at 8x) waits for a run the ladder may never hold, and says how far PC-LR got."""
    rows = [run("clr", b, 0.60 + 0.2 * (b == 500) + 0.01 * s, s, fraction=1.0, train=0.90 + 0.08 * (b == 500))
            for b in (250, 500) for s in (0, 1)]
    rows += [run("multistep", b, 0.70 + 0.01 * s, s, fraction=1.0) for b in (250, 500) for s in (0, 1)]
    claims = {c[1]: c[2:] for c in frontier.converged_claims(frame(*rows))}
    label, detail = claims["fig1a_equal_budget"]
    assert label == "reproduced" and detail.startswith("CLR 500 iterations (first converged budget) vs PC-LR 500:")
    assert "+10.00 pp" in detail
    assert claims["fig1a_clr_vs_pclr"] == ("not run yet", "CLR 500 iterations (first converged budget) vs PC-LR "
                                           "4000: no finished PC-LR run at 4000 iterations (not in the study's "
                                           "PC-LR ladder, 250-1000 iterations: experiments/suites.py); PC-LR's "
                                           "largest finished budget here is 500 iterations")
    early = [r for r in rows if not (r["schedule"] == "clr" and r["iterations"] == 500)]
    early = [{**r, "final_train_acc": 0.99} if r["schedule"] == "clr" else r for r in early]  # CLR 250 converged
    assert claims_of(early)["fig1a_clr_vs_pclr"][1].endswith("PC-LR 2000: no finished PC-LR run at 2000 iterations "
                                                             "(not in the study's PC-LR ladder, 250-1000 iterations: "
                                                             "experiments/suites.py); PC-LR's largest finished "
                                                             "budget here is 500 iterations")
    subset = [run("clr", 400, 0.75, s, fraction=0.2) for s in (0, 1)] + [run("multistep", 400, 0.7, 0)]
    assert claims_of(subset)["table1_fraction"][1].endswith("no finished PC-LR run at 3200 iterations yet; PC-LR's "
                                                            "largest finished budget here is 400 iterations")
    label, detail = {c[1]: c[2:] for c in frontier.converged_claims(frame(*rows[:2], *rows[4:]))}["fig1a_equal_budget"]
    assert label == "not testable" and "at 250 iterations" in detail  # CLR underfit at every budget run
    assert detail.partition(": ")[0] == "CLR 250 iterations"  # the README's cells: the setup, then the numbers
    underfit = [{**r, "final_train_acc": 0.90 + 0.05 * (r["iterations"] == 500)} if r["schedule"] == "clr" else r
                for r in rows]  # CLR 500 underfit too (95%), its best
    label, detail = {c[1]: c[2:] for c in frontier.converged_claims(frame(*underfit))}["fig1a_equal_budget"]
    where, _, numbers = detail.partition(": ")
    assert where == "CLR 250-500 iterations" and numbers.startswith("underfit at every budget run (largest training")
    assert "at 500 iterations" in numbers and ": " not in numbers


def test_the_report_summary_carries_the_budget_claims_judged_at_converged_lengths(tmp_path):
    """Table 1's row in the report's summary and its claim section say the frontier's converged verdict beside
    the scale verdicts (CLR 400 converged vs PC-LR 3200, 2 seeds each: reproduced when CLR is clearly ahead)."""
    from paper_figures.report import CONVERGED, render_report

    rows = [run("clr", 400, acc, seed) for seed, acc in ((0, 0.750), (1, 0.752))]
    rows += [run("multistep", it, acc + 0.001 * seed, seed) for it, acc in ((400, 0.66), (3200, 0.71)) for seed in (0, 1)]
    text = render_report(pd.DataFrame(rows), None, [], tmp_path, "make figures")
    [line] = [x for x in text.splitlines() if x.startswith("| [table1_fraction]")]
    assert line.endswith(f"; {CONVERGED}: reproduced |")
    assert "**reproduced**: CLR 400 iterations (first converged budget) vs PC-LR 3200" in text
    [fig1a] = [x for x in text.splitlines() if x.startswith("| [fig1a_clr_vs_pclr]")]
    assert fig1a.endswith(f"{CONVERGED}: not run yet |")
    # the Scales section names the noise the converged claims use: the converged groups' seed sd (3 groups,
    # 0.2, 0.1, 0.1 pp apart: sqrt((0.02 + 0.005 + 0.005) / 3)), the ladder's own runs counted
    [scale] = [x for x in text.splitlines() if x.startswith("- **frontier**")]
    assert "Seed sd: 0.10 pp, from 3 converged configurations run with >= 2 seeds" in scale


def test_a_sweep_at_the_frontier_scale_takes_its_noise_from_converged_configurations():
    """At the frontier scale underfit configurations (a ladder rung and a sweep arm, each 40 pp apart) are no noise
    for a comparison whose arms both converged: weight decay 1e-4 (76.0, 76.2%) against 1e-3 (74.0, 74.2%) is 2 pp
    apart with ~0.1 pp seeds."""
    from paper_figures.claims import CLAIMS
    from paper_figures.verdicts import judge, scale_sds

    rows = [run("clr", 100, 0.30 + 0.40 * s, s, train=0.60) for s in (0, 1)]  # underfit, 40 pp apart
    rows += [run("clr", 400, 0.750 + 0.001 * s, s) for s in (0, 1)]
    rows += [{**run("clr", 400, acc + 0.002 * s, s), "experiment": "fig10b_weight_decay", "weight_decay": wd,
              "run": f"wd{wd}-{s}"} for wd, acc in ((1e-4, 0.760), (1e-3, 0.740)) for s in (0, 1)]
    rows += [{**run("clr", 400, 0.30 + 0.40 * s, s, train=0.60), "experiment": "fig10b_weight_decay",
              "weight_decay": 1e-5, "run": f"wd1e-5-{s}"} for s in (0, 1)]  # an underfit arm of the sweep
    df = pd.DataFrame(rows)
    sd = scale_sds(df)["frontier"]
    assert (sd.groups, round(sd.sd, 3)) == (3, round(((0.005 + 0.02 + 0.02) / 3) ** 0.5, 3))
    [claim] = [c for c in CLAIMS if c.id == "fig10b_weight_decay"]
    v = judge(claim, df)
    assert v.label == "reproduced" and "frontier seed sd 0.12 pp (3 groups)" in v.detail


def test_the_sweeps_take_their_arm_at_the_frontiers_configuration_from_the_frontiers_own_runs(tmp_path):
    """At the frontier scale the weight-decay and batch sweeps do not run weight decay 1e-4 / batch 1000: the
    frontier's CLR 400-iteration runs on the 10k subset are that arm, counted once. Other frontier runs (another
    budget, schedule or fraction) join no sweep, and the suite never runs the shared value under a sweep's name."""
    from experiments.suites import frontier as frontier_suite
    from paper_figures.claims import CLAIMS
    from paper_figures.controls import with_controls
    from paper_figures.report import render_report
    from paper_figures.verdicts import judge

    control = [{**run("clr", 400, 0.760 + 0.002 * s, s), "weight_decay": 1e-4} for s in (0, 1)]
    others = [{**run(sch, it, 0.7, 0, fraction=f), "weight_decay": 1e-4}
              for sch, it, f in (("clr", 800, 0.2), ("multistep", 400, 0.2), ("clr", 400, 1.0))]
    sweep = [{**run("clr", 400, 0.740 + 0.002 * s, s), "experiment": "fig10b_weight_decay", "weight_decay": 1e-3,
              "run": f"wd1e-3-{s}"} for s in (0, 1)]
    elsewhere = [{**r, "scale": "mini", "run": f"mini-{r['run']}"} for r in control]  # another scale: not borrowed
    df = pd.DataFrame(control + others + sweep + elsewhere)
    pool = with_controls(df, (e for e in ("fig10b_weight_decay",)))  # any iterable of names
    assert sorted(pool["run"]) == sorted(r["run"] for r in control + sweep)
    # a sweep that ran the shared value itself: its own run counts, the frontier's copy of that seed does not
    own = {**control[0], "experiment": "fig10b_weight_decay", "run": "wd1e-4-0"}
    pool = with_controls(pd.DataFrame(control + sweep + [own]), ["fig10b_weight_decay"])
    assert sorted(pool["run"]) == sorted([control[1]["run"], "wd1e-4-0"] + [r["run"] for r in sweep])
    assert with_controls(pd.DataFrame({"run": ["x"]}), ["fig10b_weight_decay"]).empty  # no experiment column
    assert with_controls(df, ("fig9b_dropout",)).empty  # its no-dropout arm is its own (dropout placement)
    by_id = {c.id: c for c in CLAIMS}
    v = judge(by_id["fig10b_weight_decay"], df)
    assert v.label == "reproduced" and "n = 2 vs 2" in v.detail  # 1e-4 (the frontier's runs) 2 pp above 1e-3
    batch = judge(by_id["fig9a_batch"], df)
    assert batch.label == "not run yet"  # batch 1000 alone: one value of the sweep
    text = render_report(df, None, [], tmp_path, "make figures")
    assert "its arm at batch 1000 and weight decay 1e-4 is the `frontier` experiment's CLR runs" in text
    jobs = {j.experiment: " ".join(j.overrides) for j in frontier_suite() if j.experiment != "frontier"}
    assert "1e-4" not in jobs["fig10b_weight_decay"] and "weight_decay=1e-3,1e-5" in jobs["fig10b_weight_decay"]
    assert all("1000" not in jobs[e].split("train.batch_size=")[1].split()[0]
               for e in ("fig9a_batch", "fig9a_batch_epochs"))
