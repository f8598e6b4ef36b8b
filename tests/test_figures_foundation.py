"""The figures' foundation: Caffe log reader, results-store loader, style (reproducible bytes), tables.

Everything runs on fixtures written here into tmp_path (short log excerpts, tiny run directories):
nothing trains, and nothing reads ../shared (a user's clone has no such folder).
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

from paper_figures import style
from paper_figures.caffe_log import find_log, read_caffe_log, read_reference_dir
from paper_figures.load import RUN_COLUMNS, load_runs, load_summaries
from superconv.results import MetricsWriter, RunDir

# ------------------------------------------------------------------------------------ Caffe logs
P = "I0817 16:02:51.582952 17550"
HEADER = f"""{P} caffe.cpp:217] Using GPUs 0, 1
{P} solver.cpp:48] Initializing solver from parameters: 
test_iter: 200
test_interval: 100
base_lr: 0.1
max_iter: 300
lr_policy: "triangular"
momentum: 0.9
weight_decay: 0.0001
stepsize: 150
train_state {{
  level: 0
  stage: ""
}}
stepvalue: 100
stepvalue: 200
max_lr: 3
{P} solver.cpp:91] Creating training net from net file: arch.prototxt
  batch_norm_param {{
    moving_average_fraction: 0.95
  }}
  batch_norm_param {{
    moving_average_fraction: 0.5
  }}
