"""Accuracy-vs-iteration and sweep figures on the committed fixture results (real smoke-scale runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paper_figures import curve_figures, registry, style  # noqa: E402
from paper_figures.caffe_log import read_caffe_log  # noqa: E402
from paper_figures.load import load_runs, load_summaries  # noqa: E402

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


def test_redrawing_gives_identical_bytes(data, tmp_path):
    runs, summaries = data
    curve_figures.draw(runs, summaries, tmp_path / "a", None)
    curve_figures.draw(runs, summaries, tmp_path / "b", None)
    for f in sorted((tmp_path / "a").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name


def test_unfinished_and_diverged_runs_are_named(data):
    _, summaries = data
    spec = next(s for s in registry.CURVES if s.name == "table1_maxlr")
    notes = curve_figures._missing_note(spec, summaries)
    assert any("diverged" in n for n in notes)
    spec = next(s for s in registry.CURVES if s.name == "fig1a_clr_vs_pclr")
    assert any("unfinished" in n for n in curve_figures._missing_note(spec, summaries))
