"""The iteration-based training loop: steps, evaluation, metric rows, checkpoints, divergence, signals.

Knows nothing of Hydra: `superconv.session.prepare` builds the run once and hands it over as a `Parts`.
Per iteration the loop sets the schedule's LR and momentum, draws a batch by index from the tensors
already on the device, augments it in one batched operation and takes one optimizer step. The loss
and the number of correct predictions stay on the device until a flush (every `log_every` iterations,
at evaluations and checkpoints), so that a CUDA run does not wait for the host at each step. The optional
Hessian-free LR estimate (`train.lr_estimate_every`, superconv.lr_estimate) is computed on the device inside
the step too, and its values are buffered and flushed with the same rows.

Row convention: `iteration` counts completed updates (1-based), `lr`/`momentum` are the values used
by that update, and test metrics on a row were measured after it, as the Caffe logs do
("Iteration 100, Testing net" runs after 100 updates).
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import checkpoint
from .lr_estimate import LREstimate
from .optim import set_hparams
from .results import MetricsWriter, RunDir
from .sampling import Augment, BatchOrder
from .schedules import Schedule


class Interrupted(Exception):
    """SIGTERM or SIGINT arrived; a checkpoint was written and the run can be resumed."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by signal {signal.Signals(signum).name}; rerun the same command to resume")
        self.signum = signum


@dataclass
class Parts:
    """Everything one run is: its config and directory, and what it trains with. Built once, checked, by
    `superconv.session.prepare` (training, the range tests, `make bench` and `superconv.profile` alike)."""

    c: dict  # the resolved, validated config (a plain dict)
    store: RunDir  # the run's directory: checked against its owner, created by session.open_store
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    train_x: torch.Tensor  # uint8 [N,3,32,32] on `device` (the training subset)
    train_y: torch.Tensor
    test_x: torch.Tensor  # the full test set: the final evaluation
    test_y: torch.Tensor
    eval_x: torch.Tensor  # intermediate evaluations (a stratified subset, or the full set)
    eval_y: torch.Tensor
    num_classes: int
    augment: Augment
    order: BatchOrder
    device: torch.device
    amp_dtype: torch.dtype | None  # None: fp32
    step_model: torch.nn.Module | None = None  # the model the training step calls (torch.compile'd); None: model
    # (compared with `is None`: a compiled module refuses bool(), which asks its len())
    lr_estimate: LREstimate | None = None  # the Hessian-free LR estimate (train.lr_estimate_every); None: off
    data_source: dict | None = None  # where the data came from (superconv.data.Split.source), for the summary

    @property
    def seed(self) -> int:
        return self.c["seed"]


@dataclass
class Settings:
    iterations: int
    eval_every: int
    eval_batch_size: int
    log_every: int
    checkpoint_every: int
    progress: bool = True
    desc: str = "train"
    evaluate: bool = True  # False: no test evaluation at all (the LR finder, which reads training losses only)


@dataclass
class Outcome:
    status: str  # completed | diverged | stopped (by the run's stop rule)
    iterations: int
    images_seen: int
    wall_s: float
    train_s: float
    images_per_s: float
    final_test_loss: float | None
    final_test_acc: float | None
    best_test_acc: float | None
    diverged_at: int | None = None
    last_finite: dict = field(default_factory=dict)


class _SignalFlag:
    """Turns the first SIGTERM/SIGINT into a flag the loop checks between iterations."""

    def __init__(self):
        self.signum: int | None = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach the main thread only; a run in a worker thread just runs
        for s in (signal.SIGTERM, signal.SIGINT):
            self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum
        for s, old in self._old.items():  # a second signal acts at once
            signal.signal(s, old)

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def train_step(model, optimizer, x, y, amp_dtype, device):
    """One SGD update; returns the batch loss and number of correct predictions, on the device."""
    with _autocast(device, amp_dtype):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), (logits.detach().argmax(1) == y).sum()