"""


def block(it: int, acc: float, loss: float, lr: float, other_gpu: bool = False) -> str:
    noise = "I0817 16:02:58.410606 17556 blocking_queue.cpp:50] Waiting for data\n" if other_gpu else ""
    return (f"{P} solver.cpp:337] Iteration {it}, Testing net (#0)\n{noise}"
            f"{P} solver.cpp:404]     Test net output #0: accuracy = {acc}\n"
            f"{P} solver.cpp:404]     Test net output #1: loss = {loss} (* 1 = {loss} loss)\n"
            f"{P} solver.cpp:228] Iteration {it}, loss = {loss / 2}\n{noise}"
            f"{P} solver.cpp:244]     Train net output #0: accuracy = {acc + 0.05}\n"
            f"{P} solver.cpp:244]     Train net output #1: loss = {loss / 2} (* 1 = {loss / 2} loss)\n"
            f"{P} sgd_solver.cpp:166] Iteration {it}, lr = {lr}\n")


FULL = (HEADER + block(0, 0.1, 2.3, 0.1) + block(100, 0.5, 1.4, 2.0, other_gpu=True) + block(200, 0.8, 0.6, 1.0)
        # two records glued on one line (concurrent writers), then the run's end
        + f"{P} solver.cpp:317] Iteration 300, loss = 0.2{P} solver.cpp:337] Iteration 300, Testing net (#0)\n"
        + f"{P} solver.cpp:404]     Test net output #0: accuracy = 0.79\n"
        + f"{P} solver.cpp:404]     Test net output #1: loss = 0.7 (* 1 = 0.7 loss)\n"
        + f"{P} solver.cpp:322] Optimization Done.\n")


def test_caffe_log_full(tmp_path):
    path = tmp_path / "clrTiny.log"
    path.write_text(FULL)
    log = read_caffe_log(path)
    assert log.name == "clrTiny"
    s = log.solver
    assert (s["max_iter"], s["base_lr"], s["max_lr"], s["lr_policy"], s["stepsize"]) == (300, 0.1, 3, "triangular", 150)
    assert s["stepvalue"] == [100, 200] and s["momentum"] == 0.9 and s["weight_decay"] == 0.0001
    assert "level" not in s and "stage" not in s  # nested blocks are not solver fields
    assert log.bn_moving_average_fraction == 0.95
    assert log.test["iteration"].tolist() == [0, 100, 200, 300]
    assert log.test["test/acc"].tolist() == [0.1, 0.5, 0.8, 0.79]
    assert log.test["test/loss"].tolist() == [2.3, 1.4, 0.6, 0.7]
    assert log.train["iteration"].tolist() == [0, 100, 200, 300]
    assert log.train["train/loss"].tolist() == [1.15, 0.7, 0.3, 0.2]
    assert log.train["train/acc"].iloc[:3].tolist() == pytest.approx([0.15, 0.55, 0.85])
    assert pd.isna(log.train["train/acc"].iloc[3])
    assert log.lr.set_index("iteration")["lr"].to_dict() == {0: 0.1, 100: 2.0, 200: 1.0}
    assert (log.final_test_acc, log.peak_test_acc, log.last_iteration) == (0.79, 0.8, 300)


def test_caffe_log_truncated_and_gz(tmp_path):
    # a range test that stopped mid-evaluation, and whose last line was cut short
    cut = (HEADER + block(0, 0.1, 2.3, 0.0) + block(100, 0.4, 1.9, 0.5)
           + f"{P} solver.cpp:337] Iteration 200, Testing net (#0)\n")
    (tmp_path / "rangeCut.log").write_text(cut + f"{P} solver.cpp:404]     Test net output #0: accuracy = 0.9")
    log = read_caffe_log(tmp_path / "rangeCut.log")
    assert log.test["iteration"].tolist() == [0, 100] and log.final_test_acc == 0.4 and log.peak_test_acc == 0.4
    assert log.lr["lr"].tolist() == [0.0, 0.5]

    with gzip.open(tmp_path / "clrTiny.log.gz", "wt") as f:
        f.write(FULL)
    gz = read_caffe_log(tmp_path / "clrTiny.log.gz")
    assert gz.name == "clrTiny" and gz.final_test_acc == 0.79 and gz.solver["stepvalue"] == [100, 200]

    # a gzip stream cut short: what was read before the cut, with a warning
    data = gzip.compress(FULL.encode())
    (tmp_path / "cutGz.log.gz").write_bytes(data[: len(data) * 2 // 3])
    with pytest.warns(UserWarning, match="cut short"):
        part = read_caffe_log(tmp_path / "cutGz.log.gz")
    assert part.solver["max_iter"] == 300 and len(part.test) < 4

    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "notes.log").write_text("hello\n")
    with pytest.warns(UserWarning) as record:
        logs = read_reference_dir(tmp_path)
    messages = " ".join(str(w.message) for w in record)
    assert "notes.log: not a Caffe training log" in messages and "cutGz.log.gz: gzip stream cut short" in messages
    assert sorted(logs) == ["clrTiny", "cutGz", "rangeCut"]  # notes.txt is not a log name; notes.log is skipped
    assert logs["clrTiny"].path.name == "clrTiny.log.gz"

    # the official repo's Results/ names its logs without a suffix: read those too, and nothing else suffixed
    (tmp_path / "clrBare").write_text(FULL)
    (tmp_path / "README.md").write_text("# not a log\n")
    (tmp_path / "clrTiny").write_text(FULL.replace("0.79", "0.11"))  # a bare twin: the .log.gz one wins
    with pytest.warns(UserWarning) as record:  # besides the two above
        logs = read_reference_dir(tmp_path)
    assert "clrTiny: clrTiny already read from clrTiny.log.gz; ignored" in " ".join(str(w.message) for w in record)
    assert sorted(logs) == ["clrBare", "clrTiny", "cutGz", "rangeCut"]
    assert logs["clrBare"].final_test_acc == 0.79 and logs["clrTiny"].path.name == "clrTiny.log.gz"
    assert find_log(tmp_path, "clrBare").name == "clrBare" and find_log(tmp_path, "rangeCut").name == "rangeCut.log"
    with pytest.raises(FileNotFoundError, match="no nope.log, nope.log.gz or nope"):
        find_log(tmp_path, "nope")


def test_caffe_log_errors(tmp_path):
    missing = tmp_path / "nope.log.gz"
    with pytest.raises(FileNotFoundError, match="nope.log.gz"):
        read_caffe_log(missing)
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        read_reference_dir(tmp_path / "no_such_dir")
    (tmp_path / "junk.log").write_text("not a log\n")
    with pytest.raises(ValueError, match="junk.log"):
        read_caffe_log(tmp_path / "junk.log")
    (tmp_path / "bad.log.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="bad.log.gz"):
        read_caffe_log(tmp_path / "bad.log.gz")


# ---------------------------------------------------------------------------------- results store
def make_run(root: Path, experiment: str, name: str, *, seed: int, max_lr: float, accs: list[float],
             done: bool = True, status: str = "completed") -> RunDir:
    rd = RunDir(root / experiment / name)
    rd.path.mkdir(parents=True)
    rd.write_config({
        "seed": seed, "experiment_name": experiment, "scale_name": "smoke",
        "model": {"depth": 20, "variant": "paper", "dropout": 0.0, "bn_momentum": 0.05},
        "data": {"name": "cifar10", "fraction": 0.5, "augment": "paper"},
        "optim": {"name": "sgd", "momentum": 0.9, "weight_decay": 1e-4, "nesterov": False},
        "schedule": {"name": "clr", "max_lr": max_lr, "min_lr": 0.1},
        "train": {"batch_size": 32, "iterations": len(accs) * 2, "eval_every": 2},
    })
    w = MetricsWriter(rd.metrics)
    for i, acc in enumerate(accs):
        it = 2 * i + 1
        w.write([{"iteration": it, "epoch": it / 10, "lr": 0.1 * it, "momentum": 0.95, "train/loss": 2.0 - i * 0.1,
                  "train/acc": 0.2},
                 {"iteration": it + 1, "epoch": (it + 1) / 10, "lr": 0.1 * (it + 1), "momentum": 0.85,
                  "train/loss": 1.9 - i * 0.1, "train/acc": 0.3, "test/loss": 1.5, "test/acc": acc}])
    w.close()
    if done:
        rd.write_summary({"status": status, "final_test_acc": accs[-1], "best_test_acc": max(accs),
                          "iterations": len(accs) * 2, "images_seen": 64 * len(accs), "wall_s": 1.5,
                          "images_per_s": 40.0, "git_sha": "abc", "device": "cpu", "command": "x",
                          "job_type": "train"})
        rd.mark_done()
    return rd


@pytest.fixture
def results(tmp_path) -> Path:
    root = tmp_path / "results"
    make_run(root, "fig1a", "seed=1", seed=1, max_lr=3.0, accs=[0.3, 0.5])
    make_run(root, "fig1a", "seed=0", seed=0, max_lr=3.0, accs=[0.2, 0.4, 0.6])
    make_run(root, "fig1a", "seed=2", seed=2, max_lr=3.0, accs=[0.2], done=False)  # still running
    bad = make_run(root, "fig1a", "seed=3", seed=3, max_lr=3.0, accs=[0.1])
    bad.metrics.write_text("iteration,oops\n1,2\n")  # corrupt metrics, summary fine
    worse = make_run(root, "aaa", "broken", seed=0, max_lr=1.0, accs=[0.1])
    worse.summary.write_text("{not json")
    (root / "wandb" / "offline-run-1").mkdir(parents=True)  # not a run directory
    return root


def test_load_runs(results):
    with pytest.warns(UserWarning) as record:
        df = load_runs(results)
    messages = " ".join(str(w.message) for w in record)
    assert "seed=3" in messages and "metrics.csv" in messages
    assert "broken" in messages and "summary.json" in messages
    assert list(df.columns) == RUN_COLUMNS
    assert df[["run", "iteration"]].drop_duplicates().shape[0] == len(df) == 4 + 6
    assert df["run"].unique().tolist() == ["seed=0", "seed=1"]  # sorted; unfinished and corrupt left out
    assert df.groupby("run")["iteration"].apply(lambda s: s.is_monotonic_increasing).all()
    first = df.iloc[0]
    assert (first["experiment"], first["status"], first["seed"], first["depth"], first["dataset"]) == (
        "fig1a", "completed", 0, 20, "cifar10")
    assert (first["fraction"], first["batch_size"], first["weight_decay"], first["momentum"]) == (0.5, 32, 1e-4, 0.9)
    assert (first["optimizer"], first["schedule"], first["max_lr"], first["scale"], first["iterations"]) == (
        "sgd", "clr", 3.0, "smoke", 6)
    assert df["momentum_t"].tolist()[:2] == [0.95, 0.85]  # the per-iteration metric, kept apart from the factor
    evals = df.dropna(subset=["test/acc"])
    assert evals[evals.run == "seed=0"]["test/acc"].tolist() == [0.2, 0.4, 0.6]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_runs(results).equals(df)  # deterministic


def test_load_summaries(results):
    with pytest.warns(UserWarning, match="broken"):
        s = load_summaries(results)
    assert s["run"].tolist() == ["seed=0", "seed=1", "seed=2", "seed=3"]
    by_run = s.set_index("run")
    assert by_run.loc["seed=2", "status"] == "unfinished" and pd.isna(by_run.loc["seed=2", "final_test_acc"])
    assert by_run.loc["seed=2", "seed"] == 2  # factors of an unfinished run come from its config
    assert by_run.loc["seed=0", "final_test_acc"] == 0.6 and by_run.loc["seed=0", "best_test_acc"] == 0.6
    assert by_run.loc["seed=3", "status"] == "completed"  # its summary is fine; only load_runs needs metrics
    assert by_run.loc["seed=1", "job_type"] == "train" and by_run.loc["seed=1", "wall_s"] == 1.5
    assert load_summaries(results.parent / "nothing").empty and load_runs(results.parent / "nothing").empty


def test_load_summaries_range_test(tmp_path):
    rd = make_run(tmp_path, "range", "default", seed=0, max_lr=3.0, accs=[0.3, 0.2])
    summary = rd.read_summary() | {"job_type": "range_test", "range_test": {
        "mode": "accuracy", "verdict": {"label": "stays_high", "peak_lr": 1.2},
        "bounds": {"max_lr": 1.2, "min_lr": 0.3}}}
    rd.write_summary(summary)
    s = load_summaries(tmp_path)
    row = s.iloc[0]
    assert row["job_type"] == "range_test" and row["range_test/verdict/label"] == "stays_high"
    assert row["range_test/bounds/max_lr"] == 1.2


# ------------------------------------------------------------------------------ style and tables
def draw():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1, 10, 100], [0.1, 0.5, 0.9], label="CLR")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.legend()
    return fig


def test_save_is_byte_identical(tmp_path):
    style.setup()
    fig = draw()
    a = style.save(fig, tmp_path / "a" / "fig", close=False)
    b = style.save(fig, tmp_path / "b" / "fig")
    c = style.save(draw(), tmp_path / "c" / "fig")  # a fresh figure of the same data
    assert [p.name for p in a] == ["fig.pdf", "fig.png"]
    for pa, pb, pc in zip(a, b, c):
        assert pa.read_bytes() == pb.read_bytes() == pc.read_bytes()
    pdf = a[0].read_bytes()
    assert pdf.startswith(b"%PDF") and b"CreationDate" not in pdf and b"Matplotlib" not in pdf
    assert b"Software" not in a[1].read_bytes()
    mtime = a[0].stat().st_mtime_ns
    style.save(draw(), tmp_path / "a" / "fig")
    assert a[0].stat().st_mtime_ns == mtime  # unchanged bytes are not rewritten


def test_save_identical_across_processes(tmp_path):
    """`make figures` runs in a new process each time (hash seed differs): the bytes must not."""
    code = ("import sys; from paper_figures import style; style.setup();"
            "import matplotlib.pyplot as plt; fig, ax = plt.subplots(figsize=(2, 2));"
            "ax.plot([1, 2], [3, 1], label='a'); ax.legend(); style.save(fig, sys.argv[1])")
    for i in (1, 2):
        env = dict(os.environ, PYTHONHASHSEED=str(i))
        subprocess.run([sys.executable, "-c", code, str(tmp_path / f"p{i}" / "f")], env=env, check=True,
                       timeout=120)
    for suffix in (".pdf", ".png"):
        assert (tmp_path / "p1" / f"f{suffix}").read_bytes() == (tmp_path / "p2" / f"f{suffix}").read_bytes()


def test_summarize_and_write_table(tmp_path):
    df = pd.DataFrame({"schedule": ["clr", "clr", "clr", "multistep"], "depth": [56, 56, 56, 56],
                       "final_test_acc": [0.90, 0.92, 0.94, 0.91]})
    t = style.summarize(df, ["schedule", "depth"], "final_test_acc")
    assert list(t.columns) == ["schedule", "depth", "n", "mean", "sd"]
    assert t["n"].tolist() == [3, 1]
    assert t["mean"].tolist() == pytest.approx([0.92, 0.91])
    assert t["sd"].iloc[0] == pytest.approx(0.02) and pd.isna(t["sd"].iloc[1])
    path = style.write_table(t, tmp_path / "tables" / "t.csv")
    assert path.read_text() == "schedule,depth,n,mean,sd\nclr,56,3,0.92,0.02\nmultistep,56,1,0.91,\n"
    overall = style.summarize(df, [], "final_test_acc")
    assert overall["n"].tolist() == [4]
