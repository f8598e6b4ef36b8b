"""The paper-scale campaign (experiments.campaign) at smoke scale on the CPU: budgets split a run across
calls without changing it, a signalled call loses nothing, priorities and finished runs are respected, bad
input is one line and exit 2, and only a carried run's checkpoint is committable."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, cli_env


from experiments import campaign
from superconv.results import read_metrics

# A smoke-scale run: ResNet-8, batch 16 in BN groups of 8, deterministic fp32 on one CPU thread. Periodic
# checkpoints every 4 iterations, as test_train does: a SIGTERM that lands while the loop flushes rows can be
# acted on without a checkpoint of its own (loop.py reads the signal flag twice), and the run then resumes
# from the periodic one; the metrics still come out identical.
SMALL = ["scale=smoke", "model.depth=8", "train.batch_size=16", "train.replicas=2", "train.precision=fp32",
         "train.deterministic=true", "train.eval_every=20", "train.checkpoint_every=4"]
LONG = {"experiment": "fig1a", "overrides": ["protocol=clr", *SMALL, "train.iterations=120"], "why": "split"}
SECOND = {"experiment": "fig1a", "overrides": ["protocol=pclr", *SMALL, "train.iterations=60"], "why": "beside"}
DONE = {"experiment": "fig1a", "overrides": ["protocol=clr", "seed=1", *SMALL, "train.iterations=2"],
        "why": "finished before the call"}
LAST = {"experiment": "fig6b_depth", "overrides": ["net=resnet20", "protocol=clr", *SMALL, "train.iterations=2"],
        "why": "lowest priority"}
LONG_DIR = ("fig1a/model.depth=8,protocol=clr,scale=smoke,train.batch_size=16,train.deterministic=True,"
            "train.eval_every=20,train.iterations=120,train.precision=fp32,train.replicas=2")
SECOND_DIR = LONG_DIR.replace("protocol=clr", "protocol=pclr").replace("iterations=120", "iterations=60")


def _list(path: Path, *entries: dict) -> Path:
    path.write_text(yaml.safe_dump(list(entries), sort_keys=False))
    return path


def _args(tmp: Path, data_dir: Path, listing: Path, out: Path, *extra: str) -> list[str]:
    return ["--list", str(listing), "--out", str(out), "--logs", str(tmp / "logs"), "--min-run-seconds", "0",
            "--concurrency-record", str(tmp / "no-record.jsonl"), "--set", f"paths.data_dir={data_dir}",
            "--set", "train.threads=1", "--set", "train.device=cpu", "--set", "train.log_every=1", *extra]


def _rows(path: Path) -> int:
    try:
        rows = read_metrics(path)
    except Exception:  # not there yet, or mid-write
        return 0
    return rows[-1]["iteration"] if rows else 0


def _wait_for_rows(path: Path, at_least: int, proc, timeout: float = 120.0) -> None:
    """Block until metrics.csv holds a row for iteration >= at_least (the run is mid-way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if _rows(path) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"no row for iteration {at_least} in {path} after {timeout} s")


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "campaign.jsonl").read_text().splitlines()]


class BudgetEndsAfterRows:
    """The campaign's clock: real time, until `metrics` holds `rows` rows; then the budget is at its margin
    (so the call signals its run there, as a real budget would, without a race against a wall clock)."""

    def __init__(self, metrics: Path, rows: int, budget: float, margin: float):
        self.metrics, self.rows, self.budget, self.margin = metrics, rows, budget, margin
        self.first: float | None = None
        self.offset = 0.0

    def __call__(self) -> float:
        now = time.monotonic()
        if self.first is None:
            self.first = now
        if not self.offset and _rows(self.metrics) >= self.rows:
            self.offset = self.first + self.budget - self.margin - now + 0.01
        return now + self.offset


@pytest.fixture(scope="module")
def one_go(tmp_path_factory, synthetic_data_dir):
    """One call with ample budget over [LONG, DONE (finished beforehand), LAST]: the one-go reference."""
    tmp = tmp_path_factory.mktemp("one_go")
    listing = _list(tmp / "list.yaml", LONG, DONE, LAST)
    out = tmp / "results"
    done = {p.id: p for p in campaign.plan(campaign.load_list(listing), out, [])}
    finished = next(p for p in done.values() if p.entry.why == DONE["why"])
    finished.run_dir.mkdir(parents=True)
    (finished.run_dir / "DONE").write_text("")
    (finished.run_dir / campaign.CARRY_MARKER).write_text(campaign.CARRY_TEXT)  # stale: removed by the call
    rc = campaign.main(["--budget", "300", "--concurrent", "1", *_args(tmp, synthetic_data_dir, listing, out)])
    return {"rc": rc, "out": out, "tmp": tmp, "finished": finished}


