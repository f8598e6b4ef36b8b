"""The experiment catalogue: dry-run plans, suites, per-experiment tables."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, cli_env


from experiments.aggregate import aggregate
from experiments.suites import MINI, all_experiments, command, suite


def _dry(tmp_path, data_dir, *args):
    out = subprocess.run([sys.executable, "-m", "superconv.train", "experiment=fig1a", "scale=smoke",
                          f"paths.data_dir={data_dir}", f"paths.results_dir={tmp_path / 'r'}", *args],
                         cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_dry_run_expands_the_sweep_and_then_reports_done(tmp_path, synthetic_data_dir):
    """An experiment's yaml sweep (fig1a: CLR and PC-LR) is planned, then run as its two runs, then planned as
    done."""
    plan = _dry(tmp_path, synthetic_data_dir, "dry_run=true")
    assert [(p["status"], p["iterations"], p["images"]) for p in plan] == [("todo", 20, 640), ("todo", 160, 5120)]
    assert not (tmp_path / "r").exists()  # a plan writes nothing
    _dry(tmp_path, synthetic_data_dir, "train.progress=false", "model=resnet20")  # run it
    runs = sorted(p.name for p in (tmp_path / "r" / "fig1a").iterdir())
    assert runs == ["model=resnet20,protocol=clr,scale=smoke", "model=resnet20,protocol=pclr,scale=smoke"]
    commands = {json.loads((tmp_path / "r" / "fig1a" / r / "summary.json").read_text())["command"] for r in runs}
    assert len(commands) == 2
    plan = _dry(tmp_path, synthetic_data_dir, "dry_run=true", "model=resnet20")
    assert [p["status"] for p in plan] == ["done", "done"]


def test_dry_run_counts_an_interrupted_run_from_its_checkpoint_and_a_claimed_one_as_running(
        tmp_path, synthetic_data_dir):
    """`make plan` in the middle of a study: an interrupted run has only the rest of its images to go, and a run
    another process holds is running, not waiting."""
    from superconv import checkpoint
    from superconv.run_lock import RunLock

    run_dir = tmp_path / "r" / "fig1a" / "protocol=clr,scale=smoke"
    run_dir.mkdir(parents=True)
    checkpoint.save(run_dir / "checkpoint.pt", {"iteration": 5})
    clr = _dry(tmp_path, synthetic_data_dir, "dry_run=true")[0]
    assert (clr["status"], clr["reached"], clr["images"], clr["images_to_go"]) == ("partial", 5, 640, 15 * 32)
    if not Path("/proc/locks").exists():
        pytest.skip("no /proc/locks: a claim held elsewhere cannot be seen on this system")
    lock = RunLock(run_dir)
    assert lock.acquire()
    try:
        assert RunLock(run_dir).holder() == os.getpid()
        assert _dry(tmp_path, synthetic_data_dir, "dry_run=true")[0]["status"] == "running"
    finally:
        lock.release()
    assert RunLock(run_dir).holder() is None


def test_plan_counts_only_what_is_left_of_an_interrupted_run(tmp_path, capsys, monkeypatch):
    from experiments import plan as plan_mod

    row = {"experiment": "e", "claim": "c", "why": "w", "images": 1000, "iterations": 10, "eval_every": 5,
           "eval_subset": None, "depth": 20, "batch_size": 100, "precision": "fp32", "run_dir": "results/e/x"}
    rows = [{**row, "status": "running", "reached": 6, "images_to_go": 400}, {**row, "status": "todo",
                                                                              "reached": 0, "images_to_go": 1000}]
    assert plan_mod.to_go(rows[0])["images"] == 400 and plan_mod.to_go(rows[0])["iterations"] == 4
    assert plan_mod.to_go(rows[1]) is rows[1]
    monkeypatch.setattr(plan_mod, "plan", lambda scale, extra=None: rows)
    assert plan_mod.main(["--scale", "mini", "--bench", str(tmp_path / "none.jsonl"), "--probe-seconds", "0"]) == 0
    out = capsys.readouterr().out
    assert "results/e/x  (at iteration 6 of 10)" in out
    assert "2 runs at scale mini: 0 done, 1 running now, 1 more to run; 1,400 training images to go" in out


def test_dry_run_refuses_what_the_run_would_refuse(tmp_path, synthetic_data_dir):
    """A plan checks each run's values as the run does: a sweep with a bad value ends in one line, exit 2,
    instead of a plan of runs that could never start (batch 0 would plan 0 images)."""
    out = subprocess.run([sys.executable, "-m", "superconv.train", "experiment=fig1a", "scale=smoke",
                          f"paths.data_dir={synthetic_data_dir}", f"paths.results_dir={tmp_path / 'r'}",
                          "train.batch_size=0", "dry_run=true"],
                         cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip() == "superconv: error: train.batch_size=0: must be an integer >= 1"
    assert out.stdout == "" and not (tmp_path / "r").exists()


def test_suites_cover_what_the_scales_promise():
    from paper_figures.claims import CLAIMS

    assert {j.experiment for j in suite("smoke")} == set(all_experiments())
    assert {j.experiment for j in suite("paper")} == set(all_experiments()) - {"frontier", "bn_horizon"}
    mini = {j.experiment for j in MINI}
    assert {"fig6a_fraction", "fig1a_equal_budget", "fig9a_batch", "fig10b_weight_decay", "fig9b_dropout"} <= mini
    assert any(e.startswith("range_") for e in mini)
    assert set(mini) <= set(all_experiments())
    claims = {c.id: c for c in CLAIMS}
    for job in MINI:  # every mini experiment names the claim that judges its runs
        assert job.experiment in claims[job.claim].experiments, job
    assert MINI[0].experiment == "fig6a_fraction"  # the main comparison runs first
    assert command(MINI[0], "mini", "py") == ["py", "-m", "superconv.train", "experiment=fig6a_fraction",
                                              "scale=mini", "data.fraction=0.2", "seed=0,1"]
    with pytest.raises(ValueError, match="SCALE='huge'"):
        suite("huge")


def test_the_mini_study_is_sized_for_its_claims():
    """Every configuration has >= 2 seeds, the 8x budget ratio survives, and every run is fp32 (the study spans
    machines)."""
    from collections import Counter

    from paper_figures.judging import MIN_N

    from experiments.plan import plan

    rows = plan("mini")  # composes every job as `make reproduce SCALE=mini` would
    assert {r["precision"] for r in rows} == {"fp32"} and {r["depth"] for r in rows} == {20}
    trained = [r for r in rows if r["job"] == "train"]
    configs = Counter(r["run_dir"].replace(",seed=0", "").replace(",seed=1", "") for r in trained)
    assert min(configs.values()) >= MIN_N
    table1 = {r["run_dir"].split("protocol=")[1].split(",")[0]: r["iterations"] for r in rows
              if r["experiment"] == "fig6a_fraction"}
    assert table1 == {"clr": 500, "pclr": 4000}
    ranges = [r for r in rows if r["job"] == "range_test"]
    assert ranges and all(r["iterations"] // r["eval_every"] >= 30 for r in ranges)


def test_aggregate_writes_one_table_per_experiment(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "tests" / "fixtures" / "results", results)
    run = results / "fig1a" / "model=resnet20,scale=smoke,schedule=multistep,seed=1" / "summary.json"
    run.write_text(json.dumps(json.loads(run.read_text()) | {"final_train_acc": 0.875}))
    written = aggregate(results)
    assert sorted(p.name for p in written) == ["fig1a.csv", "fig6a_fraction.csv", "range_fig2b_5k.csv",
                                               "range_lrfind.csv", "table1_maxlr.csv"]
    fig1a = pd.read_csv(results / "fig1a.csv")
    assert len(fig1a) == 5 and set(fig1a["status"]) == {"completed", "unfinished"}
    assert {"seed", "schedule", "final_test_acc", "wall_s"} <= set(fig1a.columns)
    train = fig1a.set_index("run")["final_train_acc"]  # measured where the run has it, empty where not
    assert train["model=resnet20,scale=smoke,schedule=multistep,seed=1"] == 0.875
    assert train.drop("model=resnet20,scale=smoke,schedule=multistep,seed=1").isna().all()
    before = (results / "fig1a.csv").stat().st_mtime_ns
    aggregate(results)
    assert (results / "fig1a.csv").stat().st_mtime_ns == before  # unchanged content is not rewritten
    shutil.rmtree(results / "fig6a_fraction")  # a retired experiment: its table goes with its runs
    (results / "notes.csv").write_text("key,value\nsource,hand\n")  # not a table of runs: left alone
    assert "fig6a_fraction.csv" not in [p.name for p in aggregate(results)]
    assert not (results / "fig6a_fraction.csv").exists()
    assert (results / "notes.csv").exists() and (results / "fig1a.csv").stat().st_mtime_ns == before


def test_plan_rates_come_from_this_machines_bench_records():
    from experiments import throughput

    dev = "cpu: Test CPU, 2 threads"
    rec = dict(path="project", device=dev, precision="fp32", depth=20, compile=False)
    records = [rec | dict(batch=128, images_per_s=400.0), rec | dict(batch=128, images_per_s=500.0),
               rec | dict(batch=128, images_per_s=450.0), rec | dict(batch=1000, images_per_s=600.0),
               rec | dict(batch=256, images_per_s=9e9, compile=True),  # compiled: another path
               rec | dict(batch=256, images_per_s=9e9, precision="bf16"),  # another precision
               rec | dict(batch=256, images_per_s=9e9, device="cpu: Other CPU, 2 threads"),
               rec | dict(batch=256, images_per_s=9e9, path="reference")]
    assert throughput.from_records(records, dev, "fp32", 20, 256) == (450.0, "make bench, batch 128, median of 3")
    assert throughput.from_records(records, dev, "fp32", 20, 512)[0] == 600.0  # log-nearest: 512 is nearer 1000
    assert throughput.from_records(records, dev, "fp32", 56, 256) is None
    row = {"images": 128_000, "iterations": 500, "eval_every": 25, "eval_subset": 2000}
    assert throughput.eval_images(row) == 20 * 2000 + 10_000
    assert throughput.seconds(row, 400.0) == pytest.approx((128_000 + 50_000 / 3) / 400.0)


def test_plan_without_a_rate_says_how_to_get_one(tmp_path, capsys, monkeypatch):
    from experiments import plan as plan_mod

    rows = [{"experiment": "e", "claim": "c", "why": "w", "status": "todo", "images": 1000, "iterations": 10,
             "eval_every": 5, "eval_subset": None, "depth": 20, "batch_size": 100, "precision": "fp32",
             "run_dir": "results/e/x"}]
    monkeypatch.setattr(plan_mod, "plan", lambda scale, extra=None: rows)
    assert plan_mod.main(["--scale", "mini", "--bench", str(tmp_path / "none.jsonl"), "--probe-seconds", "0"]) == 0
    out = capsys.readouterr().out
    assert "unknown: run `make bench` or `make data`" in out and "projected ? h" in out


def test_the_frontier_study_is_a_budget_ladder_at_the_papers_protocol():
    """Every rung at batch 1000 (BN groups of 125), ResNet-20, fp32, 2 seeds; CLR/1cycle and PC-LR at equal
    budgets where both run; budgets double; ~25 evaluations per run; the subset first, in `_ladder`'s order.
    Each run's config is composed in-process exactly as its suite job would compose it (the suite's Hydra dry
    run itself is the mini study's test above)."""
    import itertools
    from collections import Counter, defaultdict

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from experiments.suites import FRONTIER_FULL, FRONTIER_SUBSET, FRONTIER_SUBSET_PCLR, frontier
    from superconv.config import CONF_DIR

    rows = []
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        for job in (j for j in frontier() if j.experiment == "frontier"):
            keys = [o.split("=", 1) for o in job.overrides]
            for values in itertools.product(*(v.split(",") for _, v in keys)):
                pinned = [f"{k}={v}" for (k, _), v in zip(keys, values)]
                c = OmegaConf.to_container(compose("config", overrides=[f"experiment={job.experiment}",
                                                                        "scale=frontier", *pinned]), resolve=True)
                rows.append((c, dict(o.split("=", 1) for o in pinned)))
    tr = [c["train"] for c, _ in rows]
    assert {(t["precision"], t["batch_size"], t["eval_subset"]) for t in tr} == {("fp32", 1000, 2000)}
    assert {c["model"]["depth"] for c, _ in rows} == {20} and {c["model"]["bn_group"] for c, _ in rows} == {125}
    budgets = defaultdict(set)
    for c, o in rows:
        budgets[o["data.fraction"], o["protocol"]].add(c["train"]["iterations"])
        assert c["train"]["iterations"] // c["train"]["eval_every"] == 25, o
    assert budgets["0.2", "clr"] == budgets["0.2", "one_cycle"] == set(FRONTIER_SUBSET)
    assert budgets["0.2", "pclr"] == set(FRONTIER_SUBSET_PCLR) and max(FRONTIER_SUBSET_PCLR) >= 8 * FRONTIER_SUBSET[2]
    assert budgets["1", "clr"] == budgets["1", "one_cycle"] == budgets["1", "pclr"] == set(FRONTIER_FULL)
    for ladder in (FRONTIER_SUBSET, FRONTIER_SUBSET_PCLR, FRONTIER_FULL):
        assert all(b == 2 * a for a, b in zip(ladder, ladder[1:])), ladder
    configs = Counter(tuple(sorted((k, v) for k, v in o.items() if k != "seed")) for _, o in rows)
    assert set(configs.values()) == {2}
    # the subset first, cheapest first up to one rung past CLR's first converged budget; then PC-LR's higher
    # rungs (the converged budgets' speedup factors and Table 1 at 8x need them); the cyclic top rung last
    from experiments.suites import FRONTIER_CONVERGED

    subset = [(c["train"]["iterations"], o["protocol"]) for c, o in rows if o["data.fraction"] == "0.2"]
    assert rows[0][1]["data.fraction"] == "0.2" and all(o["data.fraction"] == "0.2" for _, o in rows[:len(subset)])
    head = [it for it, _ in subset if it <= 2 * FRONTIER_CONVERGED]
    assert head == sorted(head) and len(head) == 3 * 2 * FRONTIER_SUBSET.index(2 * FRONTIER_CONVERGED) + 6
    assert subset[len(head):] == [(1600, "pclr")] * 2 + [(3200, "pclr")] * 2 + [
        (1600, p) for p in ("clr", "clr", "one_cycle", "one_cycle")]
    # the BN horizon shrinks with the run: CLR at 400 iterations keeps Caffe's 0.95 over 1/25 of the paper's length
    clr400 = next(c for c, o in rows if o["protocol"] == "clr" and c["train"]["iterations"] == 400)
    assert clr400["model"]["bn_momentum"] == pytest.approx(1 - 0.95 ** 25, abs=1e-6)


