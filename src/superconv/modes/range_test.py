"""The `range_test` mode (`python -m superconv.range_test [overrides]`): LR range tests and a verdict on
super-convergence.

Two tests, selected by `range_test.mode`:

- `accuracy` (Smith; paper Fig 2b, 4, 7a, 11): one training run while the LR rises linearly from
  `schedule.min_lr` to `schedule.max_lr` over `train.iterations` (paper: 0 -> 3 over 5k, 20k or 100k
  iterations at batch 1000), test accuracy and loss every `train.eval_every` iterations on the full test
  set or `train.eval_subset` images, training loss every iteration. It is a training run in every
  respect (resumable, same results store), plus an analysis: the suggested 1cycle bounds and the verdict
  (does accuracy stay high up to large LRs, or peak and collapse?). Divergence is normal here: the rows
  before it are kept and the LR at which it happened is recorded.
- `loss` (fastai's lr_find): exponential LR from `range_test.start_lr` to `end_lr` over `num_it`
  iterations, debiased smoothed training loss, stop when it exceeds `stop_factor` x its minimum,
  suggestions `valley`, `steep`, `minimum` (rules in superconv.range_analysis). It is the training loop
  (superconv.loop.run_loop) with that stop rule (`LossStop`), that schedule and no test evaluation: a run
  like any other (resumable, same store), whose batches come from the run's seed, so two runs agree.

    python -m superconv.range_test model=resnet20 data.fraction=0.2 train.batch_size=128 \
        train.iterations=400 train.eval_every=20 train.eval_subset=2000   # ~3 min on 2 CPU cores
    python -m superconv.range_test range_test.mode=loss model=resnet20 train.batch_size=128

Results: `<paths.results_dir>/<experiment_name>/<overrides>/` as for training (ad-hoc runs under
`outputs/adhoc_range_test/`), `job_type: range_test`, the verdict and bounds in summary.json.
"""

from __future__ import annotations

import math
import sys

from ..config import ConfigError
from ..loop import Outcome, Parts
from ..range_analysis import LossStop, analyze_accuracy_curve, analyze_loss_curve
from ..results import read_metrics
from ..schedules import Schedule, build_schedule
from ..session import load_config
from . import training


def validate_range_test(c: dict) -> None:
    rt = c["range_test"]
    if rt["mode"] not in ("accuracy", "loss"):
        raise ConfigError(f"range_test.mode={rt['mode']!r}: must be one of accuracy, loss")
    if rt["mode"] == "accuracy" and c["schedule"]["name"] != "range_test":
        raise ConfigError(f"schedule={c['schedule']['name']}: the accuracy range test needs schedule=range_test")
    if not 0 < rt["tolerance"] < 1:
        raise ConfigError(f"range_test.tolerance={rt['tolerance']!r}: must be in (0, 1)")
    if rt["bounds_rule"] not in ("peak", "plateau_end"):
        raise ConfigError(f"range_test.bounds_rule={rt['bounds_rule']!r}: must be one of peak, plateau_end")
    if not rt["min_div"] >= 1:
        raise ConfigError(f"range_test.min_div={rt['min_div']!r}: must be >= 1")
    if not 0 < rt["start_lr"] < rt["end_lr"]:
        raise ConfigError(f"range_test.start_lr={rt['start_lr']!r}: must be > 0 and < "
                          f"range_test.end_lr={rt['end_lr']!r}")
    if not (isinstance(rt["num_it"], int) and rt["num_it"] >= 5):
        raise ConfigError(f"range_test.num_it={rt['num_it']!r}: must be an integer >= 5")
    if not rt["stop_factor"] > 1:
        raise ConfigError(f"range_test.stop_factor={rt['stop_factor']!r}: must be > 1")
    if not 0 <= rt["beta"] < 1:
        raise ConfigError(f"range_test.beta={rt['beta']!r}: must be in [0, 1)")


# ---- accuracy mode: a training run plus its analysis ----------------------------------------------

