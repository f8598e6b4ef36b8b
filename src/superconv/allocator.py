"""Keep freed activation buffers inside the process (glibc), instead of handing them back every step.

glibc serves allocations above its mmap threshold (128 KiB, growing to at most 32 MiB) with fresh mmap()
pages and returns them to the OS on free; every training step then page-faults its activations in
again (ResNet-56 at batch 128: 8 MiB per stage-1 activation, dozens per step). Measured on the 2-core
development CPU (2026-11-29; its run-to-run spread is ~10%): a fresh buffer is written at ~5 GB/s, a
reused one at ~30 GB/s; ResNet-20 at batch 1000 took 157k-224k page faults per step by default and
6k-11k with the settings below, at 308-400 vs 406-457 img/s; ResNet-56 at batch 128, 108 vs 122 img/s.
They used to be environment variables exported by the Makefile, which a direct
`python -m superconv.train`, a Hydra multirun or a SLURM job never saw; mallopt() applies them from
inside the process, to every allocation made afterwards.

The cost: the process keeps its peak memory until it exits (a training run's working set anyway).
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt() parameter numbers, from glibc's malloc.h
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
INT_MAX = 2**31 - 1  # mallopt takes an int
SETTINGS = {
    M_MMAP_THRESHOLD: INT_MAX,  # bytes: buffers below 2 GiB come from the heap, not from mmap
    M_TRIM_THRESHOLD: INT_MAX,  # bytes of free heap top kept before trimming: never trim in practice
    M_TOP_PAD: 1 << 30,  # bytes: grow the heap 1 GiB at a time (fewer brk calls)
}
# A user who sets glibc's own variables has chosen: those win and nothing is changed here.
ENV_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply SETTINGS once per process; True when glibc took them (False: not glibc, or the user set
    the variables above)."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if any(os.environ.get(name) for name in ENV_VARS):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in SETTINGS.items())


def describe() -> str:
    """What governs large allocations in this process, for run and bench records."""
    chosen = {name: os.environ[name] for name in ENV_VARS if os.environ.get(name)}
    if chosen:
        return "glibc, user environment: " + ", ".join(f"{k}={v}" for k, v in chosen.items())
    if _applied:
        return "glibc mallopt: mmap threshold 2 GiB, no trim, 1 GiB top pad (superconv.allocator)"
    return "system default"
