"""Rebuild every figure and the report from the results store: `python -m paper_figures` (`make figures`).

    python -m paper_figures                                   # results/ -> paper_figures/figures/, REPORT.md
    python -m paper_figures --reference ../shared/reference/author_logs   # with the author's curves
    python -m paper_figures --results tests/fixtures/results --out /tmp/figs --report /tmp/figs/REPORT.md

Trains nothing and reads nothing but the results directory (and the optional reference folder of the
author's Caffe logs). Takes seconds. A figure whose inputs did not change is rewritten byte for byte
identical (its file is not even touched).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import curve_figures, range_figures, schedule_figure, style
from .caffe_log import read_reference_dir
from .load import load_runs, load_summaries
from .report import build_report

FIGURE_MODULES = (curve_figures, range_figures, schedule_figure)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m paper_figures", description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results", help="results directory (default: results)")
    p.add_argument("--out", default="paper_figures/figures", help="figure directory")
    p.add_argument("--report", default="paper_figures/REPORT.md", help="report path")
    p.add_argument("--reference", default=None,
                   help="folder of the author's Caffe logs (the official repository's Results/)")
    args = p.parse_args(argv)

    reference = None
    if args.reference:
        try:
            reference = read_reference_dir(args.reference)
        except (FileNotFoundError, ValueError) as e:
            print(f"paper_figures: error: {e}", file=sys.stderr)
            return 2
    results = Path(args.results)
    runs, summaries = load_runs(results), load_summaries(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    style.setup()
    written: list[Path] = []
    for module in FIGURE_MODULES:
        written += module.draw(runs, summaries, out, reference)
    command = " ".join(["python -m paper_figures", *(argv if argv is not None else sys.argv[1:])])
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    build_report(summaries, reference, sorted(p for p in written if p.suffix == ".png"), report, command, runs)
    print(f"paper_figures: {len(written)} files in {out}, report {report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
