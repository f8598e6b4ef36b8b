"""Accuracy-vs-iteration and sweep figures on the committed fixture results (real smoke-scale runs)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

from paper_figures import curve_figures, registry, style
from paper_figures.caffe_log import read_caffe_log
from paper_figures.load import load_runs, load_summaries

FIXTURES = ROOT / "tests" / "fixtures" / "results"

LOG = """I1205 solver.cpp:48] Initializing solver from parameters:
test_iter: 200
test_interval: 100
base_lr: 0.1
max_iter: 200
lr_policy: "triangular"
max_lr: 3
stepsize: 100
momentum: 0.9
weight_decay: 0.0001
I1205 solver.cpp:337] Iteration 100, Testing net (#0)
I1205 solver.cpp:404]     Test net output #0: accuracy = 0.5
I1205 solver.cpp:404]     Test net output #1: loss = 1.5 (* 1 = 1.5 loss)
I1205 sgd_solver.cpp:166] Iteration 100, lr = 3
I1205 solver.cpp:337] Iteration 200, Testing net (#0)
I1205 solver.cpp:404]     Test net output #0: accuracy = 0.8
I1205 solver.cpp:404]     Test net output #1: loss = 0.6 (* 1 = 0.6 loss)
"""


@pytest.fixture(scope="module")
def data():
    style.setup()
    return load_runs(FIXTURES), load_summaries(FIXTURES)


def test_every_curve_and_sweep_figure_is_written(data, tmp_path):
    runs, summaries = data
    written = curve_figures.draw(runs, summaries, tmp_path, None)
    stems = {p.stem for p in written}
    expected = {s.name for s in registry.CURVES + registry.SWEEPS}
    assert expected <= stems
    for stem in expected:
        for suffix in (".pdf", ".png", ".csv"):
            assert (tmp_path / f"{stem}{suffix}").stat().st_size > 0, stem + suffix


def test_fig1a_table_has_both_schedules_over_two_seeds(data, tmp_path):
    runs, summaries = data
    spec = next(s for s in registry.CURVES if s.name == "fig1a_clr_vs_pclr")
    curve_figures.draw_curves(spec, runs, summaries, tmp_path, None)
    table = pd.read_csv(tmp_path / "fig1a_clr_vs_pclr.csv")
    assert list(table["curve"]) == ["clr", "multistep"] and list(table["n"]) == [2, 2]
    finals = summaries[(summaries.experiment == "fig1a") & (summaries.schedule == "clr")]["final_test_acc"]
    assert table.loc[0, "mean"] == pytest.approx(finals.mean(), abs=1e-6)


def test_missing_results_give_a_note_not_a_crash(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    style.setup()
    written = curve_figures.draw(load_runs(empty), load_summaries(empty), tmp_path / "out", None)
    assert (tmp_path / "out" / "fig9a_batch.png").exists() and len(written) >= 3 * 16


def test_author_curve_is_drawn_against_fraction_of_run(data, tmp_path):
    runs, summaries = data
    (tmp_path / "clr3SS5kFig1a.log").write_text(LOG)
    reference = {"clr3SS5kFig1a": read_caffe_log(tmp_path / "clr3SS5kFig1a.log")}
    spec = next(s for s in registry.CURVES if s.name == "fig1a_clr_vs_pclr")
    ours = runs[runs.experiment == "fig1a"]
    assert curve_figures.x_axis(ours, list(reference.items())) == "fraction of run"  # 200 vs 20 iterations
    assert curve_figures.x_axis(ours, []) == "iteration"
    curve_figures.draw_curves(spec, runs, summaries, tmp_path, reference)
    table = pd.read_csv(tmp_path / "fig1a_clr_vs_pclr.csv")
    assert len(table) == 2  # the author's curve is drawn, not tabled as ours


def test_unfinished_and_diverged_runs_are_named(data):
    _, summaries = data
    spec = next(s for s in registry.CURVES if s.name == "table1_maxlr")
    notes = curve_figures._missing_note(spec, summaries)
    assert any("diverged" in n for n in notes)
    spec = next(s for s in registry.CURVES if s.name == "fig1a_clr_vs_pclr")
    assert any("unfinished" in n for n in curve_figures._missing_note(spec, summaries))


# ------------------------------------------------------------------------------ two scales
def two_scale_store(tmp_path: Path, experiment: str = "fig1a", accs=(0.6, 0.7)) -> Path:
    """The fixture runs of `experiment` (smoke scale) plus a copy of every finished one relabelled `mini`
    (config scale_name) with final accuracies from `accs`, cycling: the same experiment at two scales."""
    import json
    import shutil

    root = tmp_path / "two_scales"
    shutil.copytree(FIXTURES / experiment, root / experiment)
    finished = sorted(p for p in (FIXTURES / experiment).iterdir() if (p / "DONE").exists())
    for i, src in enumerate(finished):
        dst = root / experiment / src.name.replace("scale=smoke", "scale=mini")
        assert dst.name != src.name
        shutil.copytree(src, dst)
        cfg = (dst / "config.yaml").read_text()
        assert "scale_name: smoke" in cfg
        (dst / "config.yaml").write_text(cfg.replace("scale_name: smoke", "scale_name: mini"))
        summary = json.loads((dst / "summary.json").read_text())
        summary["final_test_acc"] = accs[i % len(accs)]
        (dst / "summary.json").write_text(json.dumps(summary))
    return root


def test_two_scales_give_separate_curves_and_table_rows(tmp_path):
    store = two_scale_store(tmp_path)
    runs, summaries = load_runs(store), load_summaries(store)
    assert set(summaries["scale"]) == {"smoke", "mini"}
    style.setup()
    spec = next(s for s in registry.CURVES if s.name == "fig1a_clr_vs_pclr")
    curve_figures.draw_curves(spec, runs, summaries, tmp_path / "out", None)
    table = pd.read_csv(tmp_path / "out" / "fig1a_clr_vs_pclr.csv")
    assert list(table["curve"]) == ["clr (mini)", "clr (smoke)", "multistep (mini)", "multistep (smoke)"]
    assert list(table["n"]) == [2, 2, 2, 2]  # never n = 4: seeds of one scale only
    rows = table.set_index("curve")
    fin = summaries[summaries.status == "completed"]
    for sched in ("clr", "multistep"):
        for scale in ("mini", "smoke"):
            want = fin[(fin.schedule == sched) & (fin.scale == scale)]["final_test_acc"]
            assert rows.loc[f"{sched} ({scale})", "mean"] == pytest.approx(want.mean(), abs=1e-6)
    # the mini copies' accuracies (0.6, 0.7) are far from the smoke ones: a pooled mean would be between
    both = fin[fin.schedule == "clr"]["final_test_acc"].mean()
    assert all(abs(m - both) > 0.1 for m in rows["mean"])
    # the curves themselves: one line per schedule and scale in the legend
    labels = curve_figures.curve_labels(runs[runs.experiment == "fig1a"], spec)
    assert set(labels) == {"clr (mini)", "clr (smoke)", "multistep (mini)", "multistep (smoke)"}


def test_one_scale_labels_are_unchanged(data):
    runs, _ = data
    spec = next(s for s in registry.CURVES if s.name == "fig1a_clr_vs_pclr")
    fig1a = runs[runs.experiment == "fig1a"]
    assert set(curve_figures.curve_labels(fig1a, spec)) == {"clr", "multistep"}
    assert not curve_figures.spans_scales(fig1a)
    # a figure whose labels already name the scale (every varying factor) gets no second suffix
    mixed = pd.concat([fig1a, fig1a.assign(scale="mini", depth=56)], ignore_index=True)
    generic = registry.FigureSpec("other_x", "-", "x", ("fig1a",))
    assert set(curve_figures.curve_labels(mixed, generic)) == {
        "depth=20, schedule=clr, max_lr=0.5, scale=smoke", "depth=56, schedule=clr, max_lr=0.5, scale=mini",
        "depth=20, schedule=multistep, max_lr=0.35, scale=smoke",
        "depth=56, schedule=multistep, max_lr=0.35, scale=mini"}


def test_two_scale_sweep_has_one_line_per_scale(tmp_path):
    store = two_scale_store(tmp_path, "fig6a_fraction", accs=(0.5, 0.6, 0.7, 0.8))
    summaries = load_summaries(store)
    style.setup()
    spec = next(s for s in registry.SWEEPS if s.name == "sweep_fraction")
    curve_figures.draw_sweep(spec, summaries, tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "sweep_fraction.csv")
    assert list(table.columns) == ["schedule", "fraction", "n", "mean", "sd"]
    assert set(table["schedule"]) == {"clr (mini)", "clr (smoke)", "multistep (mini)", "multistep (smoke)"}
    assert (table["n"] == 1).all() and len(table) == 8  # 2 schedules x 2 fractions x 2 scales, none pooled
    mini = summaries[summaries.scale == "mini"]
    for _, r in table[table["schedule"].str.endswith("(mini)")].iterrows():
        want = mini[(mini.schedule == r["schedule"].split(" ")[0]) & (mini.fraction == r["fraction"])]
        assert r["mean"] == pytest.approx(float(want["final_test_acc"].iloc[0]), abs=1e-6)


def test_scales_of_different_lengths_are_drawn_against_fraction_of_run():
    df = pd.DataFrame({"iterations": [10000, 150, 1200]})
    assert curve_figures.x_axis(df, [], by_scale=True) == "fraction of run"
    assert curve_figures.x_axis(df, []) == "iteration"  # one scale, several lengths (Fig 1b): iterations
    assert curve_figures.x_axis(df.iloc[:1], [], by_scale=True) == "iteration"


def test_an_undeclared_experiment_separates_its_arms_by_bn_momentum_and_precision():
    """The "other" figures (no FigureSpec hue) label curves by every factor that varies: a BN-momentum sweep or a
    precision check is two curves, each named, never one pooled band."""
    spec = registry.FigureSpec("other_x", "(not in the paper)", "x", ("x",))
    runs = pd.DataFrame({"seed": [0, 1, 0, 1], "schedule": ["multistep"] * 4, "bn_momentum": [0.001, 0.001, 0.06, 0.06],
                         "precision": ["fp32"] * 4, "scale": ["mini"] * 4})
    assert curve_figures.varying_factors(runs) == ["bn_momentum"]
    assert curve_figures.curve_labels(runs, spec).tolist() == ["bn_momentum=0.001"] * 2 + ["bn_momentum=0.06"] * 2
    runs = runs.assign(bn_momentum=0.001, precision=["bf16", "bf16", "fp32", "fp32"])
    assert curve_figures.curve_labels(runs, spec).tolist() == ["precision=bf16"] * 2 + ["precision=fp32"] * 2


def test_the_seed_sd_never_pools_a_bn_momentum_sweep():
    from paper_figures.judging import seed_sd

    rows = pd.DataFrame([{"experiment": "bn_horizon", "run": f"r{i}", "status": "completed", "job_type": "train",
                          "seed": i % 2, "bn_momentum": m, "final_test_acc": a, "precision": "fp32"}
                         for i, (m, a) in enumerate([(0.001, 0.60), (0.001, 0.50), (0.06, 0.75), (0.06, 0.77)])])
    sd = seed_sd(rows, "mini")
    # two groups of two seeds: sqrt((50 + 2) / 2) pp; pooled as four seeds of one group it would be ~12 pp
    assert sd.groups == 2 and sd.sd == pytest.approx(((50 + 2) / 2) ** 0.5)


def test_a_batch_sweep_draws_the_frontiers_shared_batch_1000_arm(tmp_path):
    """At the frontier scale the batch sweep's batch 1000 is the frontier's CLR 400 runs (paper_figures.controls):
    drawn and tabled beside the sweep's own batches, and no other frontier run."""
    def row(experiment, batch, acc, seed, iterations=400, schedule="clr"):
        return dict(experiment=experiment, run=f"{experiment}-{batch}-{iterations}-{schedule}-{seed}", job_type="train",
                    status="completed", batch_size=batch, iterations=iterations, schedule=schedule, fraction=0.2,
                    weight_decay=1e-4, scale="frontier", seed=seed, final_test_acc=acc, precision="fp32")
    rows = [row("fig9a_batch", b, a + 0.002 * s, s) for b, a in ((256, 0.70), (1536, 0.76)) for s in (0, 1)]
    rows += [row("frontier", 1000, 0.75 + 0.002 * s, s) for s in (0, 1)]
    rows += [row("frontier", 1000, 0.60, 0, iterations=200), row("frontier", 1000, 0.70, 0, schedule="multistep")]
    style.setup()
    spec = next(s for s in registry.SWEEPS if s.name == "sweep_batch_size")
    curve_figures.draw_sweep(spec, pd.DataFrame(rows), tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "sweep_batch_size.csv")
    assert list(table["batch_size"]) == [256, 1000, 1536] and (table["n"] == 2).all()
    assert table.set_index("batch_size").loc[1000, "mean"] == pytest.approx(0.751)
