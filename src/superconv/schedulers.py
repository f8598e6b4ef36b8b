"""The project's schedules (superconv.schedules) as PyTorch LR schedulers, for any optimizer.

    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = superconv.OneCycle(opt, max_lr=3.0, total_steps=len(loader) * epochs)
    for x, y in batches:           # one optimizer step per batch
        loss_fn(model(x), y).backward(); opt.step(); opt.zero_grad()
        sched.step()               # after the optimizer step, as every torch scheduler

Units: LRs are per optimizer step (what ``group["lr"]`` holds), positions are fractions of ``total_steps``
(optimizer steps, i.e. iterations; with gradient accumulation, one step per accumulated batch). The value
shown in ``group["lr"]`` before the i-th ``optimizer.step()`` (0-based) is ``Schedule.lr(i)``, the value the
project's training loop uses at iteration i, bit for bit: the scheduler evaluates the same function. Where
torch has the same schedule the values agree to float precision (tests/test_schedules.py):

* :class:`CLR` (the paper's Fig 1a triangle) == ``CyclicLR(base_lr=min_lr, max_lr, step_size_up=peak_at *
  total_steps)`` over the run (one cycle: the triangle ends on the last step);
* :class:`OneCycle` (1cycle with annihilation, arXiv 1803.09820; the defaults of conf/schedule/one_cycle.yaml)
  == ``OneCycleLR(three_phase=True, anneal_strategy="linear")``; with ``three_phase=False, anneal="cos"`` it
  is torch's default OneCycleLR;
* :class:`FastaiOneCycle` (fastai v2 ``fit_one_cycle``: two cosine phases, pct_start 0.25, final LR
  max_lr / 1e5) == ``OneCycleLR(pct_start=0.25, div_factor=25, final_div_factor=4000)``; fastai's own
  indexing differs from torch's by at most one step (superconv.schedules);
* :class:`RangeTestLR`: the LR range test's linear or exponential rise.

Several param groups: every group gets the schedule's LR times its ``lr_scale`` (1 when absent, the
convention of superconv.optim), not a per-group max_lr. Cyclical momentum (``cycle_momentum=True``) sets
``momentum`` in every group, or ``betas[0]`` for Adam-like optimizers, as torch's schedulers do; an optimizer
with neither is refused. Without it, momentum is left as the optimizer has it.

After the last step, one more ``sched.step()`` (the one that follows the last ``optimizer.step()``) keeps the
last value; stepping past it raises ``ValueError``, as OneCycleLR does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from .schedules import Schedule, build_schedule

__all__ = ["ScheduleLR", "CLR", "OneCycle", "FastaiOneCycle", "RangeTestLR", "build"]


def _api_message(e: ValueError, names: Mapping[str, str]) -> str:
    """build_schedule names config keys (schedule.max_lr, train.iterations); the API's arguments are max_lr,
    total_steps (start_lr, end_lr for the range test)."""
    msg = str(e).replace("train.iterations", "total_steps")
    for key, name in names.items():
        msg = msg.replace(f"schedule.{key}", name)
    return msg.replace("schedule.", "")


def build(cfg: Mapping[str, Any], total_steps: int, names: Mapping[str, str] | None = None) -> Schedule:
    """``superconv.schedules.build_schedule`` with the API's argument names in its ValueError messages
    (``names``: config key -> argument name, where they differ).

    Momentum is only the schedule's when it cycles; a constant momentum stays the optimizer's own, so the
    placeholder 0.0 is never applied."""
    try:
        return build_schedule(cfg, total_steps, 0.0)
    except ValueError as e:
        raise ValueError(_api_message(e, names or {})) from None


class ScheduleLR(LRScheduler):
    """Any :class:`superconv.schedules.Schedule` as a torch LR scheduler (see the module docstring).

    ``schedule.lr(i)`` x the group's ``lr_scale`` is the LR of optimizer step i; with the schedule's
    ``cycle_momentum``, ``schedule.momentum(i)`` its momentum (or beta1)."""

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Schedule, last_epoch: int = -1):
        self.schedule = schedule
        self.total_steps = schedule.total
        self.cycle_momentum = bool(schedule.params.get("cycle_momentum"))
        if self.cycle_momentum:
            for group in optimizer.param_groups:
                if "momentum" not in group and "betas" not in group:
                    raise ValueError(f"cycle_momentum=True needs an optimizer with momentum or betas in its param "
                                     f"groups ({type(optimizer).__name__} has neither); pass cycle_momentum=False")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        it = self.last_epoch
        if it > self.total_steps:
            raise ValueError(f"stepped {it} times: the {self.schedule.name} schedule has total_steps="
                             f"{self.total_steps} (one scheduler step per optimizer step)")
        it = min(it, self.total_steps - 1)  # the step after the last optimizer step keeps the last value
        lr = self.schedule.lr(it)
        if self.cycle_momentum:
            momentum = self.schedule.momentum(it)
            for group in self.optimizer.param_groups:
                if "betas" in group:
                    group["betas"] = (momentum, *group["betas"][1:])
                else:
                    group["momentum"] = momentum
        return [lr * group.get("lr_scale", 1.0) for group in self.optimizer.param_groups]


class CLR(ScheduleLR):
    """The paper's CLR run (Fig 1a): LR linear ``min_lr -> max_lr`` at ``peak_at * total_steps`` -> ``min_lr`` at
    the end (one triangle; the paper: 0.1 -> 3 -> 0.1 over 10k steps). ``cycle_momentum``: momentum
    ``max_momentum -> base_momentum -> max_momentum``, inverse to the LR (the paper's runs: off, constant 0.9).
    Equals torch ``CyclicLR(base_lr=min_lr, max_lr, step_size_up=peak_at * total_steps)`` over the run."""

    def __init__(self, optimizer: torch.optim.Optimizer, min_lr: float, max_lr: float, total_steps: int, *,
                 peak_at: float = 0.5, cycle_momentum: bool = False, base_momentum: float = 0.85,
                 max_momentum: float = 0.95):
        super().__init__(optimizer, build({"name": "clr", "min_lr": min_lr, "max_lr": max_lr, "peak_at": peak_at,
                                           "cycle_momentum": cycle_momentum, "base_momentum": base_momentum,
                                           "max_momentum": max_momentum}, total_steps))


class OneCycle(ScheduleLR):
    """Smith's 1cycle with annihilation (arXiv 1803.09820): LR linear ``min_lr -> max_lr`` over ``pct_start`` of
    the steps, back to ``min_lr`` over the next ``pct_start``, then down to ``min_lr / final_div`` (annihilation);
    ``min_lr`` defaults to ``max_lr / div``. Cyclical momentum ``max_momentum -> base_momentum -> max_momentum``
    by default. Equals torch ``OneCycleLR(max_lr, total_steps, pct_start, anneal_strategy=anneal,
    div_factor=div, final_div_factor=final_div, three_phase)``; ``three_phase=False, anneal="cos"`` is torch's
    two-phase default."""

    def __init__(self, optimizer: torch.optim.Optimizer, max_lr: float, total_steps: int, *,
                 min_lr: float | None = None, div: float = 25.0, final_div: float = 1e4, pct_start: float = 0.3,
                 three_phase: bool = True, anneal: str = "linear", cycle_momentum: bool = True,
                 base_momentum: float = 0.85, max_momentum: float = 0.95):
        super().__init__(optimizer, build({"name": "one_cycle", "max_lr": max_lr, "min_lr": min_lr, "div": div,
                                           "final_div": final_div, "pct_start": pct_start,
                                           "three_phase": three_phase, "anneal": anneal,
                                           "cycle_momentum": cycle_momentum, "base_momentum": base_momentum,
                                           "max_momentum": max_momentum}, total_steps))


class FastaiOneCycle(ScheduleLR):
    """fastai v2 ``fit_one_cycle``: cosine ``max_lr / div -> max_lr`` over ``pct_start`` (0.25) of the steps,
    cosine down to ``max_lr / 1e5`` (``final_div`` 4000 in torch's convention: of the start LR), momentum
    0.95 -> 0.85 -> 0.95. Equals torch ``OneCycleLR(pct_start=0.25, div_factor=25, final_div_factor=4000)``."""

    def __init__(self, optimizer: torch.optim.Optimizer, max_lr: float, total_steps: int, *,
                 div: float = 25.0, final_div: float = 1e5 / 25.0, pct_start: float = 0.25,
                 cycle_momentum: bool = True, base_momentum: float = 0.85, max_momentum: float = 0.95):
        super().__init__(optimizer, build({"name": "fastai", "max_lr": max_lr, "div": div, "final_div": final_div,
                                           "pct_start": pct_start, "cycle_momentum": cycle_momentum,
                                           "base_momentum": base_momentum, "max_momentum": max_momentum},
                                          total_steps))


class RangeTestLR(ScheduleLR):
    """The LR range test's rise over ``total_steps``: ``"linear"`` (Smith: ``start + (end - start) i / (total - 1)``)
    or ``"exp"`` (fastai's lr_find: ``start (end / start) ** (i / (total - 1))``, start > 0); both endpoints
    are hit exactly. Momentum is left as the optimizer has it."""

    def __init__(self, optimizer: torch.optim.Optimizer, start_lr: float, end_lr: float, total_steps: int,
                 mode: str = "linear"):
        super().__init__(optimizer, build({"name": "range_test", "min_lr": start_lr, "max_lr": end_lr,
                                           "mode": mode}, total_steps, {"min_lr": "start_lr", "max_lr": "end_lr"}))
