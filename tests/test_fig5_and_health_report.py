"""Fig 5 (the LR estimate) and run health in the figures and the report, on run directories written here: the
figure and its table from whatever fig5 runs exist, the report's Fig 5 cells, health computed for runs stored
before summaries had it (without touching them), the flag beside the number and in the verdict that rests on it."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

from paper_figures import lr_estimate_figure, style
from paper_figures.judging import flag_note, split_flags
from paper_figures.load import load_runs, load_summaries
from paper_figures.claims import CLAIMS
from paper_figures.report import render_report
from paper_figures.verdicts import attach_health, judge_all
from superconv.health import RULES_VERSION
from superconv.results import METRIC_COLUMNS, RunDir

BY_ID = {c.id: c for c in CLAIMS}
OLD_COLUMNS = [c for c in METRIC_COLUMNS if c != "lr_estimate"]


def make_run(root: Path, experiment: str, name: str, *, schedule: str, seed: int = 0, n: int = 100,
             test_acc=lambda i: min(0.8, 0.1 + i / 100), train_acc=lambda i: min(0.9, 0.1 + i / 90),
             lr=lambda i: 0.1, estimate=None, health: list[str] | None = None, old: bool = False,
             batch: int = 256, rules: int | None = None) -> RunDir:
    """A finished mini-like run: n iterations, evaluations every 10. `estimate(i)`: the lr_estimate column;
    `old`: a metrics.csv and summary from before the lr_estimate column and health existed."""
    rd = RunDir(root / experiment / name)
    rd.path.mkdir(parents=True)
    rd.write_config({
        "seed": seed, "experiment_name": experiment, "scale_name": "mini", "protocol_version": 2,
        "model": {"depth": 20, "variant": "paper", "dropout": 0.0, "bn_momentum": 0.05, "bn_stats": "caffe",
                  "bn_group": batch // 8},  # the per-replica rule: batch / train.replicas (8)
        "data": {"name": "cifar10", "fraction": 1.0, "augment": "paper"},
        "optim": {"name": "sgd", "momentum": 0.9, "weight_decay": 1e-4, "nesterov": False},
        "schedule": {"name": schedule, "max_lr": 3.0 if schedule == "clr" else 0.35, "min_lr": 0.1},
        "train": {"batch_size": batch, "iterations": n, "eval_every": 10},
    })
    cols = OLD_COLUMNS if old else list(METRIC_COLUMNS)
    lines = [",".join(cols)]
    for i in range(1, n + 1):
        ev = i % 10 == 0
        row = {"iteration": i, "epoch": i / 200, "lr": lr(i), "momentum": 0.9, "train/loss": max(0.5, 2.3 - i / 50),
               "train/acc": train_acc(i), "test/loss": 1.0 if ev else None, "test/acc": test_acc(i) if ev else None,
               "lr_estimate": None if estimate is None else estimate(i)}
        lines.append(",".join("" if row[c] is None else repr(row[c]) if isinstance(row[c], float) else str(row[c])
                              for c in cols))
    rd.metrics.write_text("\n".join(lines) + "\n")
    summary = {"status": "completed", "final_test_acc": test_acc(n), "best_test_acc": test_acc(n), "iterations": n,
               "images_seen": 256 * n, "wall_s": 1.0, "images_per_s": 300.0, "git_sha": "abc",
               "device": "cpu: test", "command": "x", "job_type": "train", "precision": "bf16"}
    if not old:
        summary["health"] = {"flags": health or [], "why": {}, "not_judged": {},
                             "rules_version": RULES_VERSION if rules is None else rules}
    rd.write_summary(summary)
    rd.mark_done()
    return rd


@pytest.fixture
def store(tmp_path) -> Path:
    root = tmp_path / "results"
    for seed in (0, 1):
        # the sweep's reference arm (the largest batch): converged, its last batches fit at 99%
        make_run(root, "fig9a_batch", f"batch=512,seed={seed}", schedule="clr", seed=seed, old=True, batch=512,
                 test_acc=lambda i: min(0.8, 0.1 + i / 100) + 0.01 * seed, train_acc=lambda i: min(0.99, 0.1 + i / 50))
    # an old run whose BN statistics lag: trains to 0.9, tests at chance to the end
    make_run(root, "fig9a_batch", "batch=128,seed=0", schedule="clr", seed=0, old=True, batch=128,
             test_acc=lambda i: 0.11)
    make_run(root, "fig9a_batch", "batch=128,seed=1", schedule="clr", seed=1, old=True, batch=128,
             test_acc=lambda i: min(0.7, 0.1 + i / 110))
    make_run(root, "fig5a_lr_estimate", "scale=mini", schedule="range_test", n=300, lr=lambda i: 0.1 + 2.9 * i / 5000,
             estimate=lambda i: None if i < 2 else 2.0 + math.sin(i / 50))
    make_run(root, "fig5b_lr_estimate", "schedule=constant", schedule="constant", health=["still_improving"],
             estimate=lambda i: None if i < 2 else 3.0 * math.exp(-i / 30) + 0.2)
    make_run(root, "fig5b_lr_estimate", "schedule=clr", schedule="clr",
             lr=lambda i: 0.1 + 2.9 * max(0.0, 1 - abs(i / 50 - 1)),
             estimate=lambda i: None if i < 2 else 1.0 + i / 200)
    return root


def snapshot(root: Path) -> dict:
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


def test_health_is_computed_for_old_runs_and_shown_beside_their_number(store):
    before = snapshot(store)
    summaries, runs = load_summaries(store), load_runs(store)
    assert not isinstance(summaries.set_index("run").loc["batch=128,seed=0", "health"], str)  # stored before health
    text = render_report(summaries, None, [], store.parent, "cmd", runs)
    assert snapshot(store) == before  # the report reads results/, never writes it
    # the flagged run's number carries its flag, and the verdict resting on it says so
    assert "[flagged: test_lags_train 1 of 2]" in text
    assert "rests on flagged runs: smallest batch 1 of 2 test_lags_train" in text
    # the Run health section names it, says the report computed it, and why
    section = text.split("## Run health", 1)[1].split("## Figures", 1)[0]
    assert "`fig9a_batch/batch=128,seed=0`: **test_lags_train** (test_lags_train: final evaluation" in section
    assert "computed from metrics.csv by the report" in section and "from summary.json" in section
    # a flag stored in summary.json is taken as stored
    assert "`fig5b_lr_estimate/schedule=constant`: **still_improving**" in section
    # healthy runs are not named
    assert "batch=512,seed=0`" not in section


def test_flags_stored_under_older_rules_are_recomputed(tmp_path):
    root = tmp_path / "results"
    make_run(root, "fig9a_batch", "old-rules", schedule="clr", health=["still_improving"], rules=RULES_VERSION - 1)
    make_run(root, "fig9a_batch", "current", schedule="clr", health=["still_improving"])
    summaries = load_summaries(root).set_index("run")
    assert not isinstance(summaries.loc["old-rules", "health"], str)  # not taken: computed again
    assert summaries.loc["current", "health"] == "still_improving"
    out = attach_health(load_summaries(root), load_runs(root)).set_index("run")
    assert out.loc["old-rules", "health"] == "" and out.loc["old-rules", "health/source"].startswith("computed")


def test_attach_health_without_metrics_keeps_what_is_stored(store):
    summaries = load_summaries(store)
    out = attach_health(summaries, None)
    by_run = out.set_index("run")
    assert by_run.loc["schedule=constant", "health"] == "still_improving"
    assert not isinstance(by_run.loc["batch=128,seed=0", "health"], str)  # unknown: nothing to compute it from
    assert split_flags(None) == () and split_flags("") == () and split_flags("a,b") == ("a", "b")
    assert flag_note([("A", ["", None]), ("B", ["x"])]) == "; rests on flagged runs: B 1 of 1 x"
    assert flag_note([("A", ["diverged", ""])]) == ""  # diverged runs are counted by the comparison itself


def test_fig5_claims_quote_the_estimate(store):
    summaries, verdicts = judge_all(load_summaries(store), load_runs(store))
    v = dict((c.id, v) for c, v in verdicts)
    labels = {v[k].label for k in ("fig5a_lr_estimate", "fig5b_constant", "fig5b_clr")}
    assert labels == {"not judged automatically"}
    text = render_report(load_summaries(store), None, [], store.parent, "cmd", load_runs(store))
    sec = text.split("### fig5b_constant", 1)[1].split("###", 1)[0]
    # start at iteration 2: 3 exp(-2/30) + 0.2; end at 100: 3 exp(-100/30) + 0.2; the peak is the start
    assert f"start {3 * math.exp(-2 / 30) + 0.2:.3g} (it 2)" in sec
    assert f"end {3 * math.exp(-10 / 3) + 0.2:.3g} (it 100)" in sec
    assert "| Fig 5b | spikes ~3, ends ~0.2 |" in sec and "[flagged: still_improving]" in sec
    sec = text.split("### fig5a_lr_estimate", 1)[1].split("###", 1)[0]
    assert "| Fig 5a | 2-4 |" in sec and "LR estimate" in sec


def test_fig5_figure_and_table(store, tmp_path):
    style.setup()
    out = tmp_path / "figs"
    out.mkdir()
    written = lr_estimate_figure.draw(load_runs(store), load_summaries(store), out)
    assert sorted(p.name for p in written) == [f"fig5_lr_estimate.{x}" for x in ("csv", "pdf", "png")]
    table = pd.read_csv(out / "fig5_lr_estimate.csv")
    assert list(table["run"]) == ["scale=mini", "schedule=clr", "schedule=constant"]
    clr = table.set_index("run").loc["schedule=clr"]
    assert clr["start_it"] == 2 and clr["end_it"] == 100 and clr["end"] == pytest.approx(1.5)
    assert clr["middle_it"] == 50 and clr["peak"] == pytest.approx(1.5)
    # drawn twice from the same files: the same bytes
    again = {p.name: p.read_bytes() for p in written}
    lr_estimate_figure.draw(load_runs(store), load_summaries(store), out)
    assert {p.name: p.read_bytes() for p in written} == again


def test_fig5_figure_without_runs_says_what_is_missing(tmp_path):
    style.setup()
    empty = tmp_path / "results"
    empty.mkdir()
    written = lr_estimate_figure.draw(load_runs(empty), load_summaries(empty), tmp_path)
    assert (tmp_path / "fig5_lr_estimate.png").exists() and len(written) == 3
    assert pd.read_csv(tmp_path / "fig5_lr_estimate.csv").empty
