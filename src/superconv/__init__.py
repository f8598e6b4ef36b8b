"""superconv: a reproduction of Smith & Topin, "Super-Convergence" (arXiv 1708.07120) on CIFAR ResNets.

The Python API, for your own model, optimizer and data (docs/API.md):

* ``range_test(model, optimizer, train_loader, ...)``: the LR range test, Smith's accuracy mode with the
  project's super-convergence verdict and suggested bounds, or fastai's lr_find (superconv.api);
* ``CLR``, ``OneCycle``, ``FastaiOneCycle``, ``RangeTestLR``, ``ScheduleLR``: the project's schedules as torch
  LR schedulers (superconv.schedulers);
* ``LREstimate(params).update(lr)``: the paper's Hessian-free LR estimate after each step (superconv.api).

They are imported on first use, so that ``import superconv`` stays light (no torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_API = {"range_test": "api", "RangeTestResult": "api", "LREstimate": "api",
        "ScheduleLR": "schedulers", "CLR": "schedulers", "OneCycle": "schedulers", "FastaiOneCycle": "schedulers",
        "RangeTestLR": "schedulers"}
__all__ = ["__version__", *_API]

if TYPE_CHECKING:
    from .api import LREstimate, RangeTestResult, range_test
    from .schedulers import CLR, FastaiOneCycle, OneCycle, RangeTestLR, ScheduleLR


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