def test_priority_order_is_kept_and_finished_runs_are_skipped(one_go):
    assert one_go["rc"] == 0
    [call] = _log(one_go["out"])
    assert [r["id"].split("/")[0] for r in call["runs"]] == ["fig1a", "fig6b_depth"]  # LONG, then LAST
    assert [r["outcome"] for r in call["runs"]] == ["completed", "completed"]
    starts = [json.loads((Path(r["run_dir"]) / "summary.json").read_text())["started_unix"] for r in call["runs"]]
    assert starts == sorted(starts)
    finished = one_go["finished"].run_dir
    assert sorted(p.name for p in finished.iterdir()) == ["DONE"]  # never started; its stale marker removed
    assert not (one_go["out"] / LONG_DIR / "checkpoint.pt").exists()


def test_a_run_split_over_two_budgeted_calls_equals_the_same_run_in_one_go(one_go, tmp_path, synthetic_data_dir):
    listing = _list(tmp_path / "list.yaml", LONG)
    out = tmp_path / "results"
    run = out / LONG_DIR
    stop_after = random.Random().randint(5, 45)  # where the first call's budget runs out
    clock = BudgetEndsAfterRows(run / "metrics.csv", stop_after, budget=300, margin=30)
    first = campaign.main(["--budget", "300", "--margin", "30", *_args(tmp_path, synthetic_data_dir, listing, out)],
                          clock=clock)
    assert first == 0
    [call] = _log(out)
    [rec] = call["runs"]
    assert rec["outcome"] == "stopped" and rec["exit_code"] == 128 + signal.SIGTERM, rec
    assert 4 <= rec["iteration_after"] < 120 and rec["stop_latency_s"] < 30
    assert not (run / "DONE").exists()
    assert (run / "checkpoint.pt").exists()
    assert (run / campaign.CARRY_MARKER).read_text() == campaign.CARRY_TEXT

    second = campaign.main(["--budget", "300", *_args(tmp_path, synthetic_data_dir, listing, out)])
    assert second == 0
    assert [r["outcome"] for r in _log(out)[1]["runs"]] == ["completed"]
    assert (run / "DONE").exists()
    assert not (run / "checkpoint.pt").exists() and not (run / campaign.CARRY_MARKER).exists()
    assert (run / "metrics.csv").read_bytes() == (one_go["out"] / LONG_DIR / "metrics.csv").read_bytes()
    a, b = (json.loads((d / "summary.json").read_text()) for d in (run, one_go["out"] / LONG_DIR))
    for key in ("final_test_acc", "final_test_loss", "best_test_acc", "iterations", "images_seen"):
        assert a[key] == b[key], key


