"""Range-test figures (accuracy mode and lr_find) and the schedules figure.

Drawn from the committed fixture results (tests/fixtures/results: real smoke-scale runs of
range_fig2b_5k in accuracy mode and range_lrfind in loss mode) and from tiny Caffe log excerpts written
here; nothing trains and nothing reads ../shared.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

from paper_figures import range_figures, registry, schedule_figure, style
from paper_figures.caffe_log import read_caffe_log, read_reference_dir
from paper_figures.load import load_runs, load_summaries
from superconv.schedules import build_schedule

FIXTURES = ROOT / "tests" / "fixtures" / "results"
FIG2B = next(s for s in registry.RANGE if s.name == "fig2b_range_test")
FIG7A = next(s for s in registry.RANGE if s.name == "fig7a_range_cifar100")

# ------------------------------------------------------------------------- a tiny author range test
P = "I0817 16:02:51.582952 17550"
HEADER = f"""{P} solver.cpp:48] Initializing solver from parameters: 
test_iter: 200
test_interval: 100
base_lr: 0
max_iter: 300
lr_policy: "triangular"
momentum: 0.9
stepsize: 300
max_lr: 3
{P} solver.cpp:91] Creating training net from net file: arch.prototxt
"""


def _block(it: int, acc: float, loss: float, lr: float | None) -> str:
    text = (f"{P} solver.cpp:337] Iteration {it}, Testing net (#0)\n"
            f"{P} solver.cpp:404]     Test net output #0: accuracy = {acc}\n"
            f"{P} solver.cpp:404]     Test net output #1: loss = {loss} (* 1 = {loss} loss)\n")
    if lr is not None:  # the run's last test (after the final step) has no lr line
        text += (f"{P} solver.cpp:228] Iteration {it}, loss = {loss * 0.8}\n"
                 f"{P} sgd_solver.cpp:166] Iteration {it}, lr = {lr}\n")
    return text


# LR 0 -> 3 over 300 iterations: lr table 0, 1, 2 at 0, 100, 200; the test at 300 has no lr line.
AUTHOR_LOG = (HEADER + _block(0, 0.1, 2.3, 0.0) + _block(100, 0.6, 1.2, 1.0) + _block(200, 0.8, 0.7, 2.0)
              + _block(300, 0.5, 1.9, None))


@pytest.fixture(scope="module")
def fixture_frames():
    assert (FIXTURES / "range_fig2b_5k").is_dir() and (FIXTURES / "range_lrfind").is_dir()
    return load_runs(FIXTURES), load_summaries(FIXTURES)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("author")
    (d / "range3Iter5kFig2b.log").write_text(AUTHOR_LOG)
    return read_reference_dir(d)


def _capturing_save(seen: dict, render: bool = True):
    """A style.save that records, per stem, (texts, {label: (x, y)} of the labelled lines of every axes).

    With render=False it writes placeholder files instead of rendering: for tests of what is drawn, not of
    the rendering (which the other tests cover), since rendering costs most of this module's time.
    """
    real_save = style.save

    def save(fig, path, **kw):
        texts = [t.get_text() for t in fig.texts] + [fig.get_suptitle()]
        lines = {}
        for ax in fig.axes:
            texts += [t.get_text() for t in ax.texts]
            for line in ax.lines:
                if not line.get_label().startswith("_"):
                    lines[line.get_label()] = (np.asarray(line.get_xdata(), float),
                                               np.asarray(line.get_ydata(), float))
        seen[Path(path).name] = (texts, lines)
        if render:
            return real_save(fig, path, **kw)
        plt.close(fig)
        out = []
        for suffix in (".pdf", ".png"):
            q = Path(path).with_name(Path(path).name + suffix)
            q.parent.mkdir(parents=True, exist_ok=True)
            q.write_bytes(b"placeholder")
            out.append(q)
        return out

    return save


@pytest.fixture
def captured(monkeypatch):
    seen: dict[str, tuple[list[str], dict]] = {}
    monkeypatch.setattr(style, "save", _capturing_save(seen))
    return seen


@pytest.fixture
def captured_fast(monkeypatch):
    seen: dict[str, tuple[list[str], dict]] = {}
    monkeypatch.setattr(style, "save", _capturing_save(seen, render=False))
    return seen


@pytest.fixture(scope="module")
def drawn(fixture_frames, reference, tmp_path_factory):
    """Every range figure of the fixtures (with the tiny author log) and the schedules figure, drawn once:
    (out_dir, paths written, what each figure showed)."""
    style.setup()
    out = tmp_path_factory.mktemp("figs")
    runs, summaries = fixture_frames
    seen: dict[str, tuple[list[str], dict]] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(style, "save", _capturing_save(seen))
        paths = range_figures.draw(runs, summaries, out, reference)
        paths += schedule_figure.draw(runs, summaries, out, reference)
    return out, paths, seen


def _joined(seen: dict, stem: str) -> str:
    """A figure's texts with its wrapped caption lines joined again."""
    return "\n".join(seen[stem][0]).replace("\n    ", " ")


