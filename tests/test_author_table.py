"""The author's runs as a committed table: what the logs give, the table gives back (on excerpts written here),
and the committed table covers every log the figures and the solver test name (no logs needed)."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from paper_figures import registry
from paper_figures.author_table import DEFAULT_DIR, load_author_runs, main, write_author_runs
from paper_figures.caffe_log import read_reference_dir
from test_figures_foundation import FULL, HEADER, P, block


def _write_logs(d):
    d.mkdir()
    (d / "clrTiny.log").write_text(FULL)
    # a range test cut off: a test without its accuracy, a train loss logged as nan, no final newline
    cut = (HEADER + block(0, 0.1, 2.3, 0.1) + f"{P} solver.cpp:228] Iteration 50, loss = nan\n"
           + f"{P} solver.cpp:337] Iteration 100, Testing net (#0)\n" + f"{P} sgd_solver.cpp:166] Iteration 100, lr")
    with gzip.open(d / "rangeCut.log.gz", "wt") as f:
        f.write(cut)
    return d


def _same(a, b):
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].solver == b[name].solver
        assert a[name].bn_moving_average_fraction == b[name].bn_moving_average_fraction
        for f in ("test", "train", "lr"):
            pd.testing.assert_frame_equal(getattr(a[name], f).reset_index(drop=True),
                                          getattr(b[name], f).reset_index(drop=True))
        assert a[name].final_test_acc == b[name].final_test_acc and a[name].last_iteration == b[name].last_iteration


def test_table_round_trips_the_logs_and_is_byte_stable(tmp_path):
    logs = _write_logs(tmp_path / "logs")
    paths = write_author_runs(logs, tmp_path / "table")
    first = [p.read_bytes() for p in paths]
    _same(read_reference_dir(logs), load_author_runs(tmp_path / "table"))
    assert load_author_runs(tmp_path / "table")["rangeCut"].train["train/loss"].isna().iloc[-1]  # logged nan kept
    write_author_runs(logs, tmp_path / "table")
    assert [p.read_bytes() for p in paths] == first
    assert main(["--logs", str(logs), "--out", str(tmp_path / "table"), "--check"]) == 0
    meta = json.loads(paths[1].read_text())
    assert meta["source"]["commit"] == "ecc561594b39442661e7e0a39d2820b0f4147324"
    assert meta["logs"]["clrTiny"]["solver"]["max_iter"] == 300 and len(meta["logs"]["clrTiny"]["sha256"]) == 64


def test_missing_table_and_logs_are_errors(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="author_table"):
        load_author_runs(tmp_path)
    assert main(["--logs", str(tmp_path / "none"), "--out", str(tmp_path / "t")]) == 2
    assert "no such reference folder" in capsys.readouterr().err


def test_committed_table_covers_every_log_the_figures_and_the_solver_test_name():
    from test_author_solvers import LOGS, UNMATCHED

    logs = load_author_runs(DEFAULT_DIR)
    assert len(logs) == 43 and set(logs) == set(LOGS) | set(UNMATCHED)
    named = {stem for spec in (*registry.CURVES, *registry.RANGE, *registry.SWEEPS) for stem in spec.reference}
    assert named <= set(logs)
    fig1a = logs["clr3SS5kFig1a"]
    assert fig1a.solver["max_iter"] == 10000 and fig1a.solver["lr_policy"] == "triangular"
    assert round(fig1a.final_test_acc, 4) == 0.9244 and len(fig1a.test) == 101 and fig1a.train["train/acc"].notna().any()
