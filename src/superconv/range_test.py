"""LR range test: `python -m superconv.range_test [overrides]`, the entry for range tests (and lr_find).

A thin alias of `python -m superconv.train` for the `range_test` job: it composes conf/range_test.yaml (the
training config with the LR rising over the run), so range-test commands in the README, the experiment
configs and stored results keep working. What it runs: superconv.modes.range_test.
"""

from __future__ import annotations

from . import cli
from .modes.range_test import run


def main() -> None:
    cli.main("range_test", "superconv.range_test", run, default_experiment="adhoc_range_test")


if __name__ == "__main__":
    main()
