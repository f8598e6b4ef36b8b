"""Resumable checkpoints: everything a run needs to continue as if it had never stopped.

A checkpoint holds the model, the optimizer, the iteration (which is the schedule's position: the
schedules are pure functions of it), the data order's position, the augmentation generator, the global
torch RNG (dropout) and the counters. It is written through a temporary file and `os.replace`, so a
kill during the write leaves the previous checkpoint intact. It is read with `weights_only=True`: a
checkpoint file is data, and loading it must not run code.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from .atomic import replacing


class CheckpointError(ValueError):
    """An unreadable checkpoint (one line, naming the file)."""


def rng_state() -> dict:
    """The global RNG states that training draws from (torch CPU and CUDA, Python's random)."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x):
    # random.getstate() is nested tuples; a round trip through torch.save keeps them, but be lenient.
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def save(path: Path, state: dict) -> None:
    with replacing(path) as tmp:
        torch.save(state, tmp)


def load(path: Path) -> dict | None:
    """The checkpoint at `path`, or None when there is none."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a truncated or foreign file
        raise CheckpointError(
            f"{path}: unreadable checkpoint ({type(e).__name__}); delete it to restart this run from scratch"
        ) from None


def resume_iteration(path: Path) -> int:
    """The iteration a run resumes from (its checkpoint's): 0 when there is no checkpoint or it cannot be read
    (the run itself then stops with that error). What `make plan` and a campaign count as already trained."""
    try:
        state = load(path)
    except CheckpointError:
        return 0
    return int((state or {}).get("iteration", 0))


def remove(path: Path) -> None:
    Path(path).unlink(missing_ok=True)
