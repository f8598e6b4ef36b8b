"""The LR range test: lr_find restores state and is reproducible; both CLI modes write a verdict."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conftest import cli_env
from superconv.models.resnet import build_resnet
from superconv.optim import build_optimizer
from superconv.modes.range_test import lr_find
from superconv.results import read_metrics

OPTIM = {"name": "sgd", "momentum": 0.9, "weight_decay": 1e-4, "nesterov": False, "decay": "paper"}


def _batches(seed: int):
    """A seeded stream of learnable batches (class = which quadrant is bright)."""
    g = torch.Generator().manual_seed(seed)

    def next_batch():
        y = torch.randint(0, 4, (16,), generator=g)
        x = torch.randn(16, 3, 32, 32, generator=g) * 0.3
        for i, c in enumerate(y.tolist()):
            x[i, :, (c // 2) * 16:(c // 2 + 1) * 16, (c % 2) * 16:(c % 2 + 1) * 16] += 2.0
        return x, y

    return next_batch


def _setup():
    torch.manual_seed(0)
    model = build_resnet(8, "paper", num_classes=4)
    return model, build_optimizer(model, OPTIM, 0.1)


def test_lr_find_restores_model_optimizer_and_rng():
    model, opt = _setup()
    # give the optimizer some momentum state first, as a model mid-training would have
    x, y = _batches(1)()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_before = {k: v["momentum_buffer"].clone() for k, v in opt.state_dict()["state"].items()}
    rng_before = torch.get_rng_state()

    res = lr_find(model, opt, _batches(0), num_it=30, start_lr=1e-5, end_lr=10)
    assert len(res.lrs) >= 5
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN running stats
    opt_after = {k: v["momentum_buffer"] for k, v in opt.state_dict()["state"].items()}
    assert all(torch.equal(opt_before[k], opt_after[k]) for k in opt_before)
    assert torch.equal(rng_before, torch.get_rng_state())
    assert opt.param_groups[0]["lr"] == 0.1  # the search's LRs do not leak into the optimizer


def test_lr_find_is_reproducible_and_stops_on_divergence():
    results = []
    for _ in range(2):
        model, opt = _setup()
        results.append(lr_find(model, opt, _batches(0), num_it=60, start_lr=1e-5, end_lr=1e4))
    a, b = results
    assert a.lrs == b.lrs and a.losses == b.losses and a.suggestions == b.suggestions
    assert a.stopped_at is not None and a.stopped_at < 59  # LR 1e4 blows the loss up before the end
    assert a.lrs[0] == pytest.approx(1e-5)
    assert a.suggestions["minimum"] == pytest.approx(
        a.lrs[min(range(6, len(a.smoothed) - 5), key=a.smoothed.__getitem__)] / 10)


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
        assert summary["range_test"]["mode"] == "loss" and summary["range_test"]["restored"]
        assert rows[0]["lr"] == pytest.approx(1e-7)
        suggestions.append(summary["range_test"]["suggestions"])
    assert suggestions[0] == suggestions[1] and suggestions[0]["valley"] > 0


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