def _summary_row(summaries: pd.DataFrame, experiment: str) -> pd.Series:
    rows = summaries[summaries["experiment"] == experiment]
    assert len(rows) == 1
    return rows.iloc[0]


# --------------------------------------------------------------------------------------- tests
def test_every_figure_writes_pdf_png_csv(drawn):
    out, paths, _ = drawn
    stems = [s.name for s in registry.RANGE] + ["lr_find_range_lrfind", "schedules"]
    for stem in stems:
        for suffix in (".pdf", ".png", ".csv"):
            p = out / f"{stem}{suffix}"
            assert p in paths, p
            assert p.stat().st_size > 0
    assert len(paths) == 3 * len(stems)  # range_fig2b_5k is named in RANGE: no generic figure for it
    assert (out / "fig2b_range_test.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "fig2b_range_test.pdf").read_bytes()[:5] == b"%PDF-"


def test_range_table_matches_the_summary(drawn, fixture_frames):
    out, _, _ = drawn
    s = _summary_row(fixture_frames[1], "range_fig2b_5k")
    table = pd.read_csv(out / "fig2b_range_test.csv")
    ours = table[table["source"] == "ours"]
    assert len(ours) == 1
    row = ours.iloc[0]
    assert row["experiment"] == "range_fig2b_5k"
    assert row["verdict"] == s["range_test/verdict/label"]
    assert row["peak_acc"] == pytest.approx(s["range_test/verdict/peak_acc"], rel=1e-5)
    assert row["peak_lr"] == pytest.approx(s["range_test/verdict/peak_lr"], rel=1e-5)
    assert row["bound_max_lr"] == pytest.approx(s["range_test/bounds/max_lr"], rel=1e-5)
    assert row["bound_min_lr"] == pytest.approx(s["range_test/bounds/min_lr"], rel=1e-5)
    assert row["scale"] == "smoke"
    # a figure without results still writes its (empty) table, with the columns
    empty = pd.read_csv(out / "fig7a_range_cifar100.csv")
    assert list(empty.columns) == range_figures.RANGE_TABLE_COLUMNS and len(empty) == 0


def test_range_figure_draws_the_logged_curve_and_verdict(drawn, fixture_frames):
    _, _, seen = drawn
    runs, summaries = fixture_frames
    s = _summary_row(summaries, "range_fig2b_5k")
    x, y = seen["fig2b_range_test"][1][f"range_fig2b_5k: {s['range_test/verdict/label']}"]
    evals = runs[(runs["experiment"] == "range_fig2b_5k") & runs["test/acc"].notna()]
    np.testing.assert_allclose(x, evals["lr"].to_numpy())
    np.testing.assert_allclose(y, evals["test/acc"].to_numpy())
    assert x[np.argmax(y)] == pytest.approx(s["range_test/verdict/peak_lr"])
    joined = _joined(seen, "fig2b_range_test")
    assert s["range_test/verdict/text"][:60] in joined  # the verdict's sentence is written under the figure
    assert "scale smoke" in joined and f"{int(s['iterations'])} it" in joined  # scale and length in the title
    for exp in ("range_fig2b_20k", "range_fig2b_100k"):
        assert f"no results yet for {exp}: python -m superconv.range_test experiment={exp}" in joined


def test_reference_overlay(drawn):
    out, _, seen = drawn
    lines = seen["fig2b_range_test"][1]
    x, y = lines["author 5k (author's log range3Iter5kFig2b)"]
    # LR from the lr table (0, 1, 2); the last test has no lr line: the triangular policy's 3.0
    np.testing.assert_allclose(x, [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(y, [0.1, 0.6, 0.8, 0.5])
    table = pd.read_csv(out / "fig2b_range_test.csv")
    author = table[table["source"] == "author log"].iloc[0]
    assert author["run"] == "range3Iter5kFig2b" and author["curve"] == "author 5k"
    assert author["peak_acc"] == pytest.approx(0.8) and author["peak_lr"] == pytest.approx(2.0)
    assert author["verdict"] == "collapses"  # 0.5 < 0.8 * 0.8 after the peak
    joined = _joined(seen, "fig2b_range_test")  # the spec's author logs absent from the folder are named
    assert "range3Iter20kFig2b" in joined and "range3Iter100kFig2b" in joined
    # a figure whose author logs are all absent draws none
    assert not any(label.startswith("author") for label in seen["fig4_range_depth"][1])


def test_without_reference(fixture_frames, tmp_path, captured):
    style.setup()
    runs, summaries = fixture_frames
    paths = range_figures.draw_range(FIG2B, runs, summaries, tmp_path, None)
    assert [p.name for p in paths] == ["fig2b_range_test.pdf", "fig2b_range_test.png", "fig2b_range_test.csv"]
    assert all(p.exists() for p in paths)
    table = pd.read_csv(tmp_path / "fig2b_range_test.csv")
    assert set(table["source"]) == {"ours"}
    assert not any(label.startswith("author") for label in captured["fig2b_range_test"][1])
    assert "reference folder" not in _joined(captured, "fig2b_range_test")


def test_reference_lr(tmp_path):
    (tmp_path / "tri.log").write_text(AUTHOR_LOG)
    log = read_caffe_log(tmp_path / "tri.log")
    np.testing.assert_allclose(range_figures.reference_lr(log, [0, 50, 100, 250, 300]), [0, 0.5, 1, 2.5, 3])
    # no triangular header: interpolated inside the table, the nearest logged LR past its end
    (tmp_path / "bare.log").write_text(_block(0, 0.1, 2.3, 0.5) + _block(100, 0.2, 2.0, 0.7)
                                       + _block(200, 0.3, 1.9, None))
    bare = read_caffe_log(tmp_path / "bare.log")
    np.testing.assert_allclose(range_figures.reference_lr(bare, [0, 50, 200]), [0.5, 0.6, 0.7])


def test_missing_results_give_a_note(drawn):
    out, _, seen = drawn
    assert all((out / f"fig7a_range_cifar100{sfx}").exists() for sfx in (".pdf", ".png", ".csv"))
    joined = " ".join(seen["fig7a_range_cifar100"][0]).replace("\n", " ")
    assert "no results yet for range_fig7a_cifar100" in joined


def test_empty_store_never_crashes(tmp_path, captured_fast):
    style.setup()
    runs, summaries = load_runs(tmp_path / "nothing"), load_summaries(tmp_path / "nothing")
    paths = range_figures.draw(runs, summaries, tmp_path / "out", None)
    assert sorted(p.name for p in paths) == sorted(f"{s.name}{sfx}" for s in registry.RANGE
                                                   for sfx in (".pdf", ".png", ".csv"))
    assert all(p.exists() for p in paths)
    for spec in registry.RANGE:
        assert "no results yet" in _joined(captured_fast, spec.name)


def test_partial_store_unfinished_and_generic(tmp_path, captured_fast):
    """An accuracy-mode experiment not named in RANGE gets a generic figure; an unfinished run is noted."""
    style.setup()
    results = tmp_path / "results"
    src = FIXTURES / "range_fig2b_5k"
    shutil.copytree(src, results / "range_custom")
    shutil.copytree(src, results / "range_fig2b_20k")
    unfinished = next((results / "range_fig2b_20k").iterdir())
    (unfinished / "DONE").unlink()  # as a killed run leaves it
    runs, summaries = load_runs(results), load_summaries(results)
    paths = range_figures.draw(runs, summaries, tmp_path / "out", None)
    names = {p.name for p in paths}
    assert {"range_test_range_custom.png", "range_test_range_custom.pdf", "range_test_range_custom.csv"} <= names
    assert not any(n.startswith("lr_find_") for n in names)
    joined = _joined(captured_fast, "fig2b_range_test")
    assert "range_fig2b_20k: 1 unfinished run(s) not drawn" in joined
    assert "no results yet for range_fig2b_20k" in joined
    table = pd.read_csv(tmp_path / "out" / "range_test_range_custom.csv")
    assert list(table["experiment"]) == ["range_custom"]
    assert "range_custom: " in " ".join(captured_fast["range_test_range_custom"][1])


def test_lr_find_figure(drawn, fixture_frames):
    out, _, seen = drawn
    runs, summaries = fixture_frames
    s = _summary_row(summaries, "range_lrfind")
    assert s["range_test/mode"] == "loss"
    table = pd.read_csv(out / "lr_find_range_lrfind.csv")
    assert len(table) == 1
    for name in ("valley", "steep", "minimum"):
        assert table.iloc[0][name] == pytest.approx(s[f"range_test/suggestions/{name}"], rel=1e-5)
    lines = seen["lr_find_range_lrfind"][1]
    for name in ("valley", "steep", "minimum"):
        v = s[f"range_test/suggestions/{name}"]
        x, _ = lines[f"{name} {v:.3g}"]
        assert x[0] == pytest.approx(v)  # a vertical marker at the suggested LR
    x, y = lines["range_lrfind (smoothed)"]
    first_loss = runs.loc[runs["experiment"] == "range_lrfind", "train/loss"].iloc[0]
    assert np.all(np.diff(x) > 0) and y[0] == pytest.approx(first_loss)  # debiased EMA starts at the loss


def test_two_draws_are_byte_identical(drawn, fixture_frames, reference, tmp_path):
    out, _, _ = drawn
    style.setup()
    runs, summaries = fixture_frames
    again = range_figures.draw_range(FIG2B, runs, summaries, tmp_path, reference)
    again += range_figures.draw_lr_find("range_lrfind", runs, summaries, tmp_path)
    again += schedule_figure.draw(runs, summaries, tmp_path, reference)
    assert len(again) == 9
    for p in again:
        assert p.read_bytes() == (out / p.name).read_bytes(), p.name


def test_schedules_table_matches_build_schedule(drawn):
    out, _, _ = drawn
    table = pd.read_csv(out / "schedules.csv")
    assert list(table["schedule"].unique()) == list(schedule_figure.SCHEDULES)
    assert list(table["iteration"].unique()) == [0, 2500, 5000, 7500, 9999]
    for name in schedule_figure.SCHEDULES:
        cfg = yaml.safe_load((ROOT / "conf" / "schedule" / f"{name}.yaml").read_text())
        s = build_schedule(cfg, 10_000, 0.9)
        for _, r in table[table["schedule"] == name].iterrows():
            assert r["lr"] == pytest.approx(s.lr(int(r["iteration"])), rel=1e-5)
            assert r["momentum"] == pytest.approx(s.momentum(int(r["iteration"])), rel=1e-5)
    clr = table[table["schedule"] == "clr"].set_index("iteration")
    assert clr.loc[5000, "lr"] == pytest.approx(3.0) and clr.loc[0, "lr"] == pytest.approx(0.1)
    assert clr.loc[5000, "momentum"] == pytest.approx(0.9)  # constant momentum where the schedule keeps it
    multistep = table[table["schedule"] == "multistep"].set_index("iteration")
    assert multistep.loc[7500, "lr"] == pytest.approx(0.035)
    one_cycle = table[table["schedule"] == "one_cycle"].set_index("iteration")
    assert one_cycle.loc[0, "momentum"] == pytest.approx(0.95)
    assert one_cycle.loc[9999, "lr"] == pytest.approx(3.0 / 25 / 1e4)


def test_schedules_without_configs_give_a_note(tmp_path, captured):
    style.setup()
    conf = tmp_path / "conf"
    conf.mkdir()
    shutil.copy(ROOT / "conf" / "schedule" / "clr.yaml", conf / "clr.yaml")
    (conf / "fastai.yaml").write_text("name: fastai\nmax_lr: -1\n")  # invalid: ValueError
    paths = schedule_figure.draw(None, None, tmp_path / "out", None, conf_dir=conf)
    assert all(p.exists() for p in paths) and len(paths) == 3
    table = pd.read_csv(tmp_path / "out" / "schedules.csv")
    assert set(table["schedule"]) == {"clr"}
    joined = _joined(captured, "schedules")
    assert "one_cycle: not drawn" in joined and "fastai: not drawn" in joined and "multistep: not drawn" in joined
