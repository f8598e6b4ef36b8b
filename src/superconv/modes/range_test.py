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
  suggestions `valley`, `steep`, `minimum` (rules in superconv.range_analysis). Unlike fastai's, the model
  and optimizer are restored afterwards and the batches come from the run's seed, so two calls agree.

    python -m superconv.range_test model=resnet20 data.fraction=0.2 train.batch_size=128 \
        train.iterations=400 train.eval_every=20 train.eval_subset=2000   # ~3 min on 2 CPU cores
    python -m superconv.range_test range_test.mode=loss model=resnet20 train.batch_size=128

Results: `<paths.results_dir>/<experiment_name>/<overrides>/` as for training (ad-hoc runs under
`outputs/adhoc_range_test/`), `job_type: range_test`, the verdict and bounds in summary.json.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .. import checkpoint
from ..config import ConfigError
from ..loop import Outcome, augmentation_generator, train_step
from ..optim import set_hparams
from ..range_analysis import lr_find_suggestions, smooth_losses, suggest_bounds, verdict
from ..results import MetricsWriter, read_metrics
from ..schedules import build_schedule
from ..session import Setup, finish, load_config, open_store, prepare, provenance
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
        raise ConfigError(f"range_test.start_lr={rt['start_lr']!r}: must be > 0 and < range_test.end_lr={rt['end_lr']!r}")
    if not (isinstance(rt["num_it"], int) and rt["num_it"] >= 5):
        raise ConfigError(f"range_test.num_it={rt['num_it']!r}: must be an integer >= 5")
    if not rt["stop_factor"] > 1:
        raise ConfigError(f"range_test.stop_factor={rt['stop_factor']!r}: must be > 1")
    if not 0 <= rt["beta"] < 1:
        raise ConfigError(f"range_test.beta={rt['beta']!r}: must be in [0, 1)")


# ---- accuracy mode: a training run plus its analysis ----------------------------------------------

def analyze_accuracy(s: Setup, out: Outcome) -> dict:
    """The verdict and suggested bounds from the logged accuracy-vs-LR curve (summary fields)."""
    rt = s.c["range_test"]
    evals = [(r["lr"], r["test/acc"]) for r in read_metrics(s.store.metrics) if r["test/acc"] is not None]
    diverged_lr = s.schedule.lr(out.diverged_at - 1) if out.status == "diverged" else None
    result = {"mode": "accuracy", "diverged_lr": diverged_lr, "verdict": None, "bounds": None}
    if not evals:
        result["note"] = "no test evaluation before the run ended: no verdict"
        print(f"superconv: range test: {result['note']}", file=sys.stderr)
        return {"range_test": result}
    lrs, accs = [e[0] for e in evals], [e[1] for e in evals]
    result["verdict"] = verdict(lrs, accs, diverged_lr=diverged_lr, tolerance=rt["tolerance"],
                                chance=1.0 / s.split.num_classes)
    if result["verdict"]["label"] == "never_learns":
        result["note"] = "no bounds: the network never learned in this range"
    else:
        try:
            result["bounds"] = suggest_bounds(lrs, accs, rule=rt["bounds_rule"], min_div=rt["min_div"],
                                              tolerance=rt["tolerance"])
        except ValueError as e:  # e.g. the peak is at LR 0: there is no bound to suggest
            result["note"] = f"no bounds: {e}"
    print(f"superconv: range test verdict: {result['verdict']['label']}: {result['verdict']['text']}",
          file=sys.stderr)
    if result["bounds"]:
        print(f"superconv: suggested 1cycle bounds: {result['bounds']['text']}", file=sys.stderr)
    return {"range_test": result}


# ---- loss mode: fastai's lr_find -------------------------------------------------------------------

@dataclass
class LrFindResult:
    lrs: list[float]
    losses: list[float]  # raw training losses
    smoothed: list[float]
    accs: list[float]
    stopped_at: int | None  # iteration index at which the smoothed loss passed stop_factor x best
    suggestions: dict | None
    note: str = ""


