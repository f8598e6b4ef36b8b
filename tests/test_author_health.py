"""The author's logs through our health rules (paper_figures.author_health), on log excerpts written here."""

from __future__ import annotations

import gzip
from pathlib import Path

from paper_figures import author_health
from paper_figures.caffe_log import read_reference_dir

PREFIX = "I0817 21:58:33.145417 17550 "


def write_log(folder: Path, name: str, evals: list[tuple[int, float, float]], lr=lambda i: 0.35) -> None:
    """A Caffe log: (iteration, test accuracy, training-batch accuracy) per test, every 100 iterations."""
    lines = [PREFIX + "solver.cpp:48] Initializing solver from parameters:", "base_lr: 0.35",
             'lr_policy: "multistep"', "  moving_average_fraction: 0.999"]
    for it, test, train in evals:
        lines += [PREFIX + f"solver.cpp:337] Iteration {it}, Testing net (#0)",
                  PREFIX + f"solver.cpp:404]     Test net output #0: accuracy = {test}",
                  PREFIX + f"solver.cpp:404]     Test net output #1: loss = 1.5 (* 1 = 1.5 loss)",
                  PREFIX + f"solver.cpp:228] Iteration {it}, loss = 0.01",
                  PREFIX + f"solver.cpp:244]     Train net output #0: accuracy = {train}",
                  PREFIX + f"sgd_solver.cpp:166] Iteration {it}, lr = {lr(it)}"]
    with gzip.open(folder / f"{name}.log.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")


def test_a_baseline_whose_test_statistics_lag_is_flagged_and_its_claim_row_named(tmp_path):
    # PC-LR on 10k images: fits its batches (1.0) while its test accuracy flickers at chance until the LR drop
    evals = [(100 * k, 0.5 if k % 3 == 0 else 0.11, 1.0) for k in range(1, 31)]
    evals += [(100 * k, 0.70, 1.0) for k in range(31, 41)]
    write_log(tmp_path, "lr35Tr10kTab1", evals, lr=lambda i: 0.35 if i <= 3000 else 0.035)
    write_log(tmp_path, "lr35Fig1a", [(100 * k, min(0.9, 0.1 * k), 0.99) for k in range(1, 41)])
    # a range test that collapses is listed, not judged
    write_log(tmp_path, "range3Iter5kFig2b", [(100 * k, 0.8 if k < 20 else 0.2, 0.9) for k in range(1, 41)],
              lr=lambda i: 3 * i / 4000)
    logs = read_reference_dir(tmp_path)
    table = author_health.table(logs).set_index("log")
    assert table.loc["lr35Tr10kTab1", "flags"] == "test_lags_train"
    assert table.loc["lr35Fig1a", "flags"] == "" and table.loc["range3Iter5kFig2b", "flags"] == ""
    assert not table.loc["range3Iter5kFig2b", "training"]
    assert table.loc["lr35Tr10kTab1", "train_acc"] == 1.0
    text = "\n".join(author_health.section(logs))
    assert "2 training logs (1 range tests are not judged" in text and "1 of 2 training logs are flagged" in text
    assert "| `lr35Tr10kTab1` | 70.00 / 70.00 | 100.00 | test_lags_train |" in text
    assert "**Table 1 / Fig 6a (fraction 0.2)**, baseline `lr35Tr10kTab1`" in text
    assert "BN moving-average fraction 0.999" in text and "BN test statistics as much as its schedule" in text
    assert "pass every check" in text and "Fig 1a: `lr35Fig1a` 90.00%" in text


def test_no_logs_says_so():
    assert author_health.section(None) == ["No author logs were given: nothing to check."]
