"""`python -m experiments.reproduce --scale mini` (`make reproduce SCALE=mini`): every run of a scale, then
the per-experiment tables, the figures and the report.

Idempotent: finished runs are skipped (their DONE marker), interrupted ones resume from their checkpoint,
so a second call trains nothing and a call after a kill completes only what is missing. The smoke scale
writes under outputs/smoke/ (never the committed results/ or figures).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from .aggregate import aggregate
from .suites import command, suite

OUTPUTS = {  # scale -> (results dir, figures dir, report)
    "smoke": ("outputs/smoke", "outputs/smoke/figures", "outputs/smoke/REPORT.md"),
    "mini": ("results", "paper_figures/figures", "paper_figures/REPORT.md"),
    "frontier": ("results", "paper_figures/figures", "paper_figures/REPORT.md"),
    "paper": ("results", "paper_figures/figures", "paper_figures/REPORT.md"),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.reproduce", description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="smoke", choices=tuple(OUTPUTS))
    p.add_argument("--reference", default=None, help="the author's Caffe logs, for the figures")
    p.add_argument("overrides", nargs="*", help="extra overrides for every run (e.g. launcher=joblib)")
    args = p.parse_args(argv)
    results, figures, report = OUTPUTS[args.scale]
    t0 = time.time()
    for job in suite(args.scale):
        cmd = [*command(job, args.scale, sys.executable), *args.overrides]
        print(f"reproduce: {' '.join(['python', *cmd[1:]])}", file=sys.stderr, flush=True)
        rc = subprocess.run(cmd).returncode
        if rc != 0:
            print(f"reproduce: stopped: {job.experiment} exited with {rc}; rerun to continue", file=sys.stderr)
            return rc
    aggregate(Path(results))
    fig = [sys.executable, "-m", "paper_figures", "--results", results, "--out", figures, "--report", report]
    if args.reference:
        fig += ["--reference", args.reference]
    rc = subprocess.run(fig).returncode
    print(f"reproduce: scale {args.scale} done in {time.time() - t0:.0f} s; results in {results}/, "
          f"figures in {figures}/, report {report}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