def _composed(job) -> list[dict]:
    """Every run of a suite job, composed in-process at scale=frontier as the job's multirun composes it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from experiments.suites import job_runs
    from superconv.config import CONF_DIR

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return [OmegaConf.to_container(compose("config", overrides=[
            f"experiment={job.experiment}", "scale=frontier", *pinned]), resolve=True) for pinned in job_runs(job)]


def test_the_frontier_sweeps_run_at_the_converged_clr_length_and_hold_epochs_or_iterations():
    """After the ladder: the BN-horizon run at the ladder's top, the full set, then the paper's sweeps on the 10k
    subset at the first converged CLR budget (2 seeds), Fig 9a both at fixed iterations and at fixed epochs, and
    Fig 5b (1 seed); each job names a claim that judges its experiment."""
    from paper_figures.claims import CLAIMS

    from experiments.suites import FRONTIER_CONVERGED, FRONTIER_SUBSET, FRONTIER_SUBSET_PCLR, frontier

    jobs = frontier()
    order = [j.experiment for j in jobs]
    first_full = next(i for i, j in enumerate(jobs) if "data.fraction=1" in j.overrides)
    assert order.index("bn_horizon") < first_full < order.index("fig10b_weight_decay") < order.index(
        "fig5b_lr_estimate") == len(jobs) - 1
    assert FRONTIER_CONVERGED in FRONTIER_SUBSET and FRONTIER_SUBSET.index(FRONTIER_CONVERGED) == len(FRONTIER_SUBSET) - 3
    claims = {c.id: c for c in CLAIMS}
    by_exp: dict[str, list[dict]] = {}
    for job in jobs[order.index("bn_horizon"):]:
        if job.experiment == "frontier":
            continue
        assert job.claim == "" if job.experiment == "bn_horizon" else job.experiment in claims[job.claim].experiments
        by_exp.setdefault(job.experiment, []).extend(_composed(job))
    (bn,) = by_exp["bn_horizon"]
    assert (bn["protocol"], bn["train"]["iterations"], bn["model"]["bn_momentum"]) == (
        "pclr", max(FRONTIER_SUBSET_PCLR), 0.001)
    for exp in ("fig10b_weight_decay", "fig9b_dropout", "fig9a_batch", "fig9a_batch_epochs", "fig5b_lr_estimate"):
        for c in by_exp[exp]:
            assert (c["model"]["depth"], c["data"]["fraction"], c["train"]["precision"]) == (20, 0.2, "fp32"), exp
    assert {c["train"]["iterations"] for e in ("fig10b_weight_decay", "fig9b_dropout", "fig9a_batch")
            for c in by_exp[e]} == {FRONTIER_CONVERGED}
    # 1e-4 (and batch 1000 below) is the frontier's own CLR run at this length (paper_figures.controls)
    assert sorted(c["optim"]["weight_decay"] for c in by_exp["fig10b_weight_decay"]) == [1e-5] * 2 + [1e-3] * 2
    assert {(c["model"]["dropout"], c["model"]["dropout_at"]) for c in by_exp["fig9b_dropout"]} == {
        (0.0, "blocks"), (0.2, "blocks")}
    # fixed epochs: every batch sees 40 epochs of the 10k subset (to within one batch); the schedule follows the run
    epochs = {c["train"]["batch_size"]: c["train"]["iterations"] * c["train"]["batch_size"] / 10_000
              for c in by_exp["fig9a_batch_epochs"]}
    assert sorted(epochs) == [256, 512, 1536] and all(abs(e - 40) <= 0.16 for e in epochs.values()), epochs
    for c in by_exp["fig9a_batch_epochs"]:
        assert c["model"]["bn_group"] == c["train"]["batch_size"] // 8
    assert sorted(c["schedule"]["name"] for c in by_exp["fig5b_lr_estimate"]) == ["clr", "constant"]
    assert {c["seed"] for c in by_exp["fig5b_lr_estimate"]} == {0}
    assert {c["train"]["lr_estimate_every"] for c in by_exp["fig5b_lr_estimate"]} == {1}


def test_the_sweeps_shared_arm_is_the_frontier_run_key_for_key():
    """paper_figures.controls counts the frontier's CLR 400 runs as the sweeps' weight decay 1e-4 / batch 1000 arm:
    that holds only while each sweep at that value composes the frontier run's configuration exactly (the
    experiment's name and its run directory aside)."""
    from paper_figures.controls import CONTROLS

    from experiments.suites import FRONTIER_CONVERGED, FRONTIER_SEEDS, Job, frontier, length_factor

    clr = length_factor(FRONTIER_CONVERGED, "clr")
    [control] = [j for j in frontier() if j.experiment == "frontier" and "data.fraction=0.2" in j.overrides
                 and clr in j.overrides and "protocol=clr" in " ".join(j.overrides)]
    base = [c for c in _composed(control) if c["protocol"] == "clr"]
    assert [c["seed"] for c in base] == [0, 1] and FRONTIER_SEEDS == "seed=0,1"
    shared = {"fig10b_weight_decay": "optim.weight_decay=1e-4", "fig9a_batch": "train.batch_size=1000",
              "fig9a_batch_epochs": "train.batch_size=1000"}
    assert set(shared) == set(CONTROLS)

    def bare(c):
        return {k: v for k, v in c.items() if k not in ("experiment_name", "run_dir")}
    for exp, value in shared.items():
        runs = _composed(Job(exp, (value, "data.fraction=0.2", clr, FRONTIER_SEEDS)))
        assert [bare(c) for c in runs] == [bare(c) for c in base], exp
