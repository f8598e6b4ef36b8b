"""Launchers: parallel local jobs (joblib) and a real SLURM cluster on localhost (slow)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, cli_env


def _sweep(tmp_path, data_dir, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "superconv.train", "experiment=fig1a", "scale=smoke",
                           "train.progress=false", f"paths.data_dir={data_dir}",
                           f"paths.results_dir={tmp_path / 'r'}", *args],
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=timeout)


def test_joblib_runs_two_jobs_concurrently(tmp_path, synthetic_data_dir):
    # two runs of equal length (PC-LR, 160 iterations at smoke scale): with a 20-iteration CLR job beside
    # it, a worker started late on a loaded machine could find the short job already finished
    proc = _sweep(tmp_path, synthetic_data_dir, "launcher=joblib", "protocol=pclr", "seed=0,1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summaries = [json.loads(p.read_text()) for p in sorted((tmp_path / "r" / "fig1a").glob("*/summary.json"))]
    assert len(summaries) == 2
    (a0, a1), (b0, b1) = ((s["started_unix"], s["finished_unix"]) for s in summaries)
    assert a0 < b1 and b0 < a1  # the two runs overlapped in time
    assert all(s["device"].endswith("1 threads") for s in summaries)  # 2 jobs x 1 thread on 2 cores


def _slurm_ready() -> str | None:
    if os.geteuid() != 0:
        return "needs root to start the local SLURM daemons"
    if not shutil.which("apt-get") and not shutil.which("slurmctld"):
        return "no Debian packages for SLURM"
    up = subprocess.run(["bash", str(ROOT / "scripts" / "local_slurm.sh")], capture_output=True, text=True)
    return None if up.returncode == 0 else f"local SLURM cluster did not start: {up.stderr.strip()[-200:]}"


@pytest.mark.slow
def test_slurm_sweep_arrives_and_failed_jobs_are_not_done(tmp_path, synthetic_data_dir):
    reason = _slurm_ready()
    if reason:
        pytest.skip(reason)
    proc = _sweep(tmp_path, synthetic_data_dir, "launcher=slurm", "model.dropout=0.0,1.5")
    runs = tmp_path / "r" / "fig1a"
    done = sorted(p.parent.name for p in runs.glob("*/DONE"))
    assert done == ["model.dropout=0.0,protocol=clr,scale=smoke", "model.dropout=0.0,protocol=pclr,scale=smoke"]
    assert not list(runs.glob("model.dropout=1.5*"))  # the failing jobs wrote nothing, so nothing looks done
    assert proc.returncode != 0  # and the sweep reports the failure
