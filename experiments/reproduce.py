"""`python -m experiments.reproduce --scale mini` (`make reproduce SCALE=mini`): every run of a scale, then
the per-experiment tables, the figures and the report.

Idempotent: finished runs are skipped (their DONE marker), interrupted ones resume from their checkpoint,
so a second call trains nothing and a call after a kill completes only what is missing. The smoke scale
writes under outputs/smoke/ (never the committed results/ or figures). `--only fig6a_fraction,fig9a_batch`
runs those experiments of the suite alone (`make sweep-fraction` etc. are `make reproduce ONLY=...`).

Exit 0 only when every run ran. An experiment whose data is missing (superconv.train's exit 3: its runs
were skipped) does not stop the others; the command then ends with exit 3 and lists those experiments.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from superconv.cli import EXIT_SKIPPED

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
    p.add_argument("--only", default=None,
                   help="comma-separated experiments of the suite to run alone (default: the whole suite)")
    p.add_argument("overrides", nargs="*", help="extra overrides for every run (e.g. launcher=joblib)")
    args = p.parse_args(argv)
    results, figures, report = OUTPUTS[args.scale]
    jobs = suite(args.scale)
    if args.only:
        wanted = [e.strip() for e in args.only.split(",") if e.strip()]
        unknown = [e for e in wanted if e not in {j.experiment for j in jobs}]
        if unknown:
            print(f"reproduce: error: ONLY={','.join(unknown)}: not in the {args.scale} suite "
                  f"({', '.join(j.experiment for j in jobs)})", file=sys.stderr)
            return 2
        jobs = tuple(j for j in jobs if j.experiment in wanted)
    t0 = time.time()
    skipped = []
    for job in jobs:
        cmd = [*command(job, args.scale, sys.executable), *args.overrides]
        print(f"reproduce: {' '.join(['python', *cmd[1:]])}", file=sys.stderr, flush=True)
        rc = subprocess.run(cmd).returncode
        if rc == EXIT_SKIPPED:
            skipped.append(job.experiment)
            continue
        if rc != 0:
            print(f"reproduce: stopped: {job.experiment} exited with {rc}; rerun to continue", file=sys.stderr)
            return rc
    aggregate(Path(results))
    fig = [sys.executable, "-m", "paper_figures"]
    if (results, figures, report) != OUTPUTS["mini"]:  # the defaults: the report then names the command as make
        fig += ["--results", results, "--out", figures, "--report", report]  # figures does, and stays unchanged
    if args.reference:
        fig += ["--reference", args.reference]
    rc = subprocess.run(fig).returncode
    print(f"reproduce: scale {args.scale} done in {time.time() - t0:.0f} s; results in {results}/, "
          f"figures in {figures}/, report {report}", file=sys.stderr)
    if skipped:
        print(f"reproduce: exit {EXIT_SKIPPED}: runs of {', '.join(skipped)} were skipped, their data missing "
              "(make data; see the lines above)", file=sys.stderr)
        return rc or EXIT_SKIPPED
    return rc


if __name__ == "__main__":
    sys.exit(main())
