"""The LR range test: both CLI modes write a verdict; lr_find is the training loop with fastai's stop rule."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import cli_env
from superconv.modes.range_test import LossStop
from superconv.range_analysis import smooth_losses, stop_index
from superconv.results import read_metrics

def test_the_loss_stop_is_fastais_rule_applied_loss_by_loss():
    losses = [2.0, 1.5, 1.0, 0.8, 0.9, 1.5, 3.0, 9.0, 40.0, 200.0, 1e4]
    rule = LossStop(factor=4.0, beta=0.5)
    first = next(i for i, loss in enumerate(losses) if rule(loss))
    assert first == stop_index(smooth_losses(losses, 0.5), 4.0) and 0 < first < len(losses) - 1
    resumed = LossStop(factor=4.0, beta=0.5, losses=losses[:first])  # an attempt resumed from its checkpoint
    assert resumed(losses[first]) and not LossStop(4.0, 0.5, losses[:3])(losses[3])


def _range_cli(tmp_path, data_dir, *overrides):
    tmp_path.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "superconv.range_test", "scale=smoke", "model=resnet20", "train.progress=false",
            f"paths.data_dir={data_dir}", f"paths.results_dir={tmp_path / 'results'}", *overrides]
    return subprocess.run(args, cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)


def _summary(tmp_path) -> tuple[dict, list]:
    (path,) = (tmp_path / "results").glob("*/*/summary.json")
    return json.loads(path.read_text()), read_metrics(path.with_name("metrics.csv"))


def test_accuracy_mode_cli_writes_verdict(tmp_path, synthetic_data_dir):
    proc = _range_cli(tmp_path, synthetic_data_dir, "schedule.max_lr=1.0", "train.eval_every=5",
                      "train.eval_subset=100")
    assert proc.returncode == 0, proc.stderr
    assert "verdict" in proc.stderr
    summary, rows = _summary(tmp_path)
    assert summary["job_type"] == "range_test" and summary["test_images"] == 100
    assert summary["range_test"]["verdict"]["label"] in ("stays_high", "collapses", "never_learns")
    assert summary["range_test"]["verdict"]["max_lr_tested"] == pytest.approx(1.0)
    lrs = [r["lr"] for r in rows]
    assert lrs[0] == 0.0 and lrs[-1] == pytest.approx(1.0)  # linear 0 -> max over the run
    assert all(b > a for a, b in zip(lrs, lrs[1:]))
    assert sum(r["test/acc"] is not None for r in rows) == 4  # every 5 of 20 iterations


def test_accuracy_mode_divergence_records_the_lr(tmp_path, synthetic_data_dir):
    proc = _range_cli(tmp_path, synthetic_data_dir, "schedule.max_lr=1e30", "train.eval_every=1",
                      "train.log_every=1")
    assert proc.returncode == 0, proc.stderr
    summary, rows = _summary(tmp_path)
    assert summary["status"] == "diverged"
    rt = summary["range_test"]
    assert rt["diverged_lr"] > 0 and rt["diverged_lr"] == pytest.approx(
        1e30 * (summary["diverged_at"] - 1) / 19)  # the LR of the update whose loss was not finite
    assert all(r["iteration"] < summary["diverged_at"] for r in rows)
    if rt["verdict"] is not None:
        assert rt["verdict"]["label"] in ("diverged", "never_learns")


def test_loss_mode_cli_is_reproducible(tmp_path, synthetic_data_dir):
    suggestions = []
    for name in ("a", "b"):
        proc = _range_cli(tmp_path / name, synthetic_data_dir, "range_test.mode=loss", "range_test.num_it=30")
        assert proc.returncode == 0, proc.stderr
        summary, rows = _summary(tmp_path / name)
        assert summary["range_test"]["mode"] == "loss" and summary["status"] == "completed"
        assert rows[0]["lr"] == pytest.approx(1e-7)
        assert all(r["test/acc"] is None for r in rows)  # no test evaluation: the finder reads training losses
        suggestions.append(summary["range_test"]["suggestions"])
    assert suggestions[0] == suggestions[1] and suggestions[0]["valley"] > 0


def test_loss_mode_stops_where_the_smoothed_loss_blows_up(tmp_path, synthetic_data_dir):
    proc = _range_cli(tmp_path, synthetic_data_dir, "range_test.mode=loss", "range_test.num_it=60",
                      "range_test.start_lr=1e-5", "range_test.end_lr=1e4")
    assert proc.returncode == 0, proc.stderr
    summary, rows = _summary(tmp_path)
    rt = summary["range_test"]
    assert rt["stopped_at"] is not None and rt["stopped_at"] < 59  # LR 1e4 blows the loss up before the end
    losses = [r["train/loss"] for r in rows]
    diverged = len(rows) == rt["stopped_at"]
    if not diverged:  # stopped by the rule at its last row (else: a non-finite loss next)
        assert stop_index(smooth_losses(losses), 4.0) == rt["stopped_at"]
        assert summary["iterations"] == len(rows) and rt["stop_lr"] == rows[-1]["lr"]
    else:
        assert len(rows) == rt["stopped_at"] and summary["diverged_at"] == rt["stopped_at"] + 1
    assert rows[0]["lr"] == pytest.approx(1e-5)
    smoothed = smooth_losses(losses + [float("nan")] * diverged)  # a non-finite loss stays in the analysis as NaN
    assert rt["suggestions"]["minimum"] == pytest.approx(
        rows[min(range(6, len(smoothed) - 5), key=smoothed.__getitem__)]["lr"] / 10)


@pytest.mark.parametrize("override,key", [
    ("schedule=clr", "schedule=clr"),
    ("range_test.mode=grid", "range_test.mode"),
    ("range_test.tolerance=1.5", "range_test.tolerance"),
    ("range_test.start_lr=0", "range_test.start_lr"),
])
def test_range_test_bad_input(tmp_path, synthetic_data_dir, override, key):
    proc = _range_cli(tmp_path, synthetic_data_dir, override)
    assert proc.returncode == 2
    assert key in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()