@pytest.mark.parametrize("sig,concurrent", [(signal.SIGTERM, 2), pytest.param(signal.SIGINT, 1, marks=pytest.mark.slow)])
def test_a_signalled_campaign_call_loses_nothing(one_go, tmp_path, synthetic_data_dir, sig, concurrent):
    listing = _list(tmp_path / "list.yaml", LONG, SECOND)
    out = tmp_path / "results"
    run = out / LONG_DIR
    cmd = [sys.executable, "-m", "experiments.campaign", "--budget", "300",
           *_args(tmp_path, synthetic_data_dir, listing, out), "--concurrent", str(concurrent)]
    env = cli_env({"PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"})
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if concurrent == 2:  # both runs are in their loops (past start-up) when the signal comes
        _wait_for_rows(out / SECOND_DIR / "metrics.csv", 5, proc)
    _wait_for_rows(run / "metrics.csv", random.Random().randint(5, 30), proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    [call] = _log(out)
    assert call["stopped_by"] == signal.Signals(sig).name
    assert len(call["runs"]) == concurrent  # the second run started only when two go side by side
    for rec in call["runs"]:
        assert rec["outcome"] == "stopped", rec
        assert (Path(rec["run_dir"]) / "checkpoint.pt").exists()
        assert (Path(rec["run_dir"]) / campaign.CARRY_MARKER).exists()

    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    resumed = {r["id"]: r for r in _log(out)[1]["runs"]}
    assert all(r["outcome"] == "completed" for r in resumed.values())
    assert resumed[f"fig1a/{run.name}"]["status_before"] == "partial"
    assert (run / "metrics.csv").read_bytes() == (one_go["out"] / LONG_DIR / "metrics.csv").read_bytes()
    assert not list(out.rglob("checkpoint.pt")) and not list(out.rglob(campaign.CARRY_MARKER))


def _bad_list(tmp: Path, name: str) -> Path:
    entries = {
        "unknown_experiment": [{"experiment": "fig99", "why": "x"}],
        "unpinned_sweep": [{"experiment": "fig1a", "overrides": ["scale=smoke"], "why": "x"}],
        "no_why": [{"experiment": "fig1a", "overrides": ["protocol=clr"]}],
        "unknown_key": [{"experiment": "fig1a", "overrides": ["protocol=clr"], "why": "x", "priority": 1}],
        "bad_value": [{"experiment": "fig1a", "overrides": ["protocol=clr", "train.batch_size=0"], "why": "x"}],
    }[name]
    return _list(tmp / "list.yaml", *entries)


BAD = [
    (["--budget", "-5"], "--budget"),
    (["--budget", "0"], "--budget"),
    (["--budget", "abc"], "--budget"),
    (["--budget", "60", "--concurrent", "0"], "--concurrent"),
    (["--budget", "60", "--only", "fig1a/no-such-run"], "no such entry"),
    (["--budget", "60", "--set", "train.iterations=5"], "changes what a run computes"),
    (["--budget", "60", "LIST:unknown_experiment"], "fig99"),
    (["--budget", "60", "LIST:unpinned_sweep"], "pin protocol"),
    (["--budget", "60", "LIST:no_why"], "why"),
    (["--budget", "60", "LIST:unknown_key"], "priority"),
    (["--budget", "60", "LIST:bad_value"], "train.batch_size"),
]


@pytest.mark.parametrize("argv,needle", BAD, ids=[" ".join(b[0][1:]) for b in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, synthetic_data_dir, capsys, argv, needle):
    listing = _list(tmp_path / "list.yaml", LONG)
    if argv[-1].startswith("LIST:"):
        argv, listing = argv[:-1], _bad_list(tmp_path, argv[-1][5:])
    before = sorted(p.name for p in tmp_path.iterdir())
    try:
        rc = campaign.main([*argv, *_args(tmp_path, synthetic_data_dir, listing, tmp_path / "results")])
    except SystemExit as e:  # argparse's errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("campaign: error:"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no results, no logs


def test_the_paper_list_plans_one_run_per_entry_in_reproduces_directories(tmp_path):
    """Every entry of experiments/campaign.yaml composes and validates; pinned entries are single runs; the
    directories are those `make reproduce SCALE=paper` gives (checked against Hydra's own dry run)."""
    runs = campaign.plan(campaign.load_list(campaign.PRIORITIES), tmp_path, [])
    assert len({r.id for r in runs}) == len(runs) >= 60
    # the frontier study comes first, run for run in the directories `make reproduce SCALE=frontier` gives them
    # (those are checked against Hydra's dry run by test_experiments)
    from experiments.suites import frontier, job_runs

    study = [r for r in runs if "scale=frontier" in r.entry.overrides]
    assert runs[:len(study)] == study and len(study) == sum(len(job_runs(j)) for j in frontier()) >= 50
    # a job that leaves its experiment's own sweep open (fig5b: constant and CLR) plans both runs
    assert [r.id for r in study if r.id.startswith("fig5b")] == [
        "fig5b_lr_estimate/data.fraction=0.2,length_factor=0.04,scale=frontier,schedule=constant,seed=0",
        "fig5b_lr_estimate/data.fraction=0.2,length_factor=0.04,scale=frontier,schedule=clr,seed=0"]
    assert [r.id for r in study[:3]] == [
        "frontier/data.fraction=0.2,length_factor=0.01,protocol=clr,scale=frontier,seed=0",
        "frontier/data.fraction=0.2,length_factor=0.01,protocol=clr,scale=frontier,seed=1",
        "frontier/data.fraction=0.2,length_factor=0.01,protocol=one_cycle,scale=frontier,seed=0"]
    assert study[4].id == "frontier/data.fraction=0.2,length_factor=0.00125,protocol=pclr,scale=frontier,seed=0"
    assert (study[4].iterations, study[4].batch_size) == (100, 1000)
    runs = runs[len(study):]
    assert [r.id for r in runs[:4]] == ["fig1a/protocol=clr", "fig1a/protocol=clr,train.precision=fp32,train.tf32=True",
                                        "fig1a/protocol=pclr", "fig1a/protocol=clr,seed=1"]
    assert all(r.status == "todo" for r in runs)
    tf32 = runs[1]
    dry = subprocess.run([sys.executable, "-m", "superconv.train", *tf32.args, "dry_run=true"], cwd=tmp_path,
                         env=cli_env(), capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    [line] = [json.loads(x) for x in dry.stdout.splitlines() if x.startswith("{")]
    assert Path(line["run_dir"]) == tf32.run_dir and line["iterations"] == tf32.iterations == 10_000


def test_the_concurrency_default_is_the_measured_best(tmp_path, synthetic_data_dir, capsys):
    device = campaign.device_name(["train.device=cpu"])
    rec = [{"utc": "2026-01-01T00:00:00Z", "device": device, "concurrent": k, "aggregate_images_per_s": v}
           for k, v in ((1, 100.0), (2, 180.0), (4, 185.0))]
    assert campaign.choose_concurrency(rec, device)[0] == 2  # 4 is within 5% of the best: fewer runs win
    assert campaign.choose_concurrency(rec, "cuda: NVIDIA H200") == (1, "no concurrency measurement for cuda: NVIDIA H200")
    older = [r | {"utc": "2025-01-01T00:00:00Z", "aggregate_images_per_s": 1e6 * r["concurrent"]} for r in rec]
    assert campaign.choose_concurrency(older + rec, device)[0] == 2  # the latest measurement counts
    record = tmp_path / "concurrency.jsonl"
    record.write_text("".join(json.dumps(r) + "\n" for r in rec))
    listing = _list(tmp_path / "list.yaml", LONG)
    argv = [*_args(tmp_path, synthetic_data_dir, listing, tmp_path / "results"), "--concurrency-record", str(record)]
    assert campaign.main(["--budget", "300", "--dry-run", *argv]) == 0
    out = capsys.readouterr().out
    assert "2 at once (measured 2026-01-01T00:00:00Z" in out and "finishes" in out
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()  # a dry run writes nothing


def test_concurrency_bench_records_each_level(tmp_path, synthetic_data_dir):
    env = cli_env({"PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"})
    proc = subprocess.run([sys.executable, "-m", "experiments.concurrency", "--levels", "2", "--seconds", "0.3",
                           "--warmup", "1", "--depth", "8", "--batch", "16", "--dataset", "synthetic", "--data-dir",
                           str(synthetic_data_dir), "--device", "cpu", "--precision", "fp32", "--out", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    recs = campaign.read_records(tmp_path / "concurrency.jsonl")
    assert [r["concurrent"] for r in recs] == [2]  # two processes, one shared window
    assert all(len(r["per_run_images_per_s"]) == r["concurrent"] and r["aggregate_images_per_s"] > 0 for r in recs)
    assert recs[0]["device"].split(",")[0] == campaign.device_name(["train.device=cpu"]).split(",")[0]


def test_only_a_carried_runs_checkpoint_is_committable(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    carried = repo / "results/fig1a/protocol=pclr"
    files = {
        "results/fig1a/protocol=pclr/checkpoint.pt": False,  # the campaign's unfinished run
        "results/fig1a/protocol=pclr/metrics.csv": False,
        "results/fig1a/protocol=pclr/other.pt": True,
        "results/fig1a/protocol=pclr/sub/checkpoint.pt": True,
        "results/fig1a/protocol=clr,scale=mini/checkpoint.pt": True,  # any other unfinished run
        "outputs/smoke/adhoc/scale=smoke/checkpoint.pt": True,
        "checkpoint.pt": True,
    }
    for name in files:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(b"x")
    campaign.set_carry_marker(carried, True)
    ignored = subprocess.run(["git", "-C", str(repo), "check-ignore", "--no-index", *files], capture_output=True,
                             text=True).stdout.split()
    assert {name: name in ignored for name in files} == files
    campaign.set_carry_marker(carried, False)
    assert not (carried / campaign.CARRY_MARKER).exists()


def test_tracked_checkpoints_are_carried_unfinished_runs():
    """In this repository: a committed checkpoint sits beside its carry marker in a run without DONE."""
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "*.pt"], capture_output=True, text=True).stdout.split()
    for name in tracked:
        d = (ROOT / name).parent
        assert Path(name).name == "checkpoint.pt" and not (d / "DONE").exists(), name
        assert (d / campaign.CARRY_MARKER).read_text() == campaign.CARRY_TEXT, name


def test_a_windows_results_come_back_and_merge(tmp_path, monkeypatch):
    """experiments.window: pack what a window wrote (in parts when large); unpack replaces run files, adds
    the records we lack, and drops the checkpoint and marker of a run that finished there."""
    from experiments import window

    device = tmp_path / "device" / "results"
    finished, carried = device / "fig1a" / "protocol=pclr", device / "fig1a" / "protocol=clr,seed=1"
    for d in (finished, carried, device / "bench"):
        d.mkdir(parents=True)
    (device / "bench" / "bench.jsonl").write_text('{"a": 1}\n')
    (device / "untouched.csv").write_text("old\n")
    old = time.time() - 100
    for p in device.rglob("*"):
        os.utime(p, (old, old))
    stamp = tmp_path / "stamp"
    stamp.write_text("")
    os.utime(stamp, (old + 50, old + 50))
    for name, text in (("config.yaml", "c"), ("metrics.csv", "m"), ("summary.json", "{}"), ("DONE", "")):
        (finished / name).write_text(text)
    (carried / "checkpoint.pt").write_bytes(os.urandom(3000))
    campaign.set_carry_marker(carried, True)
    (device / "bench" / "bench.jsonl").write_text('{"a": 1}\n{"b": 2}\n')

    repo = tmp_path / "repo"
    here = repo / "results" / "fig1a" / "protocol=pclr"
    here.mkdir(parents=True)
    (here / "checkpoint.pt").write_bytes(b"carried before")  # committed by an earlier window
    campaign.set_carry_marker(here, True)
    (repo / "results" / "bench").mkdir()
    (repo / "results" / "bench" / "bench.jsonl").write_text('{"here": 0}\n{"a": 1}\n')

    monkeypatch.setattr(window, "PART", 1024)  # the archive comes back in parts
    parts = window.pack(device, stamp.stat().st_mtime, tmp_path / "out")
    assert len(parts) >= 2 and all(p.stat().st_size <= 1024 for p in parts)
    changed = window.unpack(tmp_path / "out", repo)
    r = repo / "results"
    assert sorted(p.name for p in (r / "fig1a" / "protocol=pclr").iterdir()) == ["DONE", "config.yaml", "metrics.csv",
                                                                                 "summary.json"]
    assert (r / "fig1a" / "protocol=clr,seed=1" / "checkpoint.pt").read_bytes() == (carried / "checkpoint.pt").read_bytes()
    assert (r / "fig1a" / "protocol=clr,seed=1" / campaign.CARRY_MARKER).read_text() == campaign.CARRY_TEXT
    assert (r / "bench" / "bench.jsonl").read_text() == '{"here": 0}\n{"a": 1}\n{"b": 2}\n'
    assert not (r / "untouched.csv").exists()  # older than the window: not sent
    assert sorted(changed["dropped"]) == ["results/fig1a/protocol=pclr/.gitignore",
                                          "results/fig1a/protocol=pclr/checkpoint.pt"]

    import io
    import tarfile

    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as tar:
        info = tarfile.TarInfo("results/../../escape.txt")
        tar.addfile(info, io.BytesIO(b""))
    (tmp_path / "evil.tar.gz").write_bytes(evil.getvalue())
    with pytest.raises(SystemExit, match="refusing"):
        window.unpack(tmp_path / "evil.tar.gz", repo)
    assert not (tmp_path / "escape.txt").exists()


def test_a_suite_entry_must_name_a_curated_suite_and_say_why(tmp_path):
    listing = tmp_path / "list.yaml"
    for text, needle in (("- suite: paper\n  why: x\n", "suite must be one of mini, frontier"),
                         ("- suite: frontier\n", "needs a `why`"),
                         ("- suite: frontier\n  why: x\n  overrides: [seed=1]\n", "takes only suite and why")):
        listing.write_text(text)
        with pytest.raises(campaign.CampaignError, match=needle):
            campaign.load_list(listing)
    listing.write_text("- suite: mini\n  why: the mini study\n")
    entries = campaign.load_list(listing)
    # fig6a_fraction's own sweep (protocol) is pinned too: every entry is one run
    assert entries[0].overrides == ("scale=mini", "protocol=clr", "data.fraction=0.2", "seed=0") and not entries[0].sweep
    assert entries[1].overrides == ("scale=mini", "protocol=clr", "data.fraction=0.2", "seed=1")
    assert len(campaign.plan(entries, tmp_path / "out", [])) == len(entries)
