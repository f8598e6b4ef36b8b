"""The machine a run or a benchmark runs on: device and precision choice, and how they are described.

Apart from the run set-up (superconv.session) so that `superconv.bench`, `make plan` and the GPU campaign can
probe the machine without building a run. Every summary and bench record names its hardware with
`describe_device` and its code with `git_sha`.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

from .config import ConfigError

__all__ = ["git_sha", "describe_device", "pick_device", "cpu_has_native_bf16", "pick_precision"]


# What the project writes itself (`make figures`, `make aggregate`, runs): changing them is not changing the code,
# so they never make a run's sha `-dirty` (a two-worker suite regenerates the report when the first worker ends,
# while the second is still running).
GENERATED = ("results", "paper_figures/figures", "paper_figures/REPORT.md", "README.md")


def git_sha(root: Path | None = None) -> str:
    """The commit of the code that ran, with `-dirty` when tracked files other than GENERATED had uncommitted
    changes. `root`: a directory of the checkout (default: this package's).

    SUPERCONV_GIT_SHA, when set, wins: a copy of the tree on another machine (a GPU lent for minutes, a
    cluster node) may carry no .git, or a stale one that names another commit (seen on the GPU machine).
    """
    if os.environ.get("SUPERCONV_GIT_SHA"):
        return os.environ["SUPERCONV_GIT_SHA"]
    here = str(root or Path(__file__).resolve().parent)
    try:
        sha = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no", "--",
                                ":(top)", *(f":(top,exclude){p}" for p in GENERATED)],
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {cpu}, {torch.get_num_threads()} threads"


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda: no CUDA device is available; use auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 instructions (AVX512-BF16 or AMX-BF16).

    Without them oneDNN emulates bf16 and autocast is ~10x *slower* than fp32 (measured on an AVX2-only
    AMD EPYC: ResNet-20 at batch 128, 423 img/s fp32 vs 43 bf16); with them it is ~2x faster.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_precision(name: str, device: torch.device) -> torch.dtype | None:
    """`auto`: bf16 autocast where it is faster (CUDA with bf16; CPUs with bf16 instructions), else fp32."""
    if name == "fp32":
        return None
    if name == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_native_bf16() else None
