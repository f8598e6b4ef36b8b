"""`python -m experiments.concurrency`: aggregate training images/s of 1, 2, 4 runs side by side on one device.

    python -m experiments.concurrency                        # ResNet-56, batch 1000, levels 1 2 4, 15 s each
    python -m experiments.concurrency --levels 1 2 --seconds 2 --dataset synthetic --data-dir /tmp/d \\
        --depth 8 --batch 16 --device cpu                     # seconds, on a CPU

One ResNet-56 run at batch 1000 uses a few percent of an H200's bf16 rate, so several runs side
by side may buy more images per GPU session than one. Each level starts that many processes, each stepping
the training path `superconv.train` runs (superconv.bench's project step: same data path, precision,
channels_last); every process warms up (cuDNN autotuning, compilation), then all of them count their steps
over the same wall-clock window, which opens only once all are warm. Aggregate = the sum of the processes'
images/s. One JSON line per level is appended to `<--out>/concurrency.jsonl`; `experiments.campaign` runs
the best number at once (the fewest within 5% of the best) on the device the records name.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(args) -> None:
    """One process of a level: warm up, say so, wait for the window, count steps in it."""
    import torch

    from superconv.bench import project_step

    with tempfile.TemporaryDirectory() as scratch:
        ns = argparse.Namespace(dataset=args.dataset, data_dir=args.data_dir, device=args.device,
                                precision=args.precision, compile=args.compile, set=args.set)
        step, info = project_step(args.depth, args.batch, ns, Path(scratch))
        device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                              else "cpu")
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        for i in range(args.warmup):
            step(i)
        sync()
        Path(args.ready).write_text("ready")
        go = Path(args.go)
        while not go.exists():  # the parent writes the window once every process is warm
            time.sleep(0.01)
        start, end = json.loads(go.read_text())["window"]
        while time.time() < start:
            time.sleep(0.001)
        n = 0
        while time.time() < end:
            step(args.warmup + n)
            n += 1
        sync()
        seconds = time.time() - start
        Path(args.result).write_text(json.dumps({"steps": n, "seconds": seconds, "images_per_s": n * args.batch / seconds,
                                                 "precision": info["precision"]}))


def measure(args, k: int) -> dict:
    """Level k: k worker processes, one shared window; the record of this level."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        procs = []
        for i in range(k):
            cmd = [sys.executable, "-m", "experiments.concurrency", "--worker", "--ready", str(tmp / f"ready{i}"),
                   "--go", str(tmp / "go"), "--result", str(tmp / f"result{i}.json"), *_shared(args, k)]
            procs.append(subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL))
        deadline = time.time() + args.timeout
        while not all((tmp / f"ready{i}").exists() for i in range(k)):
            if any(p.poll() not in (None, 0) for p in procs) or time.time() > deadline:
                for p in procs:
                    p.kill()
                raise SystemExit(f"concurrency: a worker of level {k} failed or did not warm up in {args.timeout} s")
            time.sleep(0.05)
        start = time.time() + 0.5
        go = tmp / "go.tmp"
        go.write_text(json.dumps({"window": [start, start + args.seconds]}))
        go.replace(tmp / "go")
        for p in procs:
            p.wait(timeout=args.seconds + args.timeout)
        results = [json.loads((tmp / f"result{i}.json").read_text()) for i in range(k)]
    per_run = [round(r["images_per_s"], 2) for r in results]
    return {"concurrent": k, "aggregate_images_per_s": round(sum(per_run), 2), "per_run_images_per_s": per_run,
            "window_s": args.seconds, "precision": results[0]["precision"]}


def _shared(args, k: int) -> list[str]:
    out = ["--depth", str(args.depth), "--batch", str(args.batch), "--dataset", args.dataset, "--data-dir",
           str(Path(args.data_dir).resolve()), "--device", args.device, "--precision", args.precision,
           "--warmup", str(args.warmup)]
    out += ["--compile"] if args.compile else []
    sets = list(args.set)
    if args.cpu and not any(s.startswith("train.threads=") for s in sets):  # as the campaign shares the cores
        sets.append(f"train.threads={max(1, (os.cpu_count() or 1) // k)}")
    for s in sets:
        out += ["--set", s]
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.concurrency", description=__doc__.splitlines()[0])
    p.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4], help="processes side by side")
    p.add_argument("--seconds", type=float, default=15.0, help="the shared timed window of each level")
    p.add_argument("--depth", type=int, default=56)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--dataset", choices=("cifar10", "synthetic"), default="cifar10")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override (bench --set)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per process")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds a level may take to warm up")
    p.add_argument("--out", default="results/bench")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("ready", "go", "result"):
        p.add_argument(f"--{name}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if any(k < 1 for k in args.levels) or args.seconds <= 0 or args.depth < 1 or args.batch < 1:
        p.error("--levels, --depth and --batch must be positive integers, --seconds positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.worker:
        worker(args)
        return 0
    from superconv.bench import hardware
    from superconv.hardware import pick_device

    device = pick_device(args.device)
    args.cpu = device.type == "cpu"
    hw = hardware(device)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    records = []
    for k in args.levels:
        rec = {"utc": stamp, **measure(args, k), "depth": args.depth, "batch": args.batch, "compile": args.compile,
               "set": args.set, **hw, "command": " ".join(["python -m experiments.concurrency", *sys.argv[1:]])}
        records.append(rec)
        print(f"concurrency: {k} at once: {rec['aggregate_images_per_s']:,.0f} img/s in all "
              f"({', '.join(f'{r:,.0f}' for r in rec['per_run_images_per_s'])}), ResNet-{args.depth} batch "
              f"{args.batch} {rec['precision']}", file=sys.stderr, flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "concurrency.jsonl", "a", encoding="utf-8") as f:  # one write: an interrupted bench adds nothing
        f.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    print(f"concurrency: {len(records)} levels appended to {out / 'concurrency.jsonl'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
