"""Rebuild every figure and the report from the results store: `python -m paper_figures` (`make figures`).

    python -m paper_figures                                   # results/ -> paper_figures/figures/, REPORT.md
    python -m paper_figures --reference super-convergence/Results   # the author's curves from his raw logs
    python -m paper_figures --results tests/fixtures/results --out /tmp/figs --report /tmp/figs/REPORT.md
    python -m paper_figures --readme /tmp/README.md           # the results table into another README

Trains nothing and reads nothing but the results directory and the author's runs: by default the table
committed in paper_figures/author_runs/ (derived from his public Caffe logs: paper_figures.author_table),
with --reference a folder of the logs themselves, with --no-author none. Takes seconds. A figure whose inputs did not change is rewritten byte for byte
identical (its file is not even touched).

README.md's results table (the block between its `<!-- results-table:begin ... -->` and
`<!-- results-table:end -->` markers, `paper_figures.readme_table`) is rewritten from the same verdicts as the
report. By default only when --results is this repository's results/, the store the README describes: the
figures of another store (the test fixtures, `make reproduce SCALE=smoke`'s outputs/smoke) leave the README
alone unless --readme names one. A README without the markers is an error (exit 2) and is not touched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import curve_figures, frontier, lr_estimate_figure, range_figures, schedule_figure, style
from .author_table import load_author_runs
from .caffe_log import read_reference_dir
from .load import load_runs, load_summaries
from .readme_table import ReadmeError, check_readme, update_readme
from .report import build_report

FIGURE_MODULES = (frontier, curve_figures, range_figures, schedule_figure, lr_estimate_figure)
ROOT = Path(__file__).resolve().parents[1]  # the repository: README.md and results/ are here


def _readme(args: argparse.Namespace) -> Path | None:
    """The README whose results table to rewrite: --readme; else README.md next to paper_figures/ when the
    results are this repository's results/; None with --no-readme or another results folder."""
    if args.no_readme:
        return None
    if args.readme is not None:
        return Path(args.readme)
    return ROOT / "README.md" if Path(args.results).resolve() == ROOT / "results" else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m paper_figures", description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results", help="results directory (default: results)")
    p.add_argument("--out", default="paper_figures/figures", help="figure directory")
    p.add_argument("--report", default="paper_figures/REPORT.md", help="report path")
    p.add_argument("--reference", default=None,
                   help="folder of the author's Caffe logs (the official repository's Results/); default: the "
                        "table derived from them in paper_figures/author_runs/")
    p.add_argument("--no-author", action="store_true", help="draw and judge without the author's runs")
    p.add_argument("--readme", default=None,
                   help="README whose results-table block to rewrite (default: README.md at the repository root, "
                        "when --results is the repository's results/; other results folders rewrite none)")
    p.add_argument("--no-readme", action="store_true", help="leave every README alone")
    args = p.parse_args(argv)

    reference = None
    if not args.no_author:
        try:
            reference = read_reference_dir(args.reference) if args.reference else load_author_runs()
        except (FileNotFoundError, ValueError) as e:
            print(f"paper_figures: error: {e}", file=sys.stderr)
            return 2
    readme = _readme(args)
    if readme is not None:
        try:
            check_readme(readme)  # fail before drawing anything; it is read again right before it is written
        except (OSError, ReadmeError) as e:
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
    if readme is not None:
        try:
            changed = update_readme(readme, summaries, runs, reference, report)
        except (OSError, ReadmeError) as e:
            print(f"paper_figures: error: {e}", file=sys.stderr)
            return 2
    print(f"paper_figures: {len(written)} files in {out}, report {report}"
          + ("" if readme is None else f", {readme} results table {'rewritten' if changed else 'unchanged'}"),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
