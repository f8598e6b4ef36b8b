"""The `train` mode: one training run, from a config to a finished run directory (superconv.train dispatches here).

Every check (values, data, the run directory's owner, the checkpoint) happens before anything is written;
the run directory is claimed (superconv.run_lock) so that two processes never train it at once. The LR
range test's accuracy mode is this run plus an analysis (`analyze`): it calls `run_checked` below.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from .. import checkpoint, health
from ..loggers import make_logger
from ..loop import Outcome, Parts, Settings, evaluate, run_loop
from ..results import RunDir, finite_or_none, read_metrics
from ..run_lock import RunLock
from ..schedules import Schedule
from ..session import finish, load_config, open_store, prepare, provenance


def run(cfg, command: str | None = None) -> dict:
    """Train the run `cfg` describes (a composed config or a plain dict); return its summary.

    Raises one of session.USER_ERRORS for bad input, `loop.Interrupted` after a signal.
    """
    c, schedule, store = load_config(cfg)
    return run_checked(c, schedule, store, command)


def run_checked(c: dict, schedule: Schedule, store: RunDir, command: str | None, *, job_type: str = "train",
                analyze: Callable[[Parts, Outcome], dict] | None = None,
                stop_rule: Callable[[Parts], Callable[[float], bool]] | None = None, **settings) -> dict:
    """The run of a config `session.load_config` has validated (with its schedule and checked store):
    skipped when done or claimed by another process (superconv.run_lock), else trained to its summary.
    Every check (data, the checkpoint) happens before anything is written. `analyze(parts, outcome)` (the
    range tests') adds its fields to the summary before DONE is written; `stop_rule(parts)` makes the loop's
    stop rule once the store is open (the LR finder's, primed with the losses of a resumed attempt);
    `settings` replace fields of `loop.Settings` (the LR finder's length, flush interval, no evaluation)."""
    if store.is_done():
        print(f"superconv: {store.path} is already done; nothing to do", file=sys.stderr)
        return store.read_summary()
    lock = RunLock(store.path)
    if not lock.acquire():
        print(f"superconv: {lock.run_dir} is being run by another process; skipped", file=sys.stderr)
        return {"status": "running elsewhere"}
    try:
        if store.is_done():  # finished by the process that held the lock a moment ago
            print(f"superconv: {store.path} is already done; nothing to do", file=sys.stderr)
            return store.read_summary()
        return _train(c, schedule, store, command, job_type, analyze, stop_rule, settings)
    finally:
        lock.release()


def final_fit(s: Parts, batch_size: int) -> dict:
    """How well the finished model fits its own training set: one full pass in eval mode, no augmentation, the
    running BN statistics the test uses. The per-batch accuracy in metrics.csv is taken on augmented batches in
    training mode while the weights move; this is the number that says whether the run converged (the health
    flag `underfit`). Costs one forward pass over the training subset (~1/3 of an epoch's training time)."""
    loss, acc = evaluate(s.model, s.train_x, s.train_y, s.augment, batch_size, s.amp_dtype, s.device)
    return {"final_train_acc": finite_or_none(acc), "final_train_loss": finite_or_none(loss),
            "final_train_images": len(s.train_y)}


def _train(c: dict, schedule: Schedule, store: RunDir, command: str | None, job_type: str,
           analyze: Callable[[Parts, Outcome], dict] | None,
           stop_rule: Callable[[Parts], Callable[[float], bool]] | None,
           overrides: dict) -> dict:
    """The run itself, once `run_checked` has claimed the run directory."""
    tr = c["train"]
    started = time.time()
    s = prepare(c, schedule, store)
    resume = checkpoint.load(s.store.checkpoint)

    settings = Settings(**{"iterations": tr["iterations"], "eval_every": tr["eval_every"],
                           "eval_batch_size": tr["eval_batch_size"], "log_every": tr["log_every"],
                           "checkpoint_every": tr["checkpoint_every"], "progress": tr["progress"],
                           "desc": c["experiment_name"], **overrides})
    open_store(s, resume)
    logger = make_logger(c["logger"], c, group=c["experiment_name"], name=s.store.path.name,
                         run_dir=s.store.path, wandb_dir=Path(c["paths"]["wandb_dir"]), job_type=job_type)
    exit_code = 1
    try:
        out = run_loop(s, settings, logger, resume, None if stop_rule is None else stop_rule(s))
        exit_code = 0
    finally:
        logger.finish(exit_code=exit_code)

    fit = final_fit(s, tr["eval_batch_size"]) if out.status == "completed" and job_type == "train" else {}
    summary = {
        "status": out.status,
        "final_test_acc": finite_or_none(out.final_test_acc),
        "final_test_loss": finite_or_none(out.final_test_loss),
        "best_test_acc": finite_or_none(out.best_test_acc),
        **fit,
        "iterations": out.iterations,
        "images_seen": out.images_seen,
        "wall_s": round(out.wall_s, 3),
        "train_s": round(out.train_s, 3),
        "images_per_s": round(out.images_per_s, 2),
        "test_images": len(s.eval_y),  # per intermediate evaluation; the final one uses the full test set
        "final_test_images": len(s.test_y),
        **provenance(s, command, job_type),
        "started_unix": round(started, 3),  # with finished_unix: which runs of a sweep overlapped
        "finished_unix": round(time.time(), 3),
    }
    if out.status == "diverged":
        summary["diverged_at"] = out.diverged_at
        summary["last_finite"] = {k: finite_or_none(v) if isinstance(v, float) else v
                                  for k, v in out.last_finite.items()}
    summary["health"] = health.assess(read_metrics(s.store.metrics), s.num_classes, out.status,
                                      fit.get("final_train_acc"), range_test=job_type == "range_test").to_json()
    if analyze is not None:
        summary.update(analyze(s, out))
    finish(s, summary)
    acc, fit_acc = summary["final_test_acc"], fit.get("final_train_acc")
    print(f"superconv: {out.status} {s.store.path}: final test acc {acc if acc is None else f'{acc:.4f}'}"
          f"{'' if fit_acc is None else f', train acc {fit_acc:.4f} (full pass)'}, "
          f"{summary['images_per_s']:.0f} img/s, {summary['wall_s']:.0f} s", file=sys.stderr)
    return summary
