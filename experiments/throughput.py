"""Training images/s of this machine, measured, for `make plan`: from `make bench`'s records or a short probe.

A projected wall time is only as good as the rate behind it, and machines differ widely (AVX2-only CPUs,
CPUs with AVX512-BF16 or AMX, GPUs). So the plan never uses a typed-in rate:

1. `results/bench/bench.jsonl`: the project path's records whose device string (`cpu: <model name>, <threads>
   threads`), precision and depth match the run's, without torch.compile; of those, the batch closest to the
   run's (in log scale), and the median of its records.
2. Otherwise a probe: `superconv.bench`'s project step (the training path `superconv.train` runs: same data
   path, BN groups, channels_last) for `seconds` on the real data, once per (depth, batch, precision).
3. Neither (no record and no data to probe on): no projection, and the plan says how to get one.

Evaluation is priced as forward passes at EVAL_COST training images each (a forward pass is about a third
of a training step: one pass forward, two backward).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

EVAL_COST = 1 / 3  # one test image ~ the forward third of a training image's forward + backward
TEST_IMAGES = 10_000  # CIFAR-10's test set: the final evaluation of every run


def resolve_precision(precision: str, device: str) -> str:
    """What train.precision=auto becomes on `device` (a `this_device` string): superconv.hardware's rule."""
    import torch

    from superconv.hardware import pick_precision

    dtype = pick_precision(precision, torch.device(device.split(":")[0]))
    return "bf16" if dtype is not None else "fp32"


def this_device() -> str:
    """The device string `make bench` records: `cpu: <model name>, <threads> threads` or `cuda: <name>`."""
    from superconv.hardware import describe_device, pick_device

    return describe_device(pick_device("auto"))


def read_records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def from_records(records: list[dict], device: str, precision: str, depth: int, batch: int) -> tuple[float, str] | None:
    """(images/s, where from) of the recorded batch nearest `batch`, or None without a matching record."""
    rows = [r for r in records if r.get("path") == "project" and r.get("device") == device
            and r.get("precision") == precision and r.get("depth") == depth and not r.get("compile")]
    if not rows:
        return None
    nearest = min({r["batch"] for r in rows}, key=lambda b: (abs(math.log(b / batch)), b))
    rates = [r["images_per_s"] for r in rows if r["batch"] == nearest]
    return statistics.median(rates), f"make bench, batch {nearest}, median of {len(rates)}"


def probe(depth: int, batch: int, precision: str, data_dir: str, seconds: float) -> tuple[float, str]:
    """Images/s of the project's training step, measured now for `seconds` (after 2 untimed steps)."""
    import argparse
    import tempfile

    from superconv.bench import project_step, time_steps
    from superconv.hardware import pick_device

    args = argparse.Namespace(dataset="cifar10", data_dir=data_dir, device="auto", precision=precision,
                              compile=False, set=[])
    with tempfile.TemporaryDirectory() as scratch:
        step, _ = project_step(depth, batch, args, Path(scratch))
        t = time_steps(step, pick_device("auto"), batch, warmup=2, min_steps=3, min_seconds=seconds)
    return t["images_per_s"], f"probe, {t['steps']} steps in {t['seconds']:.0f} s"


def eval_images(row: dict) -> int:
    """Test images a run evaluates: one evaluation every eval_every iterations, the final one on all 10,000."""
    per = row.get("eval_subset") or TEST_IMAGES
    return (row["iterations"] // row["eval_every"]) * per + TEST_IMAGES if row.get("eval_every") else TEST_IMAGES


def seconds(row: dict, rate: float) -> float:
    """Projected wall time of a run at `rate` training images/s, its evaluations included."""
    return (row["images"] + EVAL_COST * eval_images(row)) / rate