@torch.inference_mode()
def evaluate(model, x, y, augment: Augment, batch_size: int, amp_dtype, device) -> tuple[float, float]:
    """Test loss and accuracy over the whole split, BN in inference mode (running statistics)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for i in range(0, len(x), batch_size):
        xb = augment.eval(x[i:i + batch_size]).contiguous(memory_format=torch.channels_last)
        yb = y[i:i + batch_size]
        with _autocast(device, amp_dtype):
            logits = model(xb)
        loss_sum += F.cross_entropy(logits.float(), yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    model.train(was_training)
    return loss_sum.item() / len(x), correct.item() / len(x)


def train_iteration(p: Parts, it: int, gen: torch.Generator
                    ) -> tuple[float, float, torch.Tensor, torch.Tensor, int, torch.Tensor | None]:
    """Iteration `it` (0-based) of the training path: schedule values, batch indices, batched augmentation,
    one optimizer step. `run_loop` and `superconv.bench` both call this, so the benchmark times exactly
    what training runs. Returns (lr, momentum, loss, correct, batch size, LR estimate); loss and correct stay
    on the device, and so does the LR estimate (None when off or when no window closed at this update).
    """
    lr, momentum = p.schedule.lr(it), p.schedule.momentum(it)
    set_hparams(p.optimizer, lr, momentum)
    idx = p.order.next_indices().to(p.device, non_blocking=True)
    xb = p.augment.train(p.train_x[idx], gen).contiguous(memory_format=torch.channels_last)
    model = p.model if p.step_model is None else p.step_model
    if p.lr_estimate is not None:
        p.lr_estimate.before_step(it)
    loss, correct = train_step(model, p.optimizer, xb, p.train_y[idx], p.amp_dtype, p.device)
    estimate = p.lr_estimate.after_step(it + 1, lr) if p.lr_estimate is not None else None
    return lr, momentum, loss, correct, len(idx), estimate


AUGMENT_SEED_OFFSET = 10_007  # the augmentation stream's seed = run seed + this: apart from init and data order


def augmentation_generator(seed: int, device: torch.device) -> torch.Generator:
    """The random stream of a run's augmentation (crops, flips): the same in training and in the LR finder."""
    return torch.Generator(device=device).manual_seed(seed + AUGMENT_SEED_OFFSET)


