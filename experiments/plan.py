"""`python -m experiments.plan --scale mini` (`make plan`): the runs a scale would launch, how many are
done, and what the rest costs, before anything is launched.

Each suite command is run with `dry_run=true`: Hydra expands the sweep exactly as it would for real and
every job prints its directory, status and images instead of training.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from .suites import AUTHOR_GPU_HOURS_PER_IMAGE, CPU_IMAGES_PER_S, H200_IMAGES_PER_S, command, suite


def plan(scale: str, extra: list[str] | None = None, python: str = sys.executable) -> list[dict]:
    """One dict per run (see superconv.cli.plan_line), with its `command`."""
    rows = []
    for job in suite(scale):
        cmd = [*command(job, scale, python), *(extra or []), "dry_run=true", "train.progress=false"]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"plan: {' '.join(cmd[1:])} failed: {out.stderr.strip().splitlines()[-1:]}")
        for line in out.stdout.splitlines():
            if line.startswith("{"):
                rows.append(json.loads(line) | {"command": " ".join(["python", *cmd[1:-2]])})
    return rows


def cpu_seconds(row: dict) -> float:
    return row["images"] / CPU_IMAGES_PER_S.get(row["depth"], 480.0 * 20 / row["depth"])


def h200_seconds(row: dict) -> float:
    return row["images"] / H200_IMAGES_PER_S.get(row["depth"], 32_000.0 * 56 / row["depth"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.plan", description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="mini", choices=("smoke", "mini", "paper"))
    p.add_argument("--json", action="store_true", help="one JSON line per run instead of the table")
    p.add_argument("overrides", nargs="*", help="extra overrides for every run (e.g. paths.results_dir=...)")
    args = p.parse_args(argv)
    rows = plan(args.scale, args.overrides)
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    todo = [r for r in rows if r["status"] != "done"]
    print(f"{'status':8} {'images':>11} {'cpu h':>6}  run")
    for r in rows:
        print(f"{r['status']:8} {r['images']:>11,} {cpu_seconds(r) / 3600:6.2f}  {r['run_dir']}")
    images = sum(r["images"] for r in todo)
    print(f"\n{len(rows)} runs at scale {args.scale}: {len(rows) - len(todo)} done, {len(todo)} to run; "
          f"{images:,} training images to go, ~{sum(cpu_seconds(r) for r in todo) / 3600:.1f} h on the "
          f"2-core CPU (training only), ~{sum(h200_seconds(r) for r in todo) / 3600:.1f} h on one H200 "
          f"(bf16, measured), ~{images * AUTHOR_GPU_HOURS_PER_IMAGE:.0f} GPU-hours at the author's 2017 rate "
          f"(8 GTX Titan Black)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
