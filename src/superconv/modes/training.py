"""The `train` mode: one training run, from a config to a finished run directory (superconv.train dispatches here).

Every check (values, data, the run directory's owner, the checkpoint) happens before anything is written;
the run directory is claimed (superconv.run_lock) so that two processes never train it at once. The LR
range test's accuracy mode is this run plus an analysis (`analyze`), so it calls `train` below.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from .. import checkpoint, health
from ..loggers import make_logger
from ..loop import Outcome, Settings, run_loop
from ..results import finite_or_none, read_metrics
from ..run_lock import RunLock
from ..session import Setup, finish, load_config, open_store, prepare, provenance, run_dir_of


def run(cfg, command: str | None = None, *, job_type: str = "train",
        analyze: Callable[[Setup, Outcome], dict] | None = None) -> dict:
    """Train the run `cfg` describes (a composed config or a plain dict); return its summary.

    Every check (values, data, the run directory's owner, the checkpoint) happens before anything is
    written. Raises one of session.USER_ERRORS for bad input, `loop.Interrupted` after a signal.
    `analyze(setup, outcome)` (the range test's) adds its fields to the summary before DONE is written.
    """
    c, done = load_config(cfg)
    if done is not None:
        print(f"superconv: {done.path} is already done; nothing to do", file=sys.stderr)
        return done.read_summary()
    lock = RunLock(run_dir_of(c))
    if not lock.acquire():
        print(f"superconv: {lock.run_dir} is being run by another process; skipped", file=sys.stderr)
        return {"status": "running elsewhere"}
    try:
        return _train(c, command, job_type, analyze)
    finally:
        lock.release()


def _train(c: dict, command: str | None, job_type: str, analyze: Callable[[Setup, Outcome], dict] | None) -> dict:
    """The run itself, once `run` has checked the config and claimed the run directory."""
    tr = c["train"]
    started = time.time()
    s = prepare(c, iterations=tr["iterations"], schedule_cfg=c["schedule"])
    resume = checkpoint.load(s.store.checkpoint)

    parts = s.parts()
    settings = Settings(iterations=tr["iterations"], eval_every=tr["eval_every"],
                        eval_batch_size=tr["eval_batch_size"], log_every=tr["log_every"],
                        checkpoint_every=tr["checkpoint_every"], progress=tr["progress"],
                        desc=c["experiment_name"])
    open_store(s, resume)
    logger = make_logger(c["logger"], c, group=c["experiment_name"], name=s.store.path.name,
                         run_dir=s.store.path, wandb_dir=Path(c["paths"]["wandb_dir"]), job_type=job_type)
    exit_code = 1
    try:
        out = run_loop(parts, settings, s.store, logger, resume)
        exit_code = 0
    finally:
        logger.finish(exit_code=exit_code)

    summary = {
        "status": out.status,
        "final_test_acc": finite_or_none(out.final_test_acc),
        "final_test_loss": finite_or_none(out.final_test_loss),
        "best_test_acc": finite_or_none(out.best_test_acc),
        "iterations": out.iterations,
        "images_seen": out.images_seen,
        "wall_s": round(out.wall_s, 3),
        "train_s": round(out.train_s, 3),
        "images_per_s": round(out.images_per_s, 2),
        "test_images": len(s.eval_y),  # per intermediate evaluation; the final one uses the full test set
        "final_test_images": len(s.split.test_y),
        **provenance(s, command, job_type),
        "started_unix": round(started, 3),  # with finished_unix: which runs of a sweep overlapped
        "finished_unix": round(time.time(), 3),
    }
    if out.status == "diverged":
        summary["diverged_at"] = out.diverged_at
        summary["last_finite"] = {k: finite_or_none(v) if isinstance(v, float) else v
                                  for k, v in out.last_finite.items()}
    summary["health"] = health.assess(read_metrics(s.store.metrics), s.split.num_classes, out.status).to_json()
    if analyze is not None:
        summary.update(analyze(s, out))
    finish(s, summary)
    acc = summary["final_test_acc"]
    print(f"superconv: {out.status} {s.store.path}: final test acc {acc if acc is None else f'{acc:.4f}'}, "
          f"{summary['images_per_s']:.0f} img/s, {summary['wall_s']:.0f} s", file=sys.stderr)
    return summary
