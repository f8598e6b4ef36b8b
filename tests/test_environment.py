"""A clone anywhere: the pinned environment is complete and in step with environment.yml, and `make figures` on a
fresh clone reproduces the committed README, REPORT and figures (git status stays clean)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT, cli_env


def _name(req: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0]).lower()


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[_name(name)] = version
    return pins


def test_every_dependency_is_pinned_and_environment_yml_uses_the_lock():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _lock()
    deps = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    assert {_name(d) for d in deps} <= set(pins), set(map(_name, deps)) - set(pins)
    assert "superconv" not in pins and "matplotlib" in pins and project["license"] == "MIT"
    env = (ROOT / "environment.yml").read_text()
    assert "- -c requirements.lock" in env and "-r requirements.lock" not in env  # constraints, as make install
    assert "- python=3.11" in env
    assert "Python 3.11" in (ROOT / "requirements.lock").read_text().splitlines()[0]
    assert "-c requirements.lock" in (ROOT / "Makefile").read_text()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_make_figures_on_a_fresh_clone_leaves_git_status_clean(tmp_path):
    """The committed tree (HEAD), cloned with nothing beside it: its figures command rewrites nothing tracked."""
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    env = cli_env({"PYTHONPATH": f"{clone / 'src'}:{clone}"})
    proc = subprocess.run([sys.executable, "-m", "paper_figures"], cwd=clone, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout
    assert status == "", status


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("target, experiment", [("sweep-fraction", "fig6a_fraction"), ("sweep-batch", "fig9a_batch"),
                                                ("sweep-weight-decay", "fig10b_weight_decay"),
                                                ("sweep-dropout", "fig9b_dropout")])
def test_sweep_targets_honour_scale(target, experiment):
    out = subprocess.run(["make", "-n", target, "SCALE=mini", "PY=python"], cwd=ROOT, capture_output=True,
                         text=True).stdout
    assert f"-m experiments.reproduce --scale mini --only {experiment}" in out


def test_reproduce_only_refuses_an_experiment_outside_the_suite(capsys):
    from experiments.reproduce import main as reproduce

    assert reproduce(["--scale", "mini", "--only", "fig6a_fraction,nope"]) == 2
    assert "ONLY=nope" in capsys.readouterr().err
