"""One process per run directory: two `make reproduce` (or sweeps) side by side share the work.

A sweep skips finished runs (DONE) and resumes unfinished ones from their checkpoint. Two processes walking
the same suite would both resume the same unfinished run and write into one directory. So each run is
claimed before anything is written: an exclusive, non-blocking `flock` on a lock file named after the run
directory's absolute path. The second process sees the claim, says so and moves on to the next run; the
kernel drops the claim when its holder exits, crashed or not, so no stale lock survives a kill.

The lock files live under the system's temporary folder, never in results/ (nothing there but runs), so
the claim holds among the processes of one machine (a workstation, a one-node SLURM cluster), not across
machines sharing a file system.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path

LOCK_DIR = Path(tempfile.gettempdir()) / "superconv-locks"


class RunLock:
    """`acquire()` -> True when this process now owns the run directory, False when another one does."""

    def __init__(self, run_dir: str | os.PathLike, lock_dir: Path | None = None):
        self.run_dir = Path(run_dir).resolve()
        digest = hashlib.sha1(str(self.run_dir).encode()).hexdigest()[:20]
        self.path = (lock_dir or LOCK_DIR) / f"{digest}.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {self.run_dir}\n".encode())  # who holds it, for a curious reader
        self._fd = fd
        return True

    def holder(self) -> int | None:
        """The pid of the process that holds this run's claim, None when none does (or, off Linux, when it
        cannot be told). Read from the kernel's lock table, /proc/locks, without taking the lock: taking it,
        even shared and for an instant, would make a worker that claims the run at that moment skip it."""
        try:
            st = self.path.stat()
            table = Path("/proc/locks").read_text(encoding="ascii", errors="replace")
        except OSError:
            return None
        me = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        for line in table.splitlines():  # "1: FLOCK  ADVISORY  WRITE 11895 fe:00:2147707 0 EOF"
            parts = line.split()  # a process waiting for a lock is listed as "1: -> FLOCK ...": not a holder
            if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == me:
                return int(parts[4])
        return None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