def run_loop(p: Parts, s: Settings, logger, resume: dict | None,
             stop_rule: Callable[[float], bool] | None = None) -> Outcome:
    """Train from iteration 0, or from `resume` (a checkpoint), to `s.iterations`, divergence, or `stop_rule`.

    `stop_rule(loss)` is called with each finite training loss in order, when its row is flushed (every
    `s.log_every` iterations: 1 stops at the iteration itself); True ends the run there, status "stopped",
    rows up to that iteration written. The LR finder is this loop with fastai's stop rule and an
    exponential schedule (superconv.modes.range_test).
    """
    gen = augmentation_generator(p.seed, p.device)
    start, counters = 0, {"images_seen": 0, "wall_s": 0.0, "train_s": 0.0, "best_test_acc": None,
                          "last_test": None}
    if resume is not None:
        p.model.load_state_dict(resume["model"])
        p.optimizer.load_state_dict(resume["optimizer"])
        p.order.load_state_dict(resume["order"])
        gen.set_state(resume["aug_rng"])
        checkpoint.set_rng_state(resume["rng"])
        start, counters = resume["iteration"], dict(resume["counters"])
        if p.lr_estimate is not None and resume.get("lr_estimate") is not None:
            p.lr_estimate.load_state_dict(resume["lr_estimate"])

    n_train, total = len(p.train_x), s.iterations
    store = p.store
    writer = MetricsWriter(store.metrics)
    bar = tqdm(total=total, initial=start, desc=s.desc, unit="it", disable=not s.progress,
               file=sys.stderr, dynamic_ncols=True, mininterval=1.0)
    pending: list[tuple] = []  # (iteration, lr, momentum, loss tensor, correct tensor, batch size, estimate)
    last_row: dict = {}  # the last row written with a finite loss
    t_session = time.perf_counter()
    eval_s = 0.0
    images_session = 0
    p.model.train()

    def state_at(iteration: int) -> dict:
        return {"iteration": iteration, "model": p.model.state_dict(), "optimizer": p.optimizer.state_dict(),
                "order": p.order.state_dict(), "aug_rng": gen.get_state(), "rng": checkpoint.rng_state(),
                "counters": counters,
                "lr_estimate": None if p.lr_estimate is None else p.lr_estimate.state_dict()}

    def timing() -> tuple[float, float]:
        wall = time.perf_counter() - t_session
        return counters["wall_s"] + wall, counters["train_s"] + wall - eval_s

    def end_early(status: str, iterations: int, unrun_images: int, **extra) -> Outcome:
        """The Outcome of a run that ends before `total` (divergence, the stop rule); `unrun_images`: those of
        buffered iterations past the end, counted but never part of the run."""
        wall_s, train_s = timing()
        return Outcome(status=status, iterations=iterations, images_seen=counters["images_seen"] - unrun_images,
                       wall_s=wall_s, train_s=train_s,
                       images_per_s=_rate(images_session - unrun_images, time.perf_counter() - t_session - eval_s),
                       final_test_loss=None, final_test_acc=None, best_test_acc=counters["best_test_acc"], **extra)

    try:
        with _SignalFlag() as flag:
            for it in range(start, total):
                lr, momentum, loss, correct, bs, estimate = train_iteration(p, it, gen)
                done = it + 1
                pending.append((done, lr, momentum, loss, correct, bs, estimate))
                counters["images_seen"] += bs
                images_session += bs
                bar.update(1)

                # The flag is read once per iteration: a signal arriving between the checkpoint decision and the
                # exit below would otherwise stop the run without the checkpoint it was promised.
                stop = flag.signum
                eval_now = s.evaluate and (done % s.eval_every == 0 or done == total)
                ckpt_now = (done % s.checkpoint_every == 0 and done < total) or stop is not None
                if not (eval_now or ckpt_now or len(pending) >= s.log_every):
                    continue

                rows, bad = _materialize(pending, n_train)
                cut = (None if stop_rule is None
                       else next((i for i, r in enumerate(rows) if stop_rule(r["train/loss"])), None))
                if cut is not None:  # the stop rule ends the run at rows[cut]: the rest were never run
                    rows = rows[:cut + 1]
                    writer.write(rows)
                    logger.log_rows(rows)
                    return end_early("stopped", rows[-1]["iteration"], sum(t[5] for t in pending[cut + 1:]))
                pending = []
                last_row = rows[-1] if rows else last_row
                if bad is not None:  # non-finite loss: keep the rows before it and stop
                    writer.write(rows)
                    logger.log_rows(rows)
                    last = counters["last_test"] or {}
                    return end_early("diverged", bad - 1, 0, diverged_at=bad,
                                     last_finite={"iteration": last_row.get("iteration", start),
                                                  "train/loss": last_row.get("train/loss"),
                                                  "test/iteration": last.get("iteration"),
                                                  "test/loss": last.get("loss"), "test/acc": last.get("acc")})
                if eval_now:
                    t_eval = time.perf_counter()
                    xs, ys = (p.test_x, p.test_y) if done == total else (p.eval_x, p.eval_y)
                    test_loss, test_acc = evaluate(p.model, xs, ys, p.augment, s.eval_batch_size, p.amp_dtype,
                                                   p.device)
                    eval_s += time.perf_counter() - t_eval
                    rows[-1]["test/loss"], rows[-1]["test/acc"] = test_loss, test_acc
                    counters["last_test"] = {"iteration": done, "loss": test_loss, "acc": test_acc}
                    best = counters["best_test_acc"]
                    counters["best_test_acc"] = test_acc if best is None else max(best, test_acc)
                writer.write(rows)
                logger.log_rows(rows)
                last = counters["last_test"] or {}
                bar.set_postfix(lr=f"{lr:.3g}", loss=f"{rows[-1]['train/loss']:.3f}",
                                test_acc=f"{last['acc']:.4f}" if last else "-",
                                img_s=f"{_rate(images_session, time.perf_counter() - t_session - eval_s):.0f}",
                                refresh=False)
                if ckpt_now:
                    wall_s, train_s = timing()
                    checkpoint.save(store.checkpoint, state_at(done) | {
                        "counters": counters | {"wall_s": wall_s, "train_s": train_s}})
                if stop is not None:
                    raise Interrupted(stop)
    finally:
        bar.close()
        writer.close()

    wall_s, train_s = timing()
    last = counters["last_test"] or {}
    return Outcome(status="completed", iterations=total, images_seen=counters["images_seen"], wall_s=wall_s,
                   train_s=train_s, images_per_s=_rate(images_session, time.perf_counter() - t_session - eval_s),
                   final_test_loss=last.get("loss"), final_test_acc=last.get("acc"),
                   best_test_acc=counters["best_test_acc"])


def _rate(images: int, seconds: float) -> float:
    return images / seconds if seconds > 0 else 0.0


def _materialize(pending: list[tuple], n_train: int) -> tuple[list[dict], int | None]:
    """Turn buffered device scalars into CSV rows (one host sync); cut at the first non-finite loss.
    The LR estimate (when on) comes back in the same transfer as the losses; an undefined one is None."""
    estimates = [t[6] for t in pending if t[6] is not None]
    floats = torch.stack([t[3].float() for t in pending] + [e.float() for e in estimates]).cpu().tolist()
    losses, est_values = floats[:len(pending)], iter(floats[len(pending):])
    corrects = torch.stack([t[4] for t in pending]).cpu().tolist()
    rows = []
    for (done, lr, momentum, _, _, bs, est), loss, correct in zip(pending, losses, corrects):
        est = next(est_values) if est is not None else None
        if not math.isfinite(loss):
            return rows, done
        rows.append({"iteration": done, "epoch": done * bs / n_train, "lr": lr, "momentum": momentum,
                     "train/loss": loss, "train/acc": correct / bs,
                     "lr_estimate": est if est is not None and math.isfinite(est) else None})
    return rows, None
