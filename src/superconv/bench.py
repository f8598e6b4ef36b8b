"""`make bench`: training images/s of this project's path against a tutorial-style PyTorch loop.

    python -m superconv.bench                                  # ResNet-20/56 x batch 128/1000, real CIFAR-10
    python -m superconv.bench --depths 56 --batches 128        # one cell
    python -m superconv.bench --dataset synthetic --data-dir /tmp/d --depths 8 --batches 16   # seconds

Both paths run in one process, on the same device, network (the paper's ResNet variant), batch size,
optimizer (SGD, momentum 0.9, weight decay 1e-4, LR 0.1) and augmentation (4-pixel pad-crop + flip +
per-channel normalization), one after the other:

- project: what `superconv.train` runs, built by `session.prepare` and stepped by `loop.train_iteration`:
  uint8 images resident on the device, batched tensor augmentation, channels_last, bf16 autocast where
  `train.precision=auto` picks it (CUDA; CPUs with bf16 instructions), `--compile` for torch.compile,
  losses kept on the device (no host sync per step).
- unfused (CPU): the project path with `superconv.models.fused_bn` off, i.e. BatchNorm per group through
  PyTorch's native kernel, then a separate ReLU (and add): the A/B of the fused kernel, in the same rounds.
- reference: the PyTorch CIFAR-10 tutorial's way: torchvision's `CIFAR10` with per-sample PIL
  transforms (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize) in a `DataLoader`
  with 2 workers, fp32, NCHW, `loss.item()` every step.
- convs: the network's convolutions alone (forward and both gradients, each layer's shape, the project's
  precision and memory format; `superconv.conv_ceiling`): an upper bound on any implementation of the
  step with these kernels, printed as the ratio no path could beat here.

On CPU every path runs under the allocator settings of `superconv.allocator`, applied before any of
them allocates (measured at ResNet-56 batch 128: the tutorial loop gains nothing from them, the project
~14%). Warm-up steps (worker start, cuDNN autotuning, compilation) are not timed; the paths of a cell are timed in
`--rounds` interleaved rounds (`time_interleaved`: the development VMs drift within minutes) and each path's
images/s is the median of its rounds, which ran `--min-seconds` in all. Also printed: FLOPs per image (forward +
backward, by torch.utils.flop_counter: convolutions and matmuls) and the fraction of the machine's matmul rate
(measured here, in the dtype the path computes in) that the path achieves. One JSON line per
measurement is appended to `<--out>/bench.jsonl` with the hardware, versions and git sha.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

# Per-channel statistics of the CIFAR-10 training set, as tutorials hard-code them (the project
# computes its own from the data it loads).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
REFERENCE_WORKERS = 2  # the PyTorch CIFAR-10 tutorial's num_workers
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-4  # a plain SGD step; the schedule does not change the cost


PATHS = ("project", "unfused", "reference", "convs")


def default_paths(device: torch.device) -> list[str]:
    """Every path; "unfused" only on CPU, the only device the fused BatchNorm kernel runs on."""
    return [p for p in PATHS if p != "unfused" or device.type == "cpu"]


class BenchError(Exception):
    """Bad input (missing data, a batch larger than the data set): one line, exit 2."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[int], object], device: torch.device, batch: int, *, warmup: int,
               min_steps: int, min_seconds: float) -> dict:
    """Run `warmup` untimed steps, then at least `min_steps` steps and `min_seconds`; images/s.

    The device is synchronized only at the ends of the timed stretches, never per step.
    """
    for i in range(warmup):
        step(i)
    _sync(device)
    t0, n = time.perf_counter(), 0
    todo = min_steps
    while todo:
        for _ in range(todo):
            step(warmup + n)
            n += 1
        _sync(device)
        elapsed = time.perf_counter() - t0
        todo = 0 if elapsed >= min_seconds else max(1, math.ceil(n * (min_seconds - elapsed) / max(elapsed, 1e-9)))
    seconds = time.perf_counter() - t0
    return {"steps": n, "seconds": round(seconds, 3), "images_per_s": round(n * batch / seconds, 2)}


