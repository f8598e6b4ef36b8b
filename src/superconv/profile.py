"""`python -m superconv.profile`: where one training step of the project path spends its time, per op.

    python -m superconv.profile --depth 56 --batch 128            # real CIFAR-10 (make data), auto precision
    python -m superconv.profile --precision fp32 --top 10

Builds exactly the step `make bench` times (`bench.project_step`: session.prepare + loop.train_iteration),
runs warm-up steps, then profiles `--steps` steps with torch.profiler and prints the top ops by self CPU
time with their share of the total. Speed work starts here: the share of convolutions against everything
else (BN, ReLU, adds, the optimizer, data) says what a fix can win at most.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch


def profile(args) -> list[tuple[str, float, float]]:
    """[(op name, self CPU ms per step, share of the step)] sorted by self time, the top `args.top`."""
    from .allocator import keep_freed_memory
    from .bench import project_step

    keep_freed_memory()
    with tempfile.TemporaryDirectory() as scratch:
        bench_args = argparse.Namespace(dataset=args.dataset, data_dir=args.data_dir, device="cpu",
                                        precision=args.precision, compile=args.compile)
        step, info = project_step(args.depth, args.batch, bench_args, Path(scratch))
        for i in range(args.warmup):
            step(i)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for i in range(args.steps):
                step(args.warmup + i)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    rows = sorted(((e.key, e.self_cpu_time_total / 1e3 / args.steps, e.self_cpu_time_total / total)
                   for e in events), key=lambda r: -r[1])
    print(f"ResNet-{args.depth} batch {args.batch} ({info['precision']}): {total / 1e3 / args.steps:.1f} ms "
          f"self CPU time per step, top {args.top} ops:")
    for name, ms, share in rows[:args.top]:
        print(f"  {name:45s} {ms:9.2f} ms  {share:6.1%}")
    return rows[:args.top]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m superconv.profile", description=__doc__.split("\n")[0])
    p.add_argument("--depth", type=int, default=56)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--dataset", choices=("cifar10", "synthetic"), default="cifar10")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--top", type=int, default=5)
    args = p.parse_args(argv)
    from .bench import _check_data, exit_on_bad_input

    def checked(a):
        _check_data(a)
        profile(a)

    exit_on_bad_input("profile", checked, args)


if __name__ == "__main__":
    main()
