"""Learning-rate and momentum schedules as pure functions of the iteration index.

Conventions (the training loop relies on these):

* ``it`` is 0-based: ``Schedule.lr(it)`` is the LR used for the it-th optimizer step, ``it`` in
  ``[0, total)``. This is what a PyTorch scheduler shows in ``optimizer.param_groups[0]["lr"]``
  *before* the it-th ``optimizer.step()`` when ``scheduler.step()`` is called once per batch.
  Asking for ``it`` outside ``[0, total)`` raises ``ValueError`` (like OneCycleLR's "Tried to step").
* Positions in the run (peak, phase ends, milestones) are FRACTIONS of ``total``, so a run is scaled
  down by changing ``train.iterations`` alone; the schedule config is untouched.
* Where a library defines the schedule, the functions reproduce it to float precision (the tests
  compare every step against torch):

  - ``clr``        == ``torch.optim.lr_scheduler.CyclicLR(base_lr, max_lr, step_size_up=peak_at*total)``
                      (triangular, ``cycle_momentum`` as torch's) -- the paper's Fig 1a run.
  - ``one_cycle``  == ``OneCycleLR(max_lr, total_steps=total, pct_start, anneal_strategy,
                      div_factor, final_div_factor, three_phase)`` including its ``-1``/``-2`` phase-end
                      conventions and its momentum cycling.
  - ``fastai``     == the ``one_cycle`` function with fastai v2 ``fit_one_cycle`` defaults (two-phase cos).
                      fastai indexes the position as ``it/total`` and puts the phase boundary at
                      ``pct_start*total``; torch puts it one step earlier and reaches the final LR on
                      the last step. We keep torch's indexing: values differ from fastai's by at most
                      one step's worth of change.
  - ``multistep``  == ``MultiStepLR(milestones=[round(f*total) for f in milestones], gamma)``; the LR
                      drops AT the milestone iteration. Rounding is half-up (floor(x + 0.5)).
  - ``constant``   LR = max_lr.
  - ``range_test`` linear ``min + (max-min)*it/(total-1)`` or exponential ``min*(max/min)**(it/(total-1))``:
                      both endpoints are hit exactly (lr(0) = min_lr, lr(total-1) = max_lr), which
                      needs total >= 2.

* Momentum: constant (``optim.momentum``) unless ``schedule.cycle_momentum`` is true, in which case it
  moves inversely to the LR between ``max_momentum`` and ``base_momentum`` (clr, one_cycle, fastai only).

Nothing here imports torch or Hydra; ``cfg`` is any ``Mapping`` (a plain dict or an OmegaConf node).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NAMES", "Schedule", "build_schedule"]

NAMES = ("clr", "one_cycle", "fastai", "multistep", "constant", "range_test")

# Defaults used when a key is missing from the config, with their source. ``max_lr`` has no default
# for one_cycle/fastai/constant (torch's OneCycleLR has none either): it must be given.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "clr": {
        "min_lr": 0.1,  # Fig 1a / x.sh: base_lr 0.1
        "max_lr": 3.0,  # Fig 1a: 0.1 -> 3.0 -> 0.1
        "peak_at": 0.5,  # stepsize 5k of a 10k run (Table 1: run = 2 x stepsize)
    },
    "one_cycle": {
        "min_lr": None,  # None: max_lr / div (torch's initial_lr)
        "div": 25.0,  # torch OneCycleLR div_factor=25
        "final_div": 1e4,  # torch OneCycleLR final_div_factor=1e4: final LR = start LR / 1e4
        "pct_start": 0.3,  # torch OneCycleLR pct_start=0.3
        "three_phase": False,  # torch OneCycleLR three_phase=False (True + linear = the v3 1cycle)
        "anneal": "cos",  # torch OneCycleLR anneal_strategy='cos'
    },
    "fastai": {
        "min_lr": None,  # None: max_lr / div
        "div": 25.0,  # fastai v2 fit_one_cycle div=25
        # fastai's div_final=1e5 divides max_lr (final = max_lr/1e5); torch's final_div_factor divides
        # the start LR (final = (max_lr/div)/final_div). Same final LR: final_div = 1e5 / 25 = 4000.
        "final_div": 1e5 / 25.0,
        "pct_start": 0.25,  # fastai v2 fit_one_cycle pct_start=0.25
        "three_phase": False,  # fastai: cosine up, cosine down (combined_cos)
        "anneal": "cos",
    },
    "multistep": {
        "max_lr": 0.35,  # PC-LR baseline: LR 0.35 (x.sh / Fig 1a)
        "milestones": (0.625, 0.875),  # x0.1 at 50k and 70k of 80k
        "gamma": 0.1,  # Caffe "multistep", gamma 0.1
    },
    "constant": {},
    "range_test": {
        "min_lr": 0.0,  # Fig 2b: LR 0 -> 3 linearly over the run
        "max_lr": 3.0,
        "mode": "linear",  # fastai lr_find uses "exp" (1e-7 -> 10)
    },
}
# Cyclical momentum, when schedule.cycle_momentum: 0.95 -> 0.85 -> 0.95 (arXiv 1803.09820 §4.3;
# torch OneCycleLR max_momentum=0.95, base_momentum=0.85; fastai moms=(0.95, 0.85, 0.95)).
_MOMENTUM_DEFAULTS = {"max_momentum": 0.95, "base_momentum": 0.85}
_CYCLIC = ("clr", "one_cycle", "fastai")


# ----------------------------------------------------------------------------------------- Schedule
@dataclass(frozen=True)
class Schedule:
    """LR and momentum as functions of the 0-based iteration ``it`` in ``[0, total)``.

    ``params`` holds the resolved settings (defaults filled in) for logging.
    """

    name: str
    total: int
    lr_fn: Callable[[int], float] = field(repr=False)
    momentum_fn: Callable[[int], float] = field(repr=False)
    params: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def _check(self, it: int) -> int:
        it = operator.index(it)
        if not 0 <= it < self.total:
            raise ValueError(f"iteration {it} outside [0, {self.total}) of the {self.name} schedule")
        return it

    def lr(self, it: int) -> float:
        return self.lr_fn(self._check(it))

    def momentum(self, it: int) -> float:
        return self.momentum_fn(self._check(it))


# ------------------------------------------------------------------------- the schedule functions
# Module-level functions bound with functools.partial, so a Schedule pickles.
def _const(it: int, *, value: float) -> float:
    return value


def _triangle(it: int, *, low: float, high: float, stepsize: float) -> float:
    # Linear triangle low -> high at it == stepsize -> low at 2*stepsize, then flat at low.
    # Same value as CyclicLR(mode="triangular") over its first cycle (Caffe's "triangular" policy).
    return low + (high - low) * max(0.0, 1.0 - abs(it / stepsize - 1.0))


def _anneal_linear(start: float, end: float, pct: float) -> float:
    return (end - start) * pct + start  # as torch OneCycleLR._anneal_linear


def _anneal_cos(start: float, end: float, pct: float) -> float:
    cos_out = math.cos(math.pi * pct) + 1  # as torch OneCycleLR._anneal_cos
    return end + (start - end) / 2.0 * cos_out


_ANNEAL = {"linear": _anneal_linear, "cos": _anneal_cos}


def _phased(it: int, *, phases: tuple[tuple[float, float, float], ...], anneal: str) -> float:
    """torch OneCycleLR.get_lr: ``phases`` are ``(end_step, start_value, end_value)``.

    A step belongs to the first phase whose end_step it does not exceed (the last phase takes the
    rest); the position in a phase is ``(it - start_step) / (end_step - start_step)``.
    """
    func = _ANNEAL[anneal]
    start_step: float = 0
    for i, (end_step, start_value, end_value) in enumerate(phases):
        if it <= end_step or i == len(phases) - 1:
            span = end_step - start_step
            # torch divides by zero here (a phase of zero length, e.g. pct_start*total == 1 with
            # three_phase); we return the phase's end value instead.
            pct = (it - start_step) / span if span else 1.0
            return func(start_value, end_value, pct)
        start_step = end_step
    raise AssertionError("unreachable")


def _multistep(it: int, *, base: float, steps: tuple[int, ...], gamma: float) -> float:
    # Multiply once per passed milestone, as MultiStepLR does step by step (bitwise-equal values).
    lr = base
    for m in steps:
        if it >= m:
            lr *= gamma
    return lr


def _range_linear(it: int, *, low: float, high: float, last: int) -> float:
    return low + (high - low) * (it / last)


def _range_exp(it: int, *, low: float, high: float, last: int) -> float:
    return low * (high / low) ** (it / last)


# ----------------------------------------------------------------------------------- validation
def _bad(key: str, allowed: str, value: Any) -> ValueError:
    return ValueError(f"schedule.{key} must be {allowed} (got {value!r})")


def _num(p: Mapping[str, Any], key: str) -> float:
    if key not in p:
        raise ValueError(f"schedule.{key} is required for schedule.name={p['name']!r}")
    v = p[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _bad(key, "a finite number", v)
    return float(v)


def _frac(p: Mapping[str, Any], key: str, hi: float = 1.0, hi_closed: bool = False) -> float:
    v = _num(p, key)
    if not (0.0 < v < hi or (hi_closed and v == hi)):
        raise _bad(key, f"in (0, {hi:g}{']' if hi_closed else ')'}", v)
    return v


def _lr_pair(p: Mapping[str, Any], min_positive: bool = False) -> tuple[float, float]:
    hi = _num(p, "max_lr")
    if hi <= 0:
        raise _bad("max_lr", "> 0", hi)
    lo = _num(p, "min_lr")
    if min_positive and lo <= 0:
        raise _bad("min_lr", f"in (0, schedule.max_lr={hi:g}]", lo)
    if not 0 <= lo <= hi:
        raise _bad("min_lr", f"in [0, schedule.max_lr={hi:g}]", lo)
    return lo, hi


def _bool(p: Mapping[str, Any], key: str) -> bool:
    v = p[key]
    if not isinstance(v, bool):
        raise _bad(key, "true or false", v)
    return v


def _choice(p: Mapping[str, Any], key: str, allowed: Sequence[str]) -> str:
    v = p[key]
    if v not in allowed:
        raise _bad(key, "one of " + ", ".join(allowed), v)
    return v


# ---------------------------------------------------------------------------------------- builder
def build_schedule(cfg: Mapping, total: int, momentum: float) -> Schedule:
    """The schedule named ``cfg["name"]`` over ``total`` optimizer steps.

    ``cfg`` is the ``schedule`` config group (missing keys take the defaults above); ``momentum`` is
    ``optim.momentum``, used as the constant momentum unless ``cfg["cycle_momentum"]`` is true.
    Bad values raise ``ValueError`` with a one-line message naming ``schedule.<key>``.
    """
    if isinstance(total, bool) or not isinstance(total, int) and not _is_index(total):
        raise ValueError(f"train.iterations must be an integer >= 1 (got {total!r})")
    total = operator.index(total)
    if total < 1:
        raise ValueError(f"train.iterations must be an integer >= 1 (got {total!r})")

    name = cfg.get("name")
    if name not in _DEFAULTS:
        raise ValueError(f"schedule.name must be one of {', '.join(NAMES)} (got {name!r})")
    p: dict[str, Any] = {**_DEFAULTS[name], **{k: cfg[k] for k in cfg}}
    p["name"] = name

    if name == "clr":
        lo, hi = _lr_pair(p)
        peak_at = _frac(p, "peak_at")
        stepsize = peak_at * total
        lr_fn = functools.partial(_triangle, low=lo, high=hi, stepsize=stepsize)
        mom_shape = dict(kind="clr", stepsize=stepsize)
    elif name in ("one_cycle", "fastai"):
        hi = _num(p, "max_lr")
        if hi <= 0:
            raise _bad("max_lr", "> 0", hi)
        div = _num(p, "div")
        if div < 1:
            raise _bad("div", ">= 1", div)
        if p.get("min_lr") is None:
            p["min_lr"] = hi / div  # torch: initial_lr = max_lr / div_factor
        lo, hi = _lr_pair(p)
        final_div = _num(p, "final_div")
        if final_div < 1:
            raise _bad("final_div", ">= 1", final_div)
        three = _bool(p, "three_phase")
        anneal = _choice(p, "anneal", tuple(_ANNEAL))
        if name == "fastai" and (three or anneal != "cos"):
            raise ValueError(
                "schedule.three_phase must be false and schedule.anneal 'cos' for schedule.name=fastai"
                f" (got {three!r}, {anneal!r}); use schedule.name=one_cycle instead"
            )
        pct = _frac(p, "pct_start", hi=0.5 if three else 1.0, hi_closed=three)
        ends = _phase_ends(total, pct, three)
        final = lo / final_div  # torch: min_lr = initial_lr / final_div_factor
        values = (lo, hi, lo, final) if three else (lo, hi, final)
        lr_fn = functools.partial(_phased, phases=_phases(ends, values), anneal=anneal)
        mom_shape = dict(kind="phased", ends=ends, three=three, anneal=anneal)
    elif name == "multistep":
        hi = _num(p, "max_lr")
        if hi <= 0:
            raise _bad("max_lr", "> 0", hi)
        gamma = _num(p, "gamma")
        if not 0 < gamma <= 1:
            raise _bad("gamma", "in (0, 1]", gamma)
        ms = p["milestones"]
        if isinstance(ms, (str, bytes)) or not isinstance(ms, Sequence) and not _is_seq(ms):
            raise _bad("milestones", "a list of fractions in (0, 1)", ms)
        ms = [float(m) if not isinstance(m, bool) and isinstance(m, (int, float)) else m for m in ms]
        if any(not isinstance(m, float) or not 0 < m < 1 for m in ms) or ms != sorted(ms):
            raise _bad("milestones", "an increasing list of fractions in (0, 1)", list(p["milestones"]))
        p["milestones"] = ms
        steps = tuple(math.floor(m * total + 0.5) for m in ms)  # round half up
        p["milestone_iterations"] = steps
        lr_fn = functools.partial(_multistep, base=hi, steps=steps, gamma=gamma)
        mom_shape = None
    elif name == "constant":
        hi = _num(p, "max_lr")
        if hi <= 0:
            raise _bad("max_lr", "> 0", hi)
        lr_fn = functools.partial(_const, value=hi)
        mom_shape = None
    else:  # range_test
        mode = _choice(p, "mode", ("linear", "exp"))
        lo, hi = _lr_pair(p, min_positive=(mode == "exp"))
        if total < 2:
            raise ValueError(f"train.iterations must be >= 2 for schedule.name=range_test (got {total})")
        fn = _range_linear if mode == "linear" else _range_exp
        lr_fn = functools.partial(fn, low=lo, high=hi, last=total - 1)
        mom_shape = None

    # ------------------------------------------------------------------------------- momentum
    cyc = p.get("cycle_momentum")
    if cyc:
        if mom_shape is None:
            raise ValueError(
                f"schedule.cycle_momentum must be false for schedule.name={name}"
                f" (cyclical momentum exists for {', '.join(_CYCLIC)})"
            )
        p = {**_MOMENTUM_DEFAULTS, **p}
        m_hi, m_lo = _num(p, "max_momentum"), _num(p, "base_momentum")
        if not 0 <= m_hi < 1:
            raise _bad("max_momentum", "in [0, 1)", m_hi)
        if not 0 <= m_lo <= m_hi:
            raise _bad("base_momentum", f"in [0, schedule.max_momentum={m_hi:g}]", m_lo)
        if mom_shape["kind"] == "clr":
            # Inverse triangle: max_momentum -> base_momentum at the LR peak -> max_momentum
            # (torch CyclicLR cycle_momentum).
            mom_fn = functools.partial(
                _triangle, low=m_hi, high=m_lo, stepsize=mom_shape["stepsize"]
            )
        else:
            # torch OneCycleLR: max -> base over phase 1, base -> max over phase 2, (max over phase 3).
            mvals = (m_hi, m_lo, m_hi, m_hi) if mom_shape["three"] else (m_hi, m_lo, m_hi)
            mom_fn = functools.partial(
                _phased, phases=_phases(mom_shape["ends"], mvals), anneal=mom_shape["anneal"]
            )
    else:
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
            raise ValueError(f"optim.momentum must be in [0, 1) (got {momentum!r})")
        mom_fn = functools.partial(_const, value=float(momentum))
        p["momentum"] = float(momentum)
    p["cycle_momentum"] = bool(cyc)
    return Schedule(name=name, total=total, lr_fn=lr_fn, momentum_fn=mom_fn, params=p)


def _phase_ends(total: int, pct_start: float, three_phase: bool) -> tuple[float, ...]:
    # torch OneCycleLR phase ends, verbatim: pct*total - 1, 2*pct*total - 2, total - 1.
    if three_phase:
        return (
            float(pct_start * total) - 1,
            float(2 * pct_start * total) - 2,
            total - 1,
        )
    return (float(pct_start * total) - 1, total - 1)


def _phases(ends: tuple[float, ...], values: tuple[float, ...]) -> tuple[tuple[float, float, float], ...]:
    # values = the value at the start of phase 1 followed by the value at the end of each phase
    return tuple((end, values[i], values[i + 1]) for i, end in enumerate(ends))


def _is_index(x: Any) -> bool:
    try:
        operator.index(x)
    except TypeError:
        return False
    return True


def _is_seq(x: Any) -> bool:
    # An OmegaConf ListConfig is not a collections.abc.Sequence but iterates and has len().
    return hasattr(x, "__iter__") and hasattr(x, "__len__") and not isinstance(x, Mapping)
