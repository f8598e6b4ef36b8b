"""Whole-file writes that a crash cannot leave half done: the one helper of the results store, checkpoints,
per-experiment tables, figures and the report.

Every writer goes through a temporary file in the target's own directory (same file system, so the final
`os.replace` is atomic) named after the process, so two processes never share one; a reader then sees the
old file or the new one, never a mix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on an exception it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write(path: str | os.PathLike, data: bytes | str, *, fsync: bool = False) -> None:
    """Write `data` (text as UTF-8) to `path` atomically; `fsync`: on disk before the rename (results store:
    a DONE that survives a power cut must not point at a summary that did not)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with replacing(path) as tmp, open(tmp, "wb") as f:
        f.write(raw)
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def write_if_changed(path: str | os.PathLike, data: bytes) -> bool:
    """`atomic_write`, skipped when `path` already holds these bytes (so `make figures` leaves unchanged files'
    mtimes alone); True when written."""
    path = Path(path)
    if path.exists() and path.read_bytes() == data:
        return False
    atomic_write(path, data)
    return True
