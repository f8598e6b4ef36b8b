"""`python -m superconv.bench`: both paths measured, the ratio printed, records appended; bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch

from superconv.bench import flops_per_image, time_interleaved, time_steps
from superconv.conv_ceiling import conv_only_step, conv_shapes
from superconv.models.resnet import build_resnet
from superconv.data import write_synthetic


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchdata")
    write_synthetic(root / "synthetic")
    return root


def _bench(*args, cwd):
    return subprocess.run([sys.executable, "-m", "superconv.bench", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_bench_measures_both_paths_and_appends_records(synthetic, tmp_path, precision):
    """Both resolutions of `precision=auto` are forced, so the test is the same on CPUs with and without
    bf16 instructions (bf16 is only slower without them)."""
    args = ["--dataset", "synthetic", "--data-dir", str(synthetic), "--depths", "8", "--batches", "16",
            "--warmup", "1", "--min-steps", "2", "--min-seconds", "0", "--rounds", "2", "--device", "cpu",
            "--precision", precision, "--out", "out"]
    # the fused-BN A/B (unfused path) is precision-agnostic: once, in fp32 (bf16 is emulated, slow, on AVX2 CPUs)
    paths = ["--paths", "project", "unfused", "reference", "convs"] if precision == "fp32" else \
        ["--paths", "project", "reference", "convs"]
    proc = _bench(*args, *paths, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ResNet-8 batch 16: project" in proc.stdout and "ratio" in proc.stdout
    lines = (tmp_path / "out" / "bench.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    assert [r["path"] for r in recs] == paths[1:]
    project, reference, convs = recs[0], recs[-2], recs[-1]
    unfused = recs[1] if precision == "fp32" else None
    assert project["steps"] == 4 and project["batch"] == 16 and project["depth"] == 8  # 2 rounds of 2 steps
    assert len(project["round_images_per_s"]) == 2  # the median of two rounds is their mean
    assert project["images_per_s"] == pytest.approx(sum(project["round_images_per_s"]) / 2, abs=0.01)
    assert project["images_per_s"] > 0 and reference["images_per_s"] > 0
    assert project["ratio_to_reference"] == pytest.approx(project["images_per_s"] / reference["images_per_s"],
                                                          rel=1e-2)
    assert project["channels_last"] and not reference["channels_last"]
    # forward + backward of ResNet-8 (paper variant): ~3x its ~14.7 MFLOP forward pass
    assert 3.5e7 < project["flops_per_image"] < 5.5e7
    # The matmul rate is a ceiling where the precision is native. bf16 without bf16 instructions (AVX2-only
    # CPUs) runs matmuls in a slow emulation that oneDNN's convolutions do not share, so there it is no bound.
    from superconv.hardware import cpu_has_native_bf16

    native = precision == "fp32" or cpu_has_native_bf16()
    assert 0 < project["matmul_fraction"] < (1 if native else float("inf"))
    assert project["precision"] == convs["precision"] == precision and reference["precision"] == "fp32"
    for key in ("device", "torch_version", "git_sha", "hostname", "command", "utc"):
        assert project[key], key
    # the convolutions alone: a bound, with its ratio to the reference printed and stored
    assert convs["ratio_to_reference"] == pytest.approx(convs["images_per_s"] / reference["images_per_s"], rel=1e-2)
    assert f"its convolutions alone ({precision})" in proc.stdout
    assert f"{convs['ratio_to_reference']:.2f}x" in proc.stdout
    # the project's share of that bound: stored and printed
    assert project["bound_share"] == pytest.approx(project["images_per_s"] / convs["images_per_s"], rel=1e-3)
    assert f"project at {project['bound_share']:.1%} of its convolutions-alone bound" in proc.stdout
    # the fused BatchNorm kernel's A/B: the same path with it off, in the same rounds
    from superconv.models import fused_bn

    assert project["fused_bn"] is fused_bn.load()
    if unfused is not None:
        assert unfused["fused_bn"] is False
        assert project["ratio_to_unfused"] == pytest.approx(project["images_per_s"] / unfused["images_per_s"],
                                                            rel=1e-2)
        assert f"{project['ratio_to_unfused']:.2f}x the unfused path" in proc.stdout
    # a second bench appends, never overwrites (once: precision-agnostic, and bf16 is emulated, slow, on AVX2)
    if precision == "fp32":
        assert _bench(*args[:-2], "--paths", "project", "--out", "out", cwd=tmp_path).returncode == 0
        assert len((tmp_path / "out" / "bench.jsonl").read_text().splitlines()) == len(recs) + 1


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_each_path_is_divided_by_the_matmul_rate_of_its_own_precision(synthetic, tmp_path, monkeypatch, precision):
    """A bf16 path divided by the fp32 matmul rate reported "340% of the matmul rate": every precision a
    record names must have been measured, and its fraction computed against that rate."""
    from superconv import bench

    fake = {torch.float32: 1.0e12, torch.bfloat16: 4.0e12}  # FLOP/s; distinct, so a mix-up shows
    monkeypatch.setattr(bench, "matmul_rate", lambda device, dtype: fake[dtype])
    args = bench.parse(["--dataset", "synthetic", "--data-dir", str(synthetic), "--depths", "8", "--batches",
                        "16", "--warmup", "0", "--min-steps", "1", "--min-seconds", "0", "--device", "cpu",
                        "--precision", precision, "--paths", "project", "convs", "--out", str(tmp_path)])
    records = bench.run(args)
    assert [r["precision"] for r in records] == [precision, precision]
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    for r in records:
        assert r["matmul_tflops"] == fake[dtype] / 1e12
        # both stored rounded to 4 decimals: a slow machine's tiny values differ by that rounding alone
        assert r["matmul_fraction"] == pytest.approx(r["achieved_tflops"] * 1e12 / fake[dtype], rel=1e-2, abs=1.5e-4)


def test_missing_data_is_one_line_and_writes_nothing(tmp_path):
    proc = _bench("--data-dir", str(tmp_path / "nowhere"), "--out", "out", cwd=tmp_path)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "nowhere" in proc.stderr and "make data" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_batch_larger_than_the_data_is_refused(synthetic, tmp_path):
    proc = _bench("--dataset", "synthetic", "--data-dir", str(synthetic), "--depths", "8", "--batches", "5000",
                  "--device", "cpu", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 2 and "5000" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_paths_are_timed_in_interleaved_rounds_and_report_their_median():
    calls = []

    def path(name):
        def step(i):
            calls.append((name, i))
        return step

    timings = time_interleaved({"a": path("a"), "b": path("b")}, torch.device("cpu"), 8, rounds=3, warmup=2,
                               min_steps=2, min_seconds=0)
    order = [name for name, _ in calls]
    # round 1: a (2 warm-up + 2), b (2 + 2); round 2 reversed, one warm-up step each; round 3 as round 1
    assert order == ["a"] * 4 + ["b"] * 4 + ["b"] * 3 + ["a"] * 3 + ["a"] * 3 + ["b"] * 3
    for t in timings.values():
        assert t["steps"] == 6 and len(t["round_images_per_s"]) == 3
        assert t["images_per_s"] == sorted(t["round_images_per_s"])[1]


def test_a_failing_reference_is_dropped_and_any_other_failure_raised():
    def broken(i):
        raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Bus error")

    timings = time_interleaved({"project": lambda i: None, "reference": broken}, torch.device("cpu"), 8,
                               rounds=2, warmup=0, min_steps=1, min_seconds=0)
    assert list(timings) == ["project"] and len(timings["project"]["round_images_per_s"]) == 2
    with pytest.raises(RuntimeError, match="Bus error"):
        time_interleaved({"project": broken}, torch.device("cpu"), 8, rounds=1, warmup=0, min_steps=1,
                         min_seconds=0)


def test_time_steps_runs_warmup_then_at_least_min_steps():
    calls = []
    timing = time_steps(calls.append, torch.device("cpu"), 10, warmup=3, min_steps=4, min_seconds=0)
    assert calls == list(range(7)) and timing["steps"] == 4
    slow = time_steps(lambda i: time.sleep(0.01), torch.device("cpu"), 10, warmup=0, min_steps=1, min_seconds=0.2)
    assert slow["seconds"] >= 0.2 and slow["steps"] >= 10  # extended to min_seconds


@pytest.mark.parametrize("depth", [8, 56])
def test_conv_ceiling_covers_every_convolution_of_the_step(depth):
    """The bound does all of the step's convolution work: torch's flop counter finds the same FLOPs in
    it as in the whole training step (forward + backward), but for the FC layer's few thousand."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_resnet(depth, "paper")
    layers = conv_shapes(model, batch=4)
    assert len(layers) == depth - 1  # stem + 2 per basic block
    assert layers[0][1] == (4, 3, 32, 32) and layers[-1][1][2:] == (8, 8)
    assert model.training  # conv_shapes leaves the model's mode as it found it
    step = conv_only_step(model, 4, torch.device("cpu"), torch.float32)
    with FlopCounterMode(display=False) as counter:
        step(0)
    fc = 3 * 2 * 64 * 10  # forward, input and weight gradients of the 64->10 matmul, per image
    assert counter.get_total_flops() == pytest.approx((flops_per_image(depth) - fc) * 4, rel=1e-9)


