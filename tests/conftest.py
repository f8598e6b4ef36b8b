"""Shared fixtures: a synthetic data directory built once per session, and runners for the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory) -> Path:
    """A data directory holding the synthetic dataset in the CIFAR-10 on-disk layout."""
    from superconv.data import write_synthetic

    root = tmp_path_factory.mktemp("data")
    write_synthetic(root / "synthetic")
    return root


def cli_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.pop("WANDB_MODE", None)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


@pytest.fixture
def run_cli(synthetic_data_dir, tmp_path):
    """Run `python -m superconv.train` at smoke scale with results under tmp_path/results."""

    def _run(*overrides: str, results: Path | None = None, env: dict | None = None, wait: bool = True):
        args = [sys.executable, "-m", "superconv.train", "scale=smoke", "train.progress=false",
                f"paths.data_dir={synthetic_data_dir}", f"paths.results_dir={results or tmp_path / 'results'}",
                *overrides]
        if not wait:
            return subprocess.Popen(args, cwd=tmp_path, env=cli_env(env), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        return subprocess.run(args, cwd=tmp_path, env=cli_env(env), capture_output=True, text=True, timeout=300)

    return _run