def time_interleaved(steps: dict[str, Callable[[int], object]], device: torch.device, batch: int, *, rounds: int,
                     warmup: int, min_steps: int, min_seconds: float,
                     optional: tuple[str, ...] = ("reference",)) -> dict[str, dict]:
    """Each path timed in `rounds` interleaved rounds (path order reversed every other round); images/s is the
    median of its rounds. Why: the development VMs drift by ~30% within minutes (two `make bench` runs of the
    same code 4 minutes apart: bf16 matmul 0.59 vs 0.81 TFLOP/s, ResNet-56 b128 at 50.0% vs 64.6% of its
    bound), so paths timed one after the other in single stretches compare the drift, not the paths.
    Round 1 runs `warmup` untimed steps per path, later rounds one (caches, and the reference's DataLoader
    workers refilling their prefetch queue, settle outside the timed stretch). Each round runs at least
    `min_steps` steps and `min_seconds / rounds` seconds. A RuntimeError of an `optional` path (DataLoader
    workers killed for lack of shared memory) is printed and that path dropped; any other path's is raised.
    """
    out: dict[str, dict] = {name: {"steps": 0, "seconds": 0.0, "round_images_per_s": []} for name in steps}
    live = list(steps)
    for r in range(rounds):
        for name in (live if r % 2 == 0 else live[::-1]):
            try:
                t = time_steps(steps[name], device, batch, warmup=warmup if r == 0 else 1, min_steps=min_steps,
                               min_seconds=min_seconds / rounds)
            except RuntimeError as e:
                if name not in optional:
                    raise
                print(f"  {name} failed: {' '.join(str(e).split())[:200]}", file=sys.stderr)
                live.remove(name)
                del out[name]
                continue
            out[name]["steps"] += t["steps"]
            out[name]["seconds"] = round(out[name]["seconds"] + t["seconds"], 3)
            out[name]["round_images_per_s"].append(t["images_per_s"])
    for timing in out.values():
        rates = sorted(timing["round_images_per_s"])
        mid = len(rates) // 2
        timing["images_per_s"] = round(rates[mid] if len(rates) % 2 else (rates[mid - 1] + rates[mid]) / 2, 2)
    return out


def _matmul_size(device: torch.device, dtype: torch.dtype, largest: int, seconds: float = 2.0) -> int:
    """The largest power-of-two size <= `largest` whose matmul takes about `seconds` or less here, found by
    timing sizes from 256 up: emulated bf16 on a CPU without bf16 instructions runs a 2048^2 matmul in ~40 s
    (measured on an AVX2-only AMD EPYC), ~2000x slower than with AMX, so the size follows the measured speed."""
    n = 256
    while n < largest:
        a = torch.randn(n, n, device=device).to(dtype)
        a @ a  # warm-up (oneDNN primitive creation)
        _sync(device)
        t0 = time.perf_counter()
        a @ a
        _sync(device)
        if (time.perf_counter() - t0) * 8 > seconds:  # the next size costs ~8x
            break
        n *= 2
    return n


def matmul_rate(device: torch.device, dtype: torch.dtype) -> float:
    """Measured FLOP/s of a large square matmul in `dtype` (the ceiling dense layers could reach here)."""
    n = 8192 if device.type == "cuda" else _matmul_size(device, dtype, 2048)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    reps = 10 if device.type == "cuda" else 3
    for _ in range(2):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def flops_per_image(depth: int, num_classes: int = 10) -> float:
    """Forward + backward FLOPs of one 32x32 image (convolutions and matmuls, torch's flop counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    from .models.resnet import build_resnet

    model = build_resnet(depth, "paper", num_classes)
    x = torch.randn(4, 3, 32, 32)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), torch.zeros(4, dtype=torch.long)).backward()
    return counter.get_total_flops() / 4


def _compose(overrides: list[str]) -> tuple[dict, object]:
    """The validated config of these overrides and its schedule (session.load_config's check, no store)."""
    from hydra import compose, initialize_config_dir

    from .config import CONF_DIR, validate
    from .session import plain

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name="bench"):
        cfg = compose("config", overrides=overrides)
    c = plain(cfg)
    return c, validate(c)


