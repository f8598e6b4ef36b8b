"""`python -m experiments.plan --scale mini` (`make plan`): the runs a scale would launch, how many are
done, and what the rest costs on this machine, before anything is launched.

Each suite command is run with `dry_run=true`: Hydra expands the sweep exactly as it would for real and
every job prints its directory, status and images instead of training. The wall time is projected from this
machine's measured training images/s (`experiments.throughput`: `make bench`'s records, else a short probe),
evaluations included; each experiment line names the claim it tests. An interrupted run counts from the
iteration its checkpoint resumes at, and a run another process has claimed (a second `make reproduce` beside
the first) shows as running.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from . import throughput
from .suites import AUTHOR_GPU_HOURS_PER_IMAGE, CPU_IMAGES_PER_S, H200_IMAGES_PER_S, SCALES, command, suite


def plan(scale: str, extra: list[str] | None = None, python: str = sys.executable) -> list[dict]:
    """One dict per run (see superconv.cli.plan_line), with its `command`, `why` and `claim`."""
    rows = []
    jobs = [(job, [*command(job, scale, python), *(extra or []), "dry_run=true", "train.progress=false"])
            for job in suite(scale)]
    # all dry runs at once (each is mostly Python start-up and Hydra composition), read back in suite order
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _, cmd in jobs]
    for (job, cmd), proc in zip(jobs, procs):
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            for other in procs:
                other.kill()
            lines = stderr.strip().splitlines() or ["(no message)"]
            why = next((ln for ln in reversed(lines) if ln.startswith("superconv: error: ")), lines[-1])
            raise SystemExit(f"plan: {' '.join(cmd[1:])} failed: {why.removeprefix('superconv: error: ')}")
        for line in stdout.splitlines():
            if line.startswith("{"):
                rows.append(json.loads(line) | {"command": " ".join(["python", *cmd[1:-2]]), "why": job.why,
                                                "claim": job.claim})
    return rows


def rates(rows: list[dict], device: str, records: list[dict], *, probe_seconds: float, data_dir: str
          ) -> dict[tuple, tuple[float, str] | None]:
    """(depth, batch, precision) -> (images/s, source) for every kind of run in `rows` (None: unknown)."""
    out: dict[tuple, tuple[float, str] | None] = {}
    data = (Path(data_dir) / "cifar-10-batches-py" / "data_batch_1").is_file()
    for key in sorted({(r["depth"], r["batch_size"], r["precision"]) for r in rows}):
        depth, batch, precision = key
        found = throughput.from_records(records, device, precision, depth, batch)
        if found is None and data and probe_seconds > 0:
            print(f"plan: no bench record for ResNet-{depth}, batch {batch}, {precision} on {device}: probing "
                  f"for {probe_seconds:g} s", file=sys.stderr, flush=True)
            found = throughput.probe(depth, batch, precision, data_dir, probe_seconds)
        out[key] = found
    return out


def explain_train(overrides: list[str], bench: Path, python: str = sys.executable) -> int:
    """`make train` without ARGS: what `python -m superconv.train` would run and its cost; trains nothing."""
    proc = subprocess.run([python, "-m", "superconv.train", *overrides, "dry_run=true", "train.progress=false"],
                          capture_output=True, text=True)
    rows = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not rows:
        print(proc.stderr.strip(), file=sys.stderr)
        return proc.returncode or 1
    device = throughput.this_device()
    r = rows[0] | {"precision": throughput.resolve_precision(rows[0]["precision"], device)}
    found = throughput.from_records(throughput.read_records(bench), device, r["precision"], r["depth"],
                                    r["batch_size"])
    print(f"`python -m superconv.train` with no overrides is the paper's Fig 1a CLR run: ResNet-{r['depth']}, "
          f"batch {r['batch_size']}, {r['iterations']:,} iterations = {r['images']:,} training images, "
          f"{r['dataset']}, run directory {r['run_dir']}.")
    if found:
        print(f"Projected on this machine ({device}, {found[0]:,.0f} img/s from {found[1]}): "
              f"{throughput.seconds(r, found[0]) / 3600:.1f} h.")
    else:
        cpu, gpu = CPU_IMAGES_PER_S.get(r["depth"]), H200_IMAGES_PER_S.get(r["depth"])
        print(f"No bench record for this machine ({device}); measured elsewhere: ~{r['images'] / cpu / 3600:.0f} h "
              f"on a 2-core CPU ({cpu:.0f} img/s), ~{r['images'] / gpu / 60:.0f} min on one NVIDIA H200 "
              f"({gpu:,.0f} img/s).")
    print("Name what to run, e.g.:\n"
          "  make train ARGS=\"experiment=fig1a protocol=clr\"        # that run, explicitly (a GPU job)\n"
          "  make train ARGS=\"model=resnet20 data.fraction=0.1 train.iterations=200\"   # minutes on a CPU\n"
          "  make smoke                                             # seconds, synthetic data\n"
          "  make plan SCALE=mini                                   # the mini study and its cost")
    return 2


def to_go(row: dict) -> dict:
    """The part of a run still to train: an interrupted run resumes from its checkpoint's iteration (`reached`),
    so its images and evaluations before it are not counted again."""
    reached = row.get("reached") or 0
    if not reached:
        return row
    return {**row, "images": row["images_to_go"], "iterations": row["iterations"] - reached}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.plan", description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="mini", choices=SCALES)
    p.add_argument("--json", action="store_true", help="one JSON line per run instead of the table")
    p.add_argument("--bench", default="results/bench/bench.jsonl", help="make bench's records")
    p.add_argument("--probe-seconds", type=float, default=20.0,
                   help="seconds per probe where no bench record matches (0: never probe)")
    p.add_argument("--data-dir", default="data", help="the data the probe trains on")
    p.add_argument("--train", action="store_true",
                   help="what `python -m superconv.train OVERRIDES` would run and its cost (make train without ARGS)")
    p.add_argument("overrides", nargs="*", help="extra overrides for every run (e.g. paths.results_dir=...)")
    args = p.parse_args(argv)
    if args.train:
        return explain_train(args.overrides, Path(args.bench))
    rows = plan(args.scale, args.overrides)
    device = throughput.this_device()
    for r in rows:
        r["precision"] = throughput.resolve_precision(r["precision"], device)
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    todo = [r for r in rows if r["status"] != "done"]
    speed = rates(todo, device, throughput.read_records(Path(args.bench)), probe_seconds=args.probe_seconds,
                  data_dir=args.data_dir)

    def hours(rs: list[dict]) -> float | None:
        known = [speed.get((r["depth"], r["batch_size"], r["precision"])) for r in rs]
        if any(k is None for k in known):
            return None
        return sum(throughput.seconds(to_go(r), k[0]) for r, k in zip(rs, known)) / 3600

    def fmt(h: float | None) -> str:
        return "?" if h is None else f"{h:.2f}"

    print(f"{'status':8} {'images':>11} {'h':>6}  run")
    experiment = None
    for r in rows:
        if r["experiment"] != experiment:
            experiment = r["experiment"]
            mine = [x for x in todo if x["experiment"] == experiment]
            print(f"\n{experiment} (claim {r['claim'] or '-'}; {fmt(hours(mine))} h to go): {r['why']}")
        h = None if r["status"] == "done" else hours([r])
        at = f"  (at iteration {r['reached']:,} of {r['iterations']:,})" if r["status"] != "done" and r.get("reached") \
            else ""
        print(f"{r['status']:8} {r['images']:>11,} {fmt(h):>6}  {r['run_dir']}{at}")
    print(f"\nthis machine: {device}; training images/s used:")
    for (depth, batch, precision), found in speed.items():
        what = f"{found[0]:,.0f} img/s ({found[1]})" if found else "unknown: run `make bench` or `make data`"
        print(f"  ResNet-{depth}, batch {batch}, {precision}: {what}")
    images = sum(to_go(r)["images"] for r in todo)
    total = hours(todo)
    running = sum(r["status"] == "running" for r in rows)
    print(f"\n{len(rows)} runs at scale {args.scale}: {len(rows) - len(todo)} done, "
          + (f"{running} running now, " if running else "") + f"{len(todo) - running} more to run; "
          f"{images:,} training images to go; projected {fmt(total)} h on this machine, one run at a time, "
          f"evaluations included (~{images * AUTHOR_GPU_HOURS_PER_IMAGE:.0f} GPU-hours at the author's 2017 "
          f"rate, 8 GTX Titan Black)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