def test_conv_only_step_runs_each_layer_once_with_its_gradients(monkeypatch):
    model = build_resnet(8, "paper")
    calls = []
    real = torch.ops.aten.convolution_backward
    monkeypatch.setattr(torch.ops.aten, "convolution_backward", lambda *a: calls.append(a[-1]) or real(*a))
    step = conv_only_step(model, 2, torch.device("cpu"), torch.float32)
    step(0)
    # no input gradient for the first layer (the data), all for the other six; the paper variant's
    # convolutions have biases (Caffe's default), so their gradient is part of the work
    assert calls == [[False, True, True]] + [[True, True, True]] * 6


@pytest.mark.parametrize("has_bf16, expected", [(True, torch.bfloat16), (False, None)])
def test_auto_precision_follows_the_cpu_bf16_instructions(monkeypatch, has_bf16, expected):
    """`auto` on a CPU: bf16 autocast only with bf16 instructions (emulated bf16 is ~10x slower); both
    answers are forced, whatever this machine has. Explicit choices ignore the CPU."""
    from superconv import hardware

    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: has_bf16)
    cpu = torch.device("cpu")
    assert hardware.pick_precision("auto", cpu) == expected
    assert hardware.pick_precision("bf16", cpu) == torch.bfloat16 and hardware.pick_precision("fp32", cpu) is None