def project_step(depth: int, batch: int, args, scratch: Path,
                 fused: bool | None = None) -> tuple[Callable[[int], object], dict]:
    """The training path of superconv.train for this cell, as a step function, and what it runs with.
    `fused=False`: with the fused BatchNorm kernel off (the "unfused" path); None: as training runs it."""
    from .loop import train_iteration
    from .models import fused_bn
    from .session import prepare

    c, schedule = _compose([f"model.depth={depth}", f"train.batch_size={batch}", f"data.name={args.dataset}",
                  "data.augment=standard", f"paths.data_dir={args.data_dir}", f"paths.results_dir={scratch}",
                  "schedule=constant", f"schedule.max_lr={LR}", "train.iterations=1000000",
                  f"train.device={args.device}", f"train.precision={args.precision}",
                  f"train.compile={str(args.compile).lower()}", "logger=none", *getattr(args, "set", [])])
    parts = prepare(c, schedule)
    gen = torch.Generator(device=parts.device).manual_seed(0)
    parts.model.train()
    fused_bn.set_enabled(fused)
    on = parts.device.type == "cpu" and fused_bn.available()
    info = {"precision": "bf16" if parts.amp_dtype == torch.bfloat16 else "fp32", "channels_last": True,
            "compile": bool(args.compile), "data": "uint8 on the device, batched tensor augmentation",
            "fused_bn": on}

    def step(it: int):
        fused_bn.set_enabled(fused)  # the paths of a cell alternate in one process: each sets its own
        return train_iteration(parts, it, gen)
    return step, info


def reference_step(depth: int, batch: int, args, device: torch.device) -> tuple[Callable[[int], object], dict]:
    """The tutorial loop: torchvision CIFAR10 + PIL transforms + DataLoader, fp32 NCHW, loss.item()."""
    import torchvision
    import torchvision.transforms as T

    from .models.resnet import build_resnet

    from .data import load_dataset

    class TutorialCIFAR10(torchvision.datasets.CIFAR10):
        """torchvision's CIFAR10 and its per-sample `__getitem__` (HWC array -> PIL image -> transforms),
        holding the arrays superconv's restricted unpickler read: torchvision's own reader unpickles
        without restriction and checks md5 sums a copy re-encoded from images cannot match."""

        def __init__(self, images, targets, transform):
            torchvision.datasets.VisionDataset.__init__(self, root="", transform=transform)
            self.train = True
            self.data = images.permute(0, 2, 3, 1).contiguous().numpy()  # [N,32,32,3], as torchvision stores it
            self.targets = targets.tolist()

    split = load_dataset(args.dataset, args.data_dir)
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    dataset = TutorialCIFAR10(split.train_x, split.train_y, transform)
    if batch > len(dataset):
        raise BenchError(f"--batches {batch}: larger than the {len(dataset)} training images in {args.data_dir}")
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True,
                                         num_workers=REFERENCE_WORKERS, persistent_workers=True,
                                         pin_memory=device.type == "cuda")
    torch.manual_seed(0)
    model = build_resnet(depth, "paper", 10).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    criterion = torch.nn.CrossEntropyLoss()
    model.train()

    def batches():
        while True:
            yield from loader

    stream = batches()

    def step(_it: int) -> float:
        x, y = next(stream)
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    info = {"precision": "fp32", "channels_last": False, "compile": False,
            "data": f"torchvision CIFAR10 + PIL transforms, DataLoader({REFERENCE_WORKERS} workers)"}
    return step, info


def convs_step(depth: int, batch: int, args, device: torch.device) -> tuple[Callable[[int], object], dict]:
    """The upper bound: one step's convolutions alone, in the precision the project path picks."""
    from .conv_ceiling import conv_only_step
    from .models.resnet import build_resnet
    from .hardware import pick_precision

    amp = pick_precision(args.precision, device)
    step = conv_only_step(build_resnet(depth, "paper"), batch, device, amp or torch.float32)
    info = {"precision": "bf16" if amp == torch.bfloat16 else "fp32", "channels_last": True, "compile": False,
            "data": "none: the convolutions alone (forward, input and weight gradients), an upper bound"}
    return step, info


def precisions_measured(args, device: torch.device) -> dict[str, torch.dtype]:
    """The dtypes whose matmul rate the bench needs: the reference's fp32 and whatever the project and
    convs paths resolve `--precision` to here. A path's FLOP rate is only ever divided by the matmul rate
    of the dtype it computes in (dividing a bf16 path by the fp32 rate gave "340% of the matmul rate")."""
    from .hardware import pick_precision

    amp = pick_precision(args.precision, device)
    out = {"fp32": torch.float32}
    if amp == torch.bfloat16:
        out["bf16"] = torch.bfloat16
    return out


