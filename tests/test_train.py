"""One run end to end through the real CLI: results store, no-op rerun, resume, divergence, bad input, wandb."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

from types import SimpleNamespace

import pytest
import torch

from superconv.models import fused_bn
from superconv.results import read_metrics

SMOKE_DIR = ("adhoc", "scale=smoke")


VOLATILE = ("train.checkpoint_every", "train.log_every", "train.device", "train.progress", "train.threads", "paths.",
            "logger")


def run_dir(results: Path, *overrides: str) -> Path:
    """The directory Hydra's override_dirname gives: sorted overrides, comma-joined, volatile keys left out."""
    keys = sorted(o for o in ["scale=smoke", *overrides] if not o.startswith(VOLATILE))
    return results / "adhoc" / ",".join(keys)


def test_smoke_run_writes_a_complete_run_directory(run_cli, tmp_path):
    proc = run_cli()
    assert proc.returncode == 0, proc.stderr
    d = tmp_path / "results" / "adhoc" / "scale=smoke"
    assert sorted(p.name for p in d.iterdir()) == ["DONE", "config.yaml", "metrics.csv", "summary.json"]
    rows = read_metrics(d / "metrics.csv")
    assert [r["iteration"] for r in rows] == list(range(1, 21))  # scale=smoke: 20 iterations
    evaluated = [r["iteration"] for r in rows if r["test/acc"] is not None]
    assert evaluated == [10, 20]  # eval_every=10 and at the end
    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["iterations"] == 20 and summary["images_seen"] == 20 * 32
    assert summary["final_test_acc"] == rows[-1]["test/acc"]
    assert summary["best_test_acc"] == max(r["test/acc"] for r in rows if r["test/acc"] is not None)
    # the full pass over its own training set: the smoke run's LR 0.1 -> 3 at batch 32 leaves it at chance
    assert summary["final_train_images"] == 400 and 0.0 <= summary["final_train_acc"] < 0.97
    assert "underfit" in summary["health"]["flags"] and "underfit" in summary["health"]["why"]
    for key in ("wall_s", "images_per_s", "git_sha", "torch_version", "device", "command"):
        assert summary[key], key
    assert summary["command"].startswith("python -m superconv.train scale=smoke train.progress=false")
    assert summary["data_source"] == {"route": "synthetic"}  # make data's record; real data without one: unknown
    # ResNet-20's 19 BN layers, all through the fused kernel on CPU where it builds
    assert summary["fused_bn"] == ("19/19" if fused_bn.load() else "0/19")
    # the clr schedule scaled to 20 iterations: 0.1 -> 3.0 at iteration 10 -> back down
    assert rows[0]["lr"] == pytest.approx(0.1) and rows[10]["lr"] == pytest.approx(3.0)


def test_rerunning_a_finished_run_is_a_no_op(run_cli, tmp_path):
    assert run_cli().returncode == 0
    d = tmp_path / "results" / "adhoc" / "scale=smoke"
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in d.iterdir()}
    again = run_cli()
    assert again.returncode == 0
    assert "already done" in again.stderr
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in d.iterdir()} == before