def test_profile_prints_the_top_ops_of_one_project_step(synthetic, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "superconv.profile", "--dataset", "synthetic", "--data-dir",
                           str(synthetic), "--depth", "8", "--batch", "16", "--warmup", "1", "--steps", "1",
                           "--top", "3", "--precision", "fp32"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines[0].startswith("ResNet-8 batch 16 (fp32):") and "top 3 ops" in lines[0]
    ops = lines[1:]
    assert len(ops) == 3 and all(line.strip().startswith("aten::") or "#" in line or "::" in line for line in ops)
    shares = [float(line.rsplit(None, 1)[1].rstrip("%")) for line in ops]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 100


def test_profile_without_data_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "superconv.profile", "--data-dir", str(tmp_path / "nowhere")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("profile: error:") and "nowhere" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_matmul_rate_is_measured_at_a_size_this_machine_can_afford():
    """Emulated bf16 (no bf16 instructions) runs a 2048^2 matmul in ~40 s: the size follows the measured
    speed, from 256 up to the largest, stopping before a size would take longer than `seconds`."""
    from superconv.bench import _matmul_size

    cpu = torch.device("cpu")
    assert _matmul_size(cpu, torch.float32, 1024, seconds=1e-12) == 256  # everything too slow: the smallest
    assert _matmul_size(cpu, torch.float32, 1024, seconds=1e9) == 1024  # everything affordable: the largest
    assert _matmul_size(cpu, torch.bfloat16, 256, seconds=1e9) == 256  # never above the largest asked for


def test_the_unfused_path_is_benched_by_default_on_cpu_only():
    from superconv.bench import default_paths

    assert default_paths(torch.device("cpu")) == ["project", "unfused", "reference", "convs"]
    assert default_paths(torch.device("cuda")) == ["project", "reference", "convs"]


def test_the_bf16_cpu_check_refuses_a_cpu_without_bf16_instructions(tmp_path):
    """scripts/cpu_bf16_check.sh measures the bf16 targets on such a CPU; on a CPU without avx512_bf16/amx_bf16 it must
    stop before benching anything (an lscpu that lists neither stands in for such a CPU on any machine)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "lscpu").write_text("#!/bin/sh\necho 'Model name: Test CPU'\necho 'Flags: fpu sse avx2 avx512f'\n")
    (fake / "lscpu").chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "PY": "false"}
    proc = subprocess.run([str(root / "scripts" / "cpu_bf16_check.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("cpu_bf16_check: this CPU has neither avx512_bf16 nor amx_bf16 (lscpu); "
                                   "run it on one that does")
    assert proc.stdout == ""