def _check_data(args) -> None:
    folder = Path(args.data_dir) / ("synthetic" if args.dataset == "synthetic" else "") / "cifar-10-batches-py"
    if not (folder / "data_batch_1").is_file():
        hint = ("build it with `make data`" if args.dataset == "cifar10"
                else "write it with superconv.data.write_synthetic")
        raise BenchError(f"--data-dir {args.data_dir}: no CIFAR-10 files in {folder}; {hint}")


def hardware(device: torch.device) -> dict:
    from .hardware import describe_device, git_sha

    import torchvision

    from . import allocator

    return {"device": describe_device(device), "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch_version": torch.__version__, "torchvision_version": torchvision.__version__,
            "python_version": platform.python_version(), "hostname": platform.node(), "git_sha": git_sha(),
            "allocator": allocator.describe()}


def run(args) -> list[dict]:
    from .allocator import keep_freed_memory
    from .hardware import pick_device

    device = pick_device(args.device)
    _check_data(args)
    if device.type == "cpu":  # before either path allocates: both run under the same allocator settings
        keep_freed_memory()
    hw = hardware(device)
    paths = args.paths or default_paths(device)
    rates = {name: matmul_rate(device, dtype) for name, dtype in precisions_measured(args, device).items()}
    print(f"bench: {hw['device']}; matmul " + ", ".join(f"{k} {v / 1e12:.2f} TFLOP/s" for k, v in rates.items()),
          file=sys.stderr)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    records = []
    with tempfile.TemporaryDirectory() as scratch:
        for depth in args.depths:
            flops = flops_per_image(depth)
            for batch in args.batches:
                built = {}
                for path in paths:  # built together, then timed in interleaved rounds (time_interleaved)
                    try:
                        built[path] = (project_step(depth, batch, args, Path(scratch)) if path == "project"
                                       else project_step(depth, batch, args, Path(scratch), fused=False)
                                       if path == "unfused"
                                       else convs_step(depth, batch, args, device) if path == "convs"
                                       else reference_step(depth, batch, args, device))
                    except RuntimeError as e:  # e.g. DataLoader workers killed (no shared memory): say so, go on
                        if path != "reference":
                            raise
                        print(f"  ResNet-{depth} batch {batch} reference failed: {' '.join(str(e).split())[:200]}",
                              file=sys.stderr)
                timings = time_interleaved({path: step for path, (step, _) in built.items()}, device, batch,
                                           rounds=args.rounds, warmup=args.warmup, min_steps=args.min_steps,
                                           min_seconds=args.min_seconds)
                cell = {}
                for path, timing in timings.items():
                    info = built[path][1]
                    rate = rates[info["precision"]]  # every precision a path reports was measured above
                    achieved = timing["images_per_s"] * flops
                    rec = {"utc": stamp, "path": path, "depth": depth, "batch": batch, **info, **timing,
                           "warmup_steps": args.warmup, "flops_per_image": flops,
                           "achieved_tflops": round(achieved / 1e12, 4),
                           "matmul_tflops": round(rate / 1e12, 4), "matmul_fraction": round(achieved / rate, 4),
                           **hw, "command": " ".join(["python -m superconv.bench", *sys.argv[1:]])}
                    cell[path] = rec
                    records.append(rec)
                    spread = ", ".join(f"{v:.0f}" for v in timing["round_images_per_s"])
                    print(f"  ResNet-{depth} batch {batch} {path:9s}: {timing['images_per_s']:9.1f} img/s "
                          f"({info['precision']}, median of rounds [{spread}], {timing['steps']} steps in "
                          f"{timing['seconds']:.1f} s), {achieved / 1e12:.3f} TFLOP/s = {achieved / rate:.1%} of the "
                          f"{info['precision']} matmul rate", file=sys.stderr)
                del built
                if "reference" in cell:
                    _print_ratios(cell, depth, batch, flops)
                if "project" in cell and "unfused" in cell:
                    _print_fused_gain(cell, depth, batch)
                _print_bound_share(cell, depth, batch)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "bench.jsonl", "a") as f:  # one write at the end: an interrupted bench adds nothing
        f.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    print(f"bench: {len(records)} measurements appended to {out / 'bench.jsonl'}", file=sys.stderr)
    return records


