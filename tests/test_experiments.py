"""The experiment catalogue: dry-run plans, suites, per-experiment tables."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT, cli_env

sys.path.insert(0, str(ROOT))

from experiments.aggregate import aggregate  # noqa: E402
from experiments.suites import MINI, all_experiments, command, suite  # noqa: E402


def _dry(tmp_path, data_dir, *args):
    out = subprocess.run([sys.executable, "-m", "superconv.train", "experiment=fig1a", "scale=smoke",
                          f"paths.data_dir={data_dir}", f"paths.results_dir={tmp_path / 'r'}", *args],
                         cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_dry_run_expands_the_sweep_and_then_reports_done(tmp_path, synthetic_data_dir):
    plan = _dry(tmp_path, synthetic_data_dir, "dry_run=true")
    assert [(p["status"], p["iterations"], p["images"]) for p in plan] == [("todo", 20, 640), ("todo", 160, 5120)]
    assert not (tmp_path / "r").exists()  # a plan writes nothing
    _dry(tmp_path, synthetic_data_dir, "train.progress=false", "model=resnet20")  # run it
    plan = _dry(tmp_path, synthetic_data_dir, "dry_run=true", "model=resnet20")
    assert [p["status"] for p in plan] == ["done", "done"]


def test_suites_cover_what_the_scales_promise():
    assert {j.experiment for j in suite("smoke")} == set(all_experiments())
    mini = {j.experiment for j in MINI}
    assert {"fig1a", "fig6a_fraction", "fig9a_batch", "fig10b_weight_decay", "fig9b_dropout"} <= mini
    assert any(e.startswith("range_") for e in mini) and ("seed=0,1",) == MINI[0].overrides
    assert set(mini) <= set(all_experiments())
    assert command(MINI[0], "mini", "py") == ["py", "-m", "superconv.train", "experiment=fig1a", "scale=mini",
                                              "seed=0,1"]
    with pytest.raises(ValueError, match="SCALE='huge'"):
        suite("huge")


def test_aggregate_writes_one_table_per_experiment(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "tests" / "fixtures" / "results", results)
    written = aggregate(results)
    assert sorted(p.name for p in written) == ["fig1a.csv", "fig6a_fraction.csv", "range_fig2b_5k.csv",
                                               "range_lrfind.csv", "table1_maxlr.csv"]
    fig1a = pd.read_csv(results / "fig1a.csv")
    assert len(fig1a) == 5 and set(fig1a["status"]) == {"completed", "unfinished"}
    assert {"seed", "schedule", "final_test_acc", "wall_s"} <= set(fig1a.columns)
    before = (results / "fig1a.csv").stat().st_mtime_ns
    aggregate(results)
    assert (results / "fig1a.csv").stat().st_mtime_ns == before  # unchanged content is not rewritten
