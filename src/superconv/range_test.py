"""LR range test: `python -m superconv.range_test [overrides]`, the entry for range tests (and lr_find).

A thin alias of `python -m superconv.train` for the `range_test` job: it composes conf/range_test.yaml (the
training config with the LR rising over the run), so range-test commands in the README, the experiment
configs and stored results keep working. What it runs: superconv.modes.range_test.

`superconv.range_test` is also the Python API's function (superconv.api.range_test). Importing this module
binds the package attribute of that name to the module instead (Python does so for every submodule), so the
module is callable and calls the function: `superconv.range_test(model, ...)` works either way.
"""

from __future__ import annotations

import sys
import types

from . import cli
from .modes.range_test import run


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from .api import range_test

        return range_test(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule


def main() -> None:
    cli.main("range_test", "superconv.range_test", run, default_experiment="adhoc_range_test")


if __name__ == "__main__":
    main()