def _print_ratios(cell: dict, depth: int, batch: int, flops: float) -> None:
    """Each other path's images/s over the reference's, stored in its record and printed."""
    ref = cell["reference"]["images_per_s"]
    for path in ("project", "unfused", "convs"):
        if path in cell:
            cell[path]["ratio_to_reference"] = round(cell[path]["images_per_s"] / ref, 3)
    if "project" in cell:
        print(f"ResNet-{depth} batch {batch}: project {cell['project']['images_per_s']:.1f} img/s, "
              f"reference {ref:.1f} img/s, ratio {cell['project']['ratio_to_reference']:.2f}x; "
              f"{flops / 1e6:.1f} MFLOP per image")
    if "convs" in cell:
        c = cell["convs"]
        print(f"ResNet-{depth} batch {batch}: its convolutions alone ({c['precision']}) run at "
              f"{c['images_per_s']:.1f} img/s: no implementation with these kernels can exceed "
              f"{c['ratio_to_reference']:.2f}x the reference here")


def _print_fused_gain(cell: dict, depth: int, batch: int) -> None:
    """The fused BatchNorm kernel's gain: the project path over the same path with it off, same rounds."""
    p, u = cell["project"], cell["unfused"]
    p["ratio_to_unfused"] = round(p["images_per_s"] / u["images_per_s"], 3)
    print(f"ResNet-{depth} batch {batch}: fused BN {'on' if p.get('fused_bn') else 'OFF (did not build)'}: "
          f"{p['ratio_to_unfused']:.2f}x the unfused path ({p['images_per_s']:.1f} vs {u['images_per_s']:.1f} img/s)")


def _print_bound_share(cell: dict, depth: int, batch: int) -> None:
    """The project's share of its convolutions-alone bound: the figure that travels between machines
    (the ratio to the tutorial loop depends on the CPU's fp32 and bf16 rates)."""
    if "project" in cell and "convs" in cell:
        # printed from the stored (rounded) value, so the record and the line always say the same
        share = round(cell["project"]["images_per_s"] / cell["convs"]["images_per_s"], 4)
        cell["project"]["bound_share"] = share
        print(f"ResNet-{depth} batch {batch}: project at {share:.1%} of its convolutions-alone bound "
              f"({cell['project']['images_per_s']:.1f} of {cell['convs']['images_per_s']:.1f} img/s, "
              f"{cell['project']['precision']})")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m superconv.bench", description=__doc__.split("\n")[0])
    p.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    p.add_argument("--batches", type=int, nargs="+", default=[128, 1000])
    p.add_argument("--paths", nargs="+", choices=PATHS, default=None,
                   help="default: all; unfused only on CPU (elsewhere it is the project path)")
    p.add_argument("--dataset", choices=("cifar10", "synthetic"), default="cifar10")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto", help="the project path's")
    p.add_argument("--compile", action="store_true", help="torch.compile the project path's step")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for the project path (repeatable), e.g. model.bn_group=null")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per measurement")
    p.add_argument("--min-steps", type=int, default=5)
    p.add_argument("--min-seconds", type=float, default=10.0, help="per path, over all its rounds")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per cell; images/s is their median")
    p.add_argument("--out", default="results/bench")
    args = p.parse_args(argv)
    for name in ("depths", "batches"):
        if any(v < 1 for v in getattr(args, name)):
            p.error(f"--{name}: must be positive integers")
    if args.warmup < 0 or args.min_steps < 1 or args.min_seconds < 0 or args.rounds < 1:
        p.error("--warmup must be >= 0, --min-steps >= 1, --min-seconds >= 0, --rounds >= 1")
    return args


def exit_on_bad_input(prog: str, fn: Callable, *args) -> None:
    """Call fn(*args); bad input (missing data, a bad value) is one line on stderr and exit code 2, the
    contract of every command of the project (bench and profile share it)."""
    from .session import USER_ERRORS

    try:
        fn(*args)
    except (BenchError, *USER_ERRORS) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    exit_on_bad_input("bench", run, parse(argv))


if __name__ == "__main__":
    main()