def _wait_for_rows(path: Path, at_least: int, proc, timeout: float = 120.0) -> None:
    """Block until metrics.csv holds a row for iteration >= at_least (the run is mid-way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            rows = read_metrics(path)
        except Exception:  # the file may not exist yet or be mid-write
            rows = []
        if rows and rows[-1]["iteration"] >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"no row for iteration {at_least} in {path} after {timeout} s")


# one thread each: the reference runs alongside the run that is killed (2 cores)
RESUME_ARGS = ("train.iterations=40", "train.checkpoint_every=3", "train.log_every=1", "train.eval_every=10",
               "train.deterministic=true", "train.device=cpu", "train.threads=1")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_the_same_metrics(run_cli, tmp_path, sig):
    reference = run_cli(*RESUME_ARGS, results=tmp_path / "ref", wait=False)  # the uninterrupted run, alongside
    kill_at = random.Random().randint(4, 30)  # a random iteration, as a crash would pick
    proc = run_cli(*RESUME_ARGS, results=tmp_path / "res", wait=False)
    res_dir = run_dir(tmp_path / "res", *RESUME_ARGS)
    _wait_for_rows(res_dir / "metrics.csv", kill_at, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert not (res_dir / "DONE").exists()
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert "resume" in err
    assert (res_dir / "checkpoint.pt").exists()

    resumed = run_cli(*RESUME_ARGS, results=tmp_path / "res")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    _, ref_err = reference.communicate(timeout=300)
    assert reference.returncode == 0, ref_err
    ref_dir = run_dir(tmp_path / "ref", *RESUME_ARGS)
    assert (res_dir / "metrics.csv").read_text() == (ref_dir / "metrics.csv").read_text()
    a, b = (json.loads((d / "summary.json").read_text()) for d in (ref_dir, res_dir))
    for key in ("final_test_acc", "final_test_loss", "best_test_acc", "iterations", "images_seen"):
        assert a[key] == b[key], key
    assert not (res_dir / "checkpoint.pt").exists()  # deleted when the run completes


def test_forced_divergence_is_recorded_and_exits_zero(run_cli, tmp_path):
    args = ("schedule=constant", "schedule.max_lr=1e30", "train.log_every=1")
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    d = run_dir(tmp_path / "results", *args)
    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert summary["final_test_acc"] is None
    assert 1 <= summary["diverged_at"] <= 20
    rows = read_metrics(d / "metrics.csv")
    assert all(r["iteration"] < summary["diverged_at"] for r in rows)
    assert summary["last_finite"]["iteration"] == (rows[-1]["iteration"] if rows else 0)
    assert (d / "DONE").exists() and not (d / "checkpoint.pt").exists()


BAD_INPUT = [
    ("data.fraction=0", "data.fraction"),
    ("data.fraction=1.5", "data.fraction"),
    ("train.batch_size=0", "train.batch_size"),
    ("train.batch_size=100000", "train.batch_size"),  # larger than the synthetic training set
    ("train.iterations=0", "train.iterations"),
    ("train.eval_every=0", "train.eval_every"),
    ("schedule.max_lr=-1", "schedule.max_lr"),
    ("schedule.min_lr=5", "schedule.min_lr"),  # > max_lr 3.0
    ("optim.weight_decay=-1e-4", "optim.weight_decay"),
    ("model.dropout=-0.1", "model.dropout"),
    ("model.dropout=1.0", "model.dropout"),
    ("model=resnet99", "model=resnet99"),
    ("schedule=triangle", "schedule=triangle"),
    ("train.batch_size=abc", "train.batch_size"),
    ("schedule.max_LR=1", "max_LR"),  # a misspelt key
    ("train.compile=maybe", "train.compile"),
]


@pytest.mark.parametrize("override,key", BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(run_cli, tmp_path, override, key):
    proc = run_cli(override)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []  # the working directory too: no results, no Hydra outputs


def test_missing_data_names_the_directory(run_cli, tmp_path):
    empty = tmp_path / "nodata"
    empty.mkdir()
    proc = run_cli("data=cifar10", f"paths.data_dir={empty}")
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line and str(empty) in line and "Traceback" not in line
    assert not (tmp_path / "results").exists()


def test_results_directory_of_another_configuration_is_refused(run_cli, tmp_path):
    assert run_cli().returncode == 0
    d = tmp_path / "results" / "adhoc" / "scale=smoke"
    config = d / "config.yaml"
    config.write_text(config.read_text().replace("iterations: 20", "iterations: 21"))
    before = sorted(p.name for p in d.iterdir())
    proc = run_cli()
    assert proc.returncode == 2
    assert "another configuration" in proc.stderr and "train.iterations" in proc.stderr
    assert sorted(p.name for p in d.iterdir()) == before


def test_wandb_offline_mirror(run_cli, tmp_path):
    wandb_dir = tmp_path / "wb"
    proc = run_cli("logger=wandb", f"paths.wandb_dir={wandb_dir}", env={"WANDB_MODE": "offline",
                                                                        "WANDB_SILENT": "true"})
    assert proc.returncode == 0, proc.stderr
    runs = list((wandb_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    # the local store is written regardless, in the same directory as without wandb
    assert (tmp_path / "results" / "adhoc" / "scale=smoke" / "DONE").exists()


def _train(tmp_path, *args):
    import subprocess
    import sys

    from conftest import cli_env

    return subprocess.run([sys.executable, "-m", "superconv.train", "train.progress=false", *args], cwd=tmp_path,
                          env=cli_env(), capture_output=True, text=True, timeout=300)


def test_a_sweep_job_without_its_data_is_skipped_then_the_sweep_exits_3(tmp_path):
    """Runs whose data is missing do not stop the sweep; the command then ends with exit 3 and lists them."""
    empty = tmp_path / "nodata"
    empty.mkdir()
    proc = _train(tmp_path, "experiment=fig7b_cifar100", "scale=mini", f"paths.data_dir={empty}",
                  f"paths.results_dir={tmp_path / 'r'}", "data.download=false")
    assert proc.returncode == 3, proc.stderr
    skipped = [line for line in proc.stderr.splitlines() if line.startswith("superconv: skipped")]
    assert len(skipped) == 2 and all("CIFAR-100" in line or "cifar-100" in line for line in skipped)
    assert "2 run(s) of this sweep skipped" in proc.stderr and proc.stderr.count("  skipped ") == 2
    assert not (tmp_path / "r").exists()


def test_each_attempt_records_how_it_ran_in_config_yaml(tmp_path):
    """A run resumed on another device (or without compile) says so: config.yaml is rewritten by each
    attempt; only volatile keys can differ, check_store refuses anything else."""
    from types import SimpleNamespace

    from superconv.results import RunDir
    from superconv.session import open_store

    store = RunDir(tmp_path / "run")
    open_store(SimpleNamespace(store=store, c={"seed": 0, "train": {"device": "cuda", "compile": True}}), None)
    assert store.read_config()["train"] == {"device": "cuda", "compile": True}
    open_store(SimpleNamespace(store=store, c={"seed": 0, "train": {"device": "cpu", "compile": False}}), None)
    assert store.read_config()["train"] == {"device": "cpu", "compile": False}


# ------------------------------------------------------------------------------ the full training pass
class _ModeProbe(torch.nn.Module):
    """Predicts each image's label (its first pixel) in eval mode and label + 1 in training mode: a pass in the
    wrong mode scores 0."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x):
        self.calls.append((self.training, len(x)))
        label = x[:, 0, 0, 0].round().long() + (1 if self.training else 0)
        return torch.nn.functional.one_hot(label % 10, 10).float() * 10.0


def test_final_fit_is_one_pass_over_the_training_set_in_eval_mode():
    from superconv.modes.training import final_fit

    class _Identity:
        def eval(self, x):
            return x.float()

    y = torch.tensor([3, 1, 4, 1, 5, 9, 2])
    x = torch.zeros(7, 3, 2, 2, dtype=torch.uint8)
    x[:, 0, 0, 0] = y.to(torch.uint8)
    x[6, 0, 0, 0] = 7  # one image the model gets wrong
    model = _ModeProbe().train()
    s = SimpleNamespace(model=model, train_x=x, train_y=y, augment=_Identity(), amp_dtype=None,
                        device=torch.device("cpu"))
    fit = final_fit(s, batch_size=3)
    assert fit["final_train_acc"] == pytest.approx(6 / 7) and fit["final_train_images"] == 7
    assert model.calls == [(False, 3), (False, 3), (False, 1)]  # every image once, eval mode, partial last batch
    assert model.training  # handed back in training mode
    assert fit["final_train_loss"] > 0
