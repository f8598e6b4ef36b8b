"""A signal is acted on with a checkpoint, whenever in the iteration it arrives (superconv.loop)."""

from __future__ import annotations

import signal

import pytest

from superconv import checkpoint, loop
from superconv.bench import _compose
from superconv.loggers import make_logger
from superconv.results import RunDir
from superconv.session import open_store, prepare


class _LateFlag:
    """A SIGTERM that lands after the loop's first look at the flag in an iteration (log_every=1: every
    iteration flushes rows between its checkpoint decision and its exit check): the first read of
    `signum` says no signal, every later read says SIGTERM (what a real signal between two reads does)."""

    def __init__(self):
        self.reads = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @property
    def signum(self):
        self.reads += 1
        return None if self.reads == 1 else signal.SIGTERM


def test_a_signal_between_two_reads_still_leaves_a_checkpoint(synthetic_data_dir, tmp_path, monkeypatch):
    c, schedule = _compose([f"paths.data_dir={synthetic_data_dir}", f"paths.results_dir={tmp_path}",
                            "data=synthetic", "scale=smoke", "train.device=cpu", "train.threads=1",
                            "train.checkpoint_every=1000", "train.log_every=1", "train.progress=false"])
    c["paths"]["run_dir"] = str(tmp_path / "run")
    s = prepare(c, schedule)
    open_store(s, None)
    monkeypatch.setattr(loop, "_SignalFlag", _LateFlag)
    settings = loop.Settings(iterations=c["train"]["iterations"], eval_every=c["train"]["eval_every"],
                             eval_batch_size=c["train"]["eval_batch_size"], log_every=c["train"]["log_every"],
                             checkpoint_every=c["train"]["checkpoint_every"], progress=False)
    logger = make_logger({"name": "none"}, c, group="t", name="t", run_dir=tmp_path / "run", wandb_dir=tmp_path,
                         job_type="train")
    with pytest.raises(loop.Interrupted):
        loop.run_loop(s, settings, logger, None)
    state = checkpoint.load(RunDir(tmp_path / "run").checkpoint)
    assert state is not None and state["iteration"] >= 1  # stopped with the checkpoint it promised