def lr_find(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            next_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]], *, start_lr: float = 1e-7,
            end_lr: float = 10.0, num_it: int = 100, stop_factor: float = 4.0, beta: float = 0.98,
            momentum: float = 0.9, amp_dtype: torch.dtype | None = None,
            device: torch.device = torch.device("cpu")) -> LrFindResult:
    """fastai's lr_find; the model, the optimizer and the global RNG are restored afterwards.

    The LR grows exponentially from start_lr to end_lr over num_it steps (the range_test schedule in
    `exp` mode); the search stops when the smoothed loss exceeds stop_factor x its minimum or is not
    finite. Suggestions are made, as fastai does, on the smoothed curve without its first num_it//10 and
    last 5 points.
    """
    schedule = build_schedule({"name": "range_test", "mode": "exp", "min_lr": start_lr, "max_lr": end_lr},
                              num_it, momentum)
    saved = (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()), checkpoint.rng_state(),
             model.training)
    lrs, losses, accs, stopped_at = [], [], [], None
    model.train()
    try:
        for it in range(num_it):
            lr = schedule.lr(it)
            set_hparams(optimizer, lr, schedule.momentum(it))
            x, y = next_batch()
            loss, correct = train_step(model, optimizer, x, y, amp_dtype, device)
            lrs.append(lr)
            losses.append(loss.item())
            accs.append(correct.item() / len(y))
            smoothed = smooth_losses(losses, beta)
            if not math.isfinite(smoothed[-1]) or smoothed[-1] > stop_factor * min(smoothed):
                stopped_at = it
                break
    finally:
        model.load_state_dict(saved[0])
        optimizer.load_state_dict(saved[1])
        checkpoint.set_rng_state(saved[2])
        model.train(saved[3])
    smoothed = smooth_losses(losses, beta)
    try:
        suggestions = lr_find_suggestions(lrs, smoothed, skip_start=num_it // 10, skip_end=5)
        note = ""
    except ValueError as e:
        suggestions, note = None, f"no suggestion: {e}"
    return LrFindResult(lrs=lrs, losses=losses, smoothed=smoothed, accs=accs, stopped_at=stopped_at,
                        suggestions=suggestions, note=note)


def run_lr_find(c: dict, command: str | None) -> dict:
    rt, tr = c["range_test"], c["train"]
    schedule_cfg = {"name": "range_test", "mode": "exp", "min_lr": rt["start_lr"], "max_lr": rt["end_lr"]}
    s = prepare(c, iterations=rt["num_it"], schedule_cfg=schedule_cfg)
    open_store(s, None)
    gen = augmentation_generator(c["seed"], s.device)  # the same augmentation stream as training

    def next_batch():
        idx = s.order.next_indices().to(s.device)
        x = s.augment.train(s.split.train_x[idx], gen).contiguous(memory_format=torch.channels_last)
        return x, s.split.train_y[idx]

    t0 = time.perf_counter()
    res = lr_find(s.model, s.optimizer, next_batch, start_lr=rt["start_lr"], end_lr=rt["end_lr"],
                  num_it=rt["num_it"], stop_factor=rt["stop_factor"], beta=rt["beta"],
                  momentum=c["optim"]["momentum"], amp_dtype=s.amp_dtype, device=s.device)
    writer = MetricsWriter(s.store.metrics)
    bs, n = tr["batch_size"], len(s.split.train_x)
    writer.write([{"iteration": i + 1, "epoch": (i + 1) * bs / n, "lr": lr, "momentum": c["optim"]["momentum"],
                   "train/loss": loss if math.isfinite(loss) else None, "train/acc": acc}
                  for i, (lr, loss, acc) in enumerate(zip(res.lrs, res.losses, res.accs))])
    writer.close()
    summary = {
        "status": "completed",
        "iterations": len(res.lrs),
        "images_seen": len(res.lrs) * bs,
        "wall_s": round(time.perf_counter() - t0, 3),
        "range_test": {"mode": "loss", "suggestions": res.suggestions, "stopped_at": res.stopped_at,
                       "stop_lr": res.lrs[res.stopped_at] if res.stopped_at is not None else None,
                       "note": res.note, "restored": True},
        **provenance(s, command, "range_test"),
    }
    finish(s, summary)
    if res.suggestions:
        text = ", ".join(f"{k} {v:.3g}" for k, v in res.suggestions.items())
        print(f"superconv: lr_find suggestions: {text}", file=sys.stderr)
    else:
        print(f"superconv: lr_find: {res.note}", file=sys.stderr)
    return summary


def run(cfg, command: str | None = None) -> dict:
    """Run the range test `cfg` describes; return its summary (see the module docstring)."""
    c, done = load_config(cfg)
    validate_range_test(c)
    if done is not None:
        print(f"superconv: {done.path} is already done; nothing to do", file=sys.stderr)
        return done.read_summary()
    if c["range_test"]["mode"] == "loss":
        return run_lr_find(c, command)
    return training.run(c, command, job_type="range_test", analyze=analyze_accuracy)