def analyze_accuracy(s: Parts, out: Outcome) -> dict:
    """The verdict and suggested bounds from the logged accuracy-vs-LR curve (summary fields; the rules:
    range_analysis.analyze_accuracy_curve, which the Python API uses too)."""
    rt = s.c["range_test"]
    evals = [(r["lr"], r["test/acc"]) for r in read_metrics(s.store.metrics) if r["test/acc"] is not None]
    diverged_lr = s.schedule.lr(out.diverged_at - 1) if out.status == "diverged" else None
    result = analyze_accuracy_curve([e[0] for e in evals], [e[1] for e in evals], diverged_lr=diverged_lr,
                                    tolerance=rt["tolerance"], bounds_rule=rt["bounds_rule"],
                                    min_div=rt["min_div"], chance=1.0 / s.num_classes)
    if result["verdict"] is None:
        print(f"superconv: range test: {result['note']}", file=sys.stderr)
        return {"range_test": result}
    print(f"superconv: range test verdict: {result['verdict']['label']}: {result['verdict']['text']}",
          file=sys.stderr)
    if result["bounds"]:
        print(f"superconv: suggested 1cycle bounds: {result['bounds']['text']}", file=sys.stderr)
    return {"range_test": result}


# ---- loss mode: fastai's lr_find, the training loop with a stop rule (range_analysis.LossStop) -----------

def loss_stop(s: Parts) -> LossStop:
    rt = s.c["range_test"]
    earlier = read_metrics(s.store.metrics) if s.store.metrics.exists() else []  # a resumed attempt's rows
    return LossStop(rt["stop_factor"], rt["beta"], [r["train/loss"] for r in earlier])


def analyze_loss(s: Parts, out: Outcome) -> dict:
    """fastai's suggestions from the run's smoothed training losses (summary fields). The search ends at its
    stop rule or at a non-finite loss, both a normal end of an LR finder: its status is `completed`."""
    rt = s.c["range_test"]
    rows = read_metrics(s.store.metrics)
    lrs, losses = [r["lr"] for r in rows], [r["train/loss"] for r in rows]
    stopped_at = None  # 0-based index of the update that ended the search
    if out.status == "stopped":
        stopped_at = out.iterations - 1
    elif out.status == "diverged":  # its loss was not finite: kept as NaN, so the suggestions cut there
        stopped_at = out.diverged_at - 1
        lrs.append(s.schedule.lr(stopped_at))
        losses.append(math.nan)
    suggestions, note = analyze_loss_curve(lrs, losses, num_it=rt["num_it"], beta=rt["beta"])
    if suggestions:
        text = ", ".join(f"{k} {v:.3g}" for k, v in suggestions.items())
        print(f"superconv: lr_find suggestions: {text}", file=sys.stderr)
    else:
        print(f"superconv: lr_find: {note}", file=sys.stderr)
    return {"status": "completed",
            "range_test": {"mode": "loss", "suggestions": suggestions, "stopped_at": stopped_at,
                           "stop_lr": lrs[stopped_at] if stopped_at is not None else None, "note": note}}


def lr_find_schedule(c: dict) -> Schedule:
    """The LR finder's schedule: exponential from range_test.start_lr to end_lr over range_test.num_it."""
    rt = c["range_test"]
    return build_schedule({"name": "range_test", "mode": "exp", "min_lr": rt["start_lr"], "max_lr": rt["end_lr"]},
                          rt["num_it"], c["optim"]["momentum"])


def run(cfg, command: str | None = None) -> dict:
    """Run the range test `cfg` describes; return its summary (see the module docstring)."""
    c, schedule, store = load_config(cfg)
    validate_range_test(c)
    if c["range_test"]["mode"] == "loss":
        return training.run_checked(c, lr_find_schedule(c), store, command, job_type="range_test",
                                    analyze=analyze_loss, stop_rule=loss_stop, iterations=c["range_test"]["num_it"],
                                    log_every=1, evaluate=False)
    return training.run_checked(c, schedule, store, command, job_type="range_test", analyze=analyze_accuracy)
