"""The Python API: the LR range test and the Hessian-free LR estimate on your own model, optimizer and data.

    import superconv
    result = superconv.range_test(model, optimizer, train_loader, val_loader=val_loader, end_lr=3.0, num_iter=200)
    print(result.verdict["text"], result.bounds)          # accuracy mode: Smith's test and verdict
    result = superconv.range_test(model, optimizer, train_loader, mode="loss")
    print(result.suggestions)                               # loss mode: fastai's lr_find suggestions

The analyses are the CLI's own (superconv.range_analysis: the verdict rule and its tolerance, the bounds rule
and min_div, fastai's smoothing, stop rule and suggestions), on the numbers this test logs; only the training
loop is new: any ``nn.Module``, any iterable of batches, gradient accumulation and bf16/fp16 autocast. It
differs from the CLI's loop in what a foreign model needs: batches come from your loader (re-iterated when it
runs out), the loss is your ``loss_fn``, the test is your ``eval_fn`` or ``val_loader``.

Units: an iteration is one optimizer step (``accumulation_steps`` batches); LRs are per step, what
``group["lr"]`` holds (times the group's ``lr_scale`` when it has one, superconv.optim's convention);
``curve["iteration"]`` counts completed steps (1-based), and ``curve["lr"]`` is the LR of that step, as the
CLI's metrics.csv.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from . import lr_estimate as _lr_estimate
from .range_analysis import BOUND_RULES, LossStop, analyze_accuracy_curve, analyze_loss_curve, smooth_losses
from .schedulers import build

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["range_test", "RangeTestResult", "LREstimate", "MODES", "STEPS", "AMP"]

MODES = ("accuracy", "loss")
STEPS = ("linear", "exp")
AMP = (None, "bf16", "fp16")
# Defaults per mode: Smith's test (paper Fig 2b: LR 0 -> 3, linear) and fastai's lr_find (1e-7 -> 10, exponential,
# 100 iterations). The paper's 3.0 is for SGD with momentum 0.9 on its ResNets: another optimizer or network may
# need another end_lr.
DEFAULTS = {"accuracy": {"start_lr": 0.0, "end_lr": 3.0, "step": "linear", "num_iter": 100},
            "loss": {"start_lr": 1e-7, "end_lr": 10.0, "step": "exp", "num_iter": 100}}

Batch = Any
BatchFn = Callable[[Batch], "tuple[Any, torch.Tensor]"]


# ---------------------------------------------------------------------------------------------- result
@dataclass
class RangeTestResult:
    """What a range test found.

    ``curve``: one row per iteration run, columns ``iteration`` (completed steps, 1-based), ``lr`` (of that
    step), ``train_loss`` (mean over its accumulated batches), ``smoothed_loss`` (fastai's debiased EMA,
    ``beta``), ``test_loss`` and ``test_acc`` (after that step, on the rows where the test ran; NaN elsewhere).
    A step whose loss was not finite is not a row (the CLI keeps the rows before it too).

    ``status``: ``"completed"`` (all ``num_iter`` steps), ``"diverged"`` (a non-finite training loss at step
    ``stopped_at``, LR ``stop_lr``; not taken) or ``"stopped"`` (loss mode: fastai's stop rule at row
    ``stopped_at``); ``stop_reason`` says it in a sentence. Accuracy mode: ``verdict`` and ``bounds``
    (superconv.range_analysis.verdict / suggest_bounds: ``bounds["min_lr"]``, ``bounds["max_lr"]``).
    Loss mode: ``suggestions`` (fastai's valley, steep, minimum[, slide]). ``note``: why one is missing.
    """

    mode: str
    num_iter: int
    curve: pd.DataFrame
    status: str
    stopped_at: int | None
    stop_lr: float | None
    stop_reason: str
    verdict: dict | None = None
    bounds: dict | None = None
    suggestions: dict | None = None
    note: str = ""
    settings: dict = field(default_factory=dict)

    @property
    def evaluations(self) -> pd.DataFrame:
        """The rows where the test ran (the curve the verdict judges)."""
        return self.curve[self.curve["test_acc"].notna()]

    def __str__(self) -> str:
        lines = [f"LR range test ({self.mode} mode, {self.settings.get('step')} LR): {self.stop_reason}"]
        if self.verdict:
            lines.append(f"verdict: {self.verdict['label']}: {self.verdict['text']}")
        if self.bounds:
            lines.append(f"suggested bounds: {self.bounds['text']}")
        if self.suggestions:
            lines.append("lr_find suggestions: " + ", ".join(f"{k} {v:.3g}" for k, v in self.suggestions.items()))
        if self.note:
            lines.append(f"note: {self.note}")
        return "\n".join(lines)

    def plot(self, path: str | None = None) -> Figure:
        """The test as the project's figures draw it (paper_figures/range_figures.py), returned as a Figure and
        saved to ``path`` when given. Accuracy mode: test accuracy vs LR (linear axis, the peak starred, the
        suggested max_lr dash-dot and min_lr dotted) beside the training loss (light, rolling mean) and test
        loss (log axis). Loss mode: the smoothed training loss vs LR (log axis), raw loss light, fastai's
        suggestions as vertical lines (valley solid, steep dashed, minimum dotted)."""
        import matplotlib.pyplot as plt
        import seaborn as sns

        df = self.curve
        with sns.axes_style("whitegrid"), sns.plotting_context("paper"):
            if self.mode == "accuracy":
                fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(10, 4.0))
                ev = self.evaluations
                ax.plot(ev["lr"], ev["test_acc"], marker="o", markersize=3, linewidth=1.3, color="C0",
                        label=self.verdict["label"] if self.verdict else "test accuracy")
                if self.verdict:
                    ax.plot([self.verdict["peak_lr"]], [self.verdict["peak_acc"]], marker="*", markersize=9,
                            color="C0", markeredgecolor="black", markeredgewidth=0.5, linestyle="none",
                            label="peak (verdict)")
                for a in (ax, ax_loss):
                    if self.bounds:
                        a.axvline(self.bounds["max_lr"], color="0.2", linestyle="-.", linewidth=0.9,
                                  label=f"max_lr {self.bounds['max_lr']:.3g}")
                        a.axvline(self.bounds["min_lr"], color="0.2", linestyle=":", linewidth=0.9,
                                  label=f"min_lr {self.bounds['min_lr']:.3g}")
                    a.set_xlabel("learning rate (linear)")
                train = df["train_loss"].rolling(max(1, len(df) // 50), min_periods=1).mean()
                ax_loss.plot(df["lr"], train, color="C0", alpha=0.4, linewidth=0.9, label="train loss (rolling mean)")
                ax_loss.plot(ev["lr"], ev["test_loss"], color="C0", marker="o", markersize=3, linewidth=1.3,
                             label="test loss")
                if (df["train_loss"] > 0).all():
                    ax_loss.set_yscale("log")
                ax.set_ylabel("test accuracy")
                ax.set_title("test accuracy vs LR", fontsize=8)
                ax_loss.set_ylabel("loss")
                ax_loss.set_title("train loss (light, rolling mean) and test loss vs LR", fontsize=8)
                ax.legend(fontsize=6, loc="best", framealpha=0.85)
                ax_loss.legend(fontsize=6, loc="best", framealpha=0.85)
                text = self.verdict["text"] if self.verdict else self.note
            else:
                fig, ax = plt.subplots(figsize=(6.4, 4.0))
                ax.plot(df["lr"], df["train_loss"], color="C0", alpha=0.25, linewidth=0.8)
                ax.plot(df["lr"], df["smoothed_loss"], color="C0", linewidth=1.5, label="smoothed training loss")
                for (name, ls) in (("valley", "-"), ("steep", "--"), ("minimum", ":")):
                    if self.suggestions and self.suggestions.get(name, 0) > 0:
                        ax.axvline(self.suggestions[name], color="0.2", linestyle=ls, linewidth=1.0,
                                   label=f"{name} {self.suggestions[name]:.3g}")
                if (df["lr"] > 0).all():
                    ax.set_xscale("log")
                finite = df["smoothed_loss"][df["smoothed_loss"].map(math.isfinite)]
                if len(finite) and finite.max() > finite.min():
                    pad = 0.05 * (finite.max() - finite.min())
                    ax.set_ylim(finite.min() - pad, finite.max() + pad)
                ax.set_xlabel("learning rate (log scale)")
                ax.set_ylabel(f"training loss (smoothed, beta {self.settings.get('beta')})")
                ax.legend(fontsize=6, loc="best", framealpha=0.85)
                text = self.note
            fig.suptitle(f"LR range test, {self.mode} mode: {self.stop_reason}", fontsize=8)
            if text:
                fig.text(0.01, -0.01, text, ha="left", va="top", fontsize=6.5, wrap=True)
            fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=200, bbox_inches="tight")
        return fig


# ------------------------------------------------------------------------------------------- checks
def _bad(name: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{name}={value!r}: must be {allowed}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check(mode, step, start_lr, end_lr, num_iter, eval_every, has_test, accumulation_steps, amp, tolerance,
           bounds_rule, min_div, stop_factor, beta) -> None:
    """One ValueError per bad argument, naming it and what is allowed, before anything runs."""
    if mode not in MODES:
        raise _bad("mode", mode, "'accuracy' (Smith's test on the test accuracy) or 'loss' (fastai's lr_find)")
    if step not in STEPS:
        raise _bad("step", step, "'linear' or 'exp'")
    if not _is_num(end_lr) or end_lr <= 0:
        raise _bad("end_lr", end_lr, "a number > 0")
    low = "> 0" if step == "exp" else ">= 0"
    if not _is_num(start_lr) or start_lr < 0 or (step == "exp" and start_lr == 0):
        raise _bad("start_lr", start_lr, f"a number {low} with step={step!r}"
                   + (" (an exponential rise cannot start at 0)" if step == "exp" else ""))
    if start_lr >= end_lr:
        raise _bad("start_lr", start_lr, f"< end_lr={end_lr!r} (the LR rises from start_lr to end_lr)")
    if not _is_int(num_iter) or num_iter < 2:
        raise _bad("num_iter", num_iter, "an integer >= 2 (optimizer steps; both LR bounds are hit)")
    if not _is_int(eval_every) or not 1 <= eval_every <= num_iter:
        raise _bad("eval_every", eval_every, f"an integer in [1, num_iter={num_iter}] (steps between test evaluations)")
    if mode == "accuracy" and not has_test:
        raise ValueError("mode='accuracy' needs eval_fn or val_loader: the test accuracy is what it judges "
                         "(use mode='loss' for fastai's lr_find on the training loss)")
    if not _is_int(accumulation_steps) or accumulation_steps < 1:
        raise _bad("accumulation_steps", accumulation_steps, "an integer >= 1 (batches per optimizer step)")
    if amp not in AMP:
        raise _bad("amp", amp, "None, 'bf16' or 'fp16'")
    if not _is_num(tolerance) or not 0 < tolerance < 1:
        raise _bad("tolerance", tolerance, "in (0, 1)")
    if bounds_rule not in BOUND_RULES:
        raise _bad("bounds_rule", bounds_rule, "one of " + ", ".join(BOUND_RULES))
    if not _is_num(min_div) or min_div < 1:
        raise _bad("min_div", min_div, "a number >= 1")
    if not _is_num(stop_factor) or stop_factor <= 1:
        raise _bad("stop_factor", stop_factor, "a number > 1")
    if not _is_num(beta) or not 0 <= beta < 1:
        raise _bad("beta", beta, "in [0, 1)")


# ------------------------------------------------------------------------------------------ batches
def _default_batch(batch: Batch) -> tuple[Any, torch.Tensor]:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ValueError(f"a batch of type {type(batch).__name__} is not an (x, y) pair: pass batch_fn=... that "
                     f"returns (inputs, targets)")


def _to(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(v, device) for v in obj)
    return obj


class _Batches:
    """Endless batches from `loader`, re-iterated when it runs out (torch-lr-finder does the same)."""

    def __init__(self, loader: Iterable, name: str, batch_fn: BatchFn | None, device: torch.device):
        self.loader, self.name, self.batch_fn, self.device = loader, name, batch_fn or _default_batch, device
        self.it: Iterator | None = None

    def next(self) -> tuple[Any, torch.Tensor]:
        for fresh in (False, True):
            if self.it is None or fresh:
                self.it = iter(self.loader)
            try:
                batch = next(self.it)
            except StopIteration:
                continue
            x, y = self.batch_fn(batch)
            return _to(x, self.device), _to(y, self.device)
        raise ValueError(f"{self.name} is empty: it yielded no batch")


def _float(out: Any) -> Any:
    return out.float() if isinstance(out, torch.Tensor) and out.is_floating_point() else out


def _autocast(device: torch.device, amp: str | None):
    if amp is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


@torch.no_grad()
def _evaluate(model: nn.Module, batches: Iterable, batch_fn: BatchFn | None, loss_fn, device, amp
              ) -> tuple[float, float]:
    """(mean loss, accuracy) over every batch of `batches`, the model in eval mode; accuracy = argmax == target."""
    loss_sum, correct, n = 0.0, 0, 0
    unpack = batch_fn or _default_batch
    for batch in batches:
        x, y = unpack(batch)
        x, y = _to(x, device), _to(y, device)
        with _autocast(device, amp):
            out = model(x)
        out = _float(out)
        loss_sum += float(loss_fn(out, y)) * len(y)
        correct += int((out.argmax(1) == y).sum())
        n += len(y)
    if n == 0:
        raise ValueError("val_loader is empty: it yielded no batch")
    return loss_sum / n, correct / n


# -------------------------------------------------------------------------------------- the test
def _snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    params = [p for g in optimizer.param_groups for p in g["params"]] + list(model.parameters())
    return {"model": copy.deepcopy(model.state_dict()), "optimizer": copy.deepcopy(optimizer.state_dict()),
            "training": model.training, "grads": {id(p): (p, None if p.grad is None else p.grad.clone())
                                                  for p in params},
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None}


def _restore(model: nn.Module, optimizer: torch.optim.Optimizer, snap: dict) -> None:
    model.load_state_dict(snap["model"])
    optimizer.load_state_dict(snap["optimizer"])
    model.train(snap["training"])
    for p, grad in snap["grads"].values():
        p.grad = grad
    torch.set_rng_state(snap["rng"])
    if snap["cuda_rng"] is not None:
        torch.cuda.set_rng_state_all(snap["cuda_rng"])


def range_test(model: nn.Module, optimizer: torch.optim.Optimizer, train_loader: Iterable, *,
               eval_fn: Callable[[nn.Module], float] | None = None, val_loader: Iterable | None = None,
               start_lr: float | None = None, end_lr: float | None = None, num_iter: int | None = None,
               mode: str = "accuracy", step: str | None = None, eval_every: int | None = None,
               device: str | torch.device | None = None, amp: str | None = None, accumulation_steps: int = 1,
               batch_fn: BatchFn | None = None, loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
               restore: bool = True, tolerance: float = 0.2, bounds_rule: str = "peak", min_div: float = 4.0,
               chance: float | None = None, stop_factor: float = 4.0, beta: float = 0.98) -> RangeTestResult:
    """Train ``model`` for ``num_iter`` optimizer steps while the LR rises from ``start_lr`` to ``end_lr`` (per
    step, ``step="linear"`` or ``"exp"``, both endpoints hit), and analyse the curve as the CLI does.

    ``mode="accuracy"`` (Smith & Topin, Fig 2b): defaults LR 0 -> 3 linear over 100 steps; the test accuracy
    every ``eval_every`` steps (default: 20 tests) and after the last, from ``eval_fn(model) -> accuracy`` or
    over ``val_loader`` (argmax == target; the model in eval mode, without gradients); the verdict (does
    accuracy stay within ``tolerance`` of its peak up to ``end_lr``?) and the suggested CLR/1cycle bounds
    (``bounds_rule`` "peak" or "plateau_end", ``min_lr = max_lr / min_div``). ``chance`` (accuracy of guessing:
    a peak under 1.5x it is "never_learns") defaults to 1 / the number of model outputs when they are logits
    ``[N, C]``. A non-finite training loss ends the test ("diverged"): its step is not taken.
    ``mode="loss"`` (fastai ``lr_find``): defaults 1e-7 -> 10 exponential over 100 steps; the training loss,
    smoothed with ``beta``, stops the test when above ``stop_factor`` x its minimum; suggestions valley,
    steep, minimum (slide). A test set, when given, is evaluated too but does not enter the suggestions.

    Batches: ``train_loader`` is any iterable, re-iterated when it runs out; each batch is an ``(x, y)`` pair or
    whatever ``batch_fn(batch) -> (x, y)`` turns it into; tensors (also inside lists and dicts) are moved to
    ``device`` (default: the model's). ``loss_fn(output, y)`` defaults to cross-entropy (the output in fp32).
    ``accumulation_steps`` batches make one step (their losses averaged). ``amp``: None (fp32), "bf16" or
    "fp16" autocast; fp16 uses a GradScaler.

    ``restore=True`` (default): afterwards the model's parameters and buffers (BN statistics), the optimizer's
    state (momentum buffers, Adam moments, its param groups' LR and momentum), the gradients, the model's
    train/eval mode and torch's global RNG (CPU and CUDA) are what they were, bit for bit (deep copies of the
    state dicts, taken before: memory for one more copy of both). Not restored: Python's and NumPy's RNGs and a
    loader's own generator or iterator state. ``restore=False`` leaves the model trained by the test.

    Every bad argument raises ``ValueError`` naming it, before anything runs; see ``RangeTestResult``.
    """
    d = DEFAULTS[mode] if mode in DEFAULTS else DEFAULTS["accuracy"]
    step = d["step"] if step is None else step
    start_lr = d["start_lr"] if start_lr is None else start_lr
    end_lr = d["end_lr"] if end_lr is None else end_lr
    num_iter = d["num_iter"] if num_iter is None else num_iter
    if eval_every is None and _is_int(num_iter):
        eval_every = max(1, num_iter // 20)
    if eval_fn is not None and val_loader is not None:
        raise ValueError("eval_fn and val_loader: pass one of them (the test the accuracy comes from), not both")
    has_test = eval_fn is not None or val_loader is not None
    _check(mode, step, start_lr, end_lr, num_iter, eval_every, has_test, accumulation_steps, amp, tolerance,
           bounds_rule, min_div, stop_factor, beta)
    schedule = build({"name": "range_test", "min_lr": start_lr, "max_lr": end_lr, "mode": step}, num_iter,
                     {"min_lr": "start_lr", "max_lr": "end_lr"})
    first = next(iter(model.parameters()), None)
    model_device = first.device if first is not None else torch.device("cpu")
    device = model_device if device is None else torch.device(device)
    if device.type != model_device.type or (device.index is not None and model_device.index is not None
                                            and device.index != model_device.index):
        raise _bad("device", str(device), f"the model's device ({model_device}): move the model there first")
    loss_fn = loss_fn or F.cross_entropy
    settings = {"start_lr": start_lr, "end_lr": end_lr, "num_iter": num_iter, "step": step, "eval_every": eval_every,
                "accumulation_steps": accumulation_steps, "amp": amp, "tolerance": tolerance,
                "bounds_rule": bounds_rule, "min_div": min_div, "stop_factor": stop_factor, "beta": beta}

    batches = _Batches(train_loader, "train_loader", batch_fn, device)
    snap = _snapshot(model, optimizer) if restore else None
    try:
        rows, status, stop_at, chance_seen = _run(model, optimizer, batches, schedule, num_iter, mode, eval_every,
                                                  eval_fn, val_loader, batch_fn, loss_fn, device, amp,
                                                  accumulation_steps, LossStop(stop_factor, beta))
    finally:
        if snap is not None:
            _restore(model, optimizer, snap)
    return _result(rows, status, stop_at, mode, num_iter, schedule, settings,
                   chance if chance is not None else chance_seen)


def _run(model, optimizer, batches, schedule, num_iter, mode, eval_every, eval_fn, val_loader, batch_fn, loss_fn,
         device, amp, accumulation_steps, loss_stop) -> tuple[list[dict], str, int | None, float | None]:
    """The training loop: (rows, status, iteration that ended it or None, chance level seen in the outputs)."""
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
    rows: list[dict] = []
    chance = None
    model.train()
    for it in range(num_iter):
        lr = schedule.lr(it)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=device)
        for _ in range(accumulation_steps):
            x, y = batches.next()
            with _autocast(device, amp):
                out = model(x)
            out = _float(out)
            if chance is None and isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[1] >= 2:
                chance = 1.0 / out.shape[1]
            loss = loss_fn(out, y)
            scaled = loss / accumulation_steps
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
            total += loss.detach().float()
        loss_value = float(total) / accumulation_steps
        done = it + 1
        if not math.isfinite(loss_value):  # diverged: the step is not taken
            return rows, "diverged", done, chance
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        row = {"iteration": done, "lr": lr, "train_loss": loss_value, "test_loss": math.nan, "test_acc": math.nan}
        if (eval_fn is not None or val_loader is not None) and (done % eval_every == 0 or done == num_iter):
            model.eval()
            try:
                if eval_fn is not None:
                    with torch.no_grad():
                        row["test_acc"] = float(eval_fn(model))
                else:
                    row["test_loss"], row["test_acc"] = _evaluate(model, val_loader, batch_fn, loss_fn, device, amp)
            finally:
                model.train()
        rows.append(row)
        if mode == "loss" and loss_stop(loss_value):
            return rows, "stopped", done, chance
    return rows, "completed", None, chance


def _result(rows, status, stop_at, mode, num_iter, schedule, settings, chance) -> RangeTestResult:
    import pandas as pd

    curve = pd.DataFrame(rows, columns=["iteration", "lr", "train_loss", "test_loss", "test_acc"])
    curve.insert(3, "smoothed_loss", smooth_losses(curve["train_loss"].tolist(), settings["beta"]))
    stop_lr = schedule.lr(stop_at - 1) if stop_at is not None else None
    where = f"LR {stop_lr:.3g} (iteration {stop_at} of {num_iter})" if stop_at is not None else ""
    if status == "diverged":
        reason = f"diverged at {where}: the training loss was not finite"
    elif status == "stopped":
        reason = (f"stopped at {where}: the smoothed training loss exceeded {settings['stop_factor']:g}x its "
                  f"minimum (fastai's stop rule)")
    else:
        reason = f"completed {num_iter} iterations up to LR {schedule.lr(num_iter - 1):.3g}"
    res = RangeTestResult(mode=mode, num_iter=num_iter, curve=curve, status=status, stopped_at=stop_at,
                          stop_lr=stop_lr, stop_reason=reason, settings=settings)
    if mode == "accuracy":
        ev = curve[curve["test_acc"].notna()]
        a = analyze_accuracy_curve(ev["lr"].tolist(), ev["test_acc"].tolist(),
                                   diverged_lr=stop_lr if status == "diverged" else None,
                                   tolerance=settings["tolerance"], bounds_rule=settings["bounds_rule"],
                                   min_div=settings["min_div"], chance=chance)
        res.verdict, res.bounds, res.note = a["verdict"], a["bounds"], a.get("note", "")
    else:
        lrs, losses = curve["lr"].tolist(), curve["train_loss"].tolist()
        if status == "diverged":  # the non-finite loss stays in the analysis as NaN, as in the CLI
            lrs, losses = lrs + [stop_lr], losses + [math.nan]
        res.suggestions, res.note = analyze_loss_curve(lrs, losses, num_it=num_iter, beta=settings["beta"])
    return res


# ------------------------------------------------------------------------------------- LR estimate
class LREstimate(_lr_estimate.LREstimate):
    """The paper's Hessian-free estimate of the optimal LR (Fig 5; superconv.lr_estimate) on any parameters,
    driven by one call after each optimizer step:

        est = superconv.LREstimate(model.parameters())       # before the first step
        for x, y in batches:
            lr = optimizer.param_groups[0]["lr"]             # the LR of this step
            ...; optimizer.step()
            value = est.update(lr)                            # float, or None while undefined

    It is the training loop's own estimator (superconv.loop calls ``before_step(i)`` before update i and
    ``after_step(i + 1, lr)`` after it); ``update`` makes both calls, since the weights after update i are those
    before update i + 1, so its values equal the CLI's ``lr_estimate`` column on the same steps
    (``train.lr_estimate_every=every``). ``every``: a 3-iterate window opens every ``every`` steps (1: a value
    at every step from the second on; memory: one extra copy of the parameters, two at ``every=1``).
    Call ``update`` after each step actually taken (not after a step a GradScaler skipped), with the LR of that
    step (per step, the first group's when groups differ: the paper's formula takes one LR). ``update`` waits
    for the device when a window closes (it returns a float); ``history`` holds ``(step, value)`` pairs."""

    def __init__(self, params: Iterable[torch.Tensor], every: int = 1, factor: float = _lr_estimate.EMA_FACTOR):
        super().__init__(params, every, factor)
        self.steps = 0  # optimizer steps seen
        self.history: list[tuple[int, float]] = []
        self.before_step(0)

    def update(self, lr: float) -> float | None:
        """Record the step just taken with LR ``lr``; the EMA when a window closed and the value is defined."""
        if not _is_num(lr):
            raise _bad("lr", lr, "a finite number (the LR of the step just taken)")
        out = self.after_step(self.steps + 1, lr)
        self.steps += 1
        self.before_step(self.steps)
        if out is None:
            return None
        value = float(out)
        if not math.isfinite(value):
            return None
        self.history.append((self.steps, value))
        return value

    @property
    def current(self) -> float | None:
        """The current EMA as a float (None until a window was defined); ``value`` is the same as a device
        tensor (NaN while undefined), as the loop keeps it."""
        v = float(self.value)
        return v if math.isfinite(v) else None

    def state_dict(self) -> dict:
        return {**super().state_dict(), "steps": self.steps, "history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.steps, self.history = int(state["steps"]), list(state["history"])

