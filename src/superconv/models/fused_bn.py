"""BatchNorm over groups of images fused with the ReLU (and residual add) after it: a CPU kernel built at first use.

Why: on a 2-core CPU the paper's BN layers cost ~30% of a bf16 training step (superconv.profile), more than
their arithmetic: PyTorch runs one native batch_norm per BN group, concatenates the groups, then a separate ReLU
pass, and the backward adds a split, a concatenation and threshold_backward. `csrc/group_bn.cpp` does a layer in
two passes over each group's rows (both moments, then the output), and its backward in two (the sums, then the
gradients), vectorized over blocks of 8 channels. It computes what `GroupBatchNorm2d` followed by `relu_` (after
`+ residual`) computes, to fp32 rounding (bf16: to bf16 rounding); tests/test_fused_bn.py checks both precisions
against that path. Models call it through `batchnorm.bn_act`.

When it runs: training-mode `GroupBatchNorm2d` on CPU, channels_last fp32/bf16 input, without dropout between
the BN and the ReLU. Elsewhere (CUDA, NCHW, eval, `nn.BatchNorm2d` of protocol 1) the unfused modules run.
`SUPERCONV_FUSED_BN=0` turns it off (the unfused path; A/B benches), `=1` makes a failed build an error; unset,
a failed build (no C++ compiler, no ninja) warns once and falls back. The build is cached by torch under
`TORCH_EXTENSIONS_DIR` (default ~/.cache/torch_extensions), per CPU: it is compiled for the host's instructions.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("csrc") / "group_bn.cpp"
ENV = "SUPERCONV_FUSED_BN"  # "0": never; "1": always on CPU (a build failure is an error); unset: when it builds
# "1": build the portable bf16 conversions (GCC vector extensions) instead of the x86 intrinsics, which every
# AVX2 CPU takes; a process sees one build, so tests/test_fused_bn.py compares the two from a subprocess
GENERIC_ENV = "SUPERCONV_BN_GENERIC"

_state: dict = {"loaded": None, "error": None, "forced": None}


def set_enabled(on: bool | None) -> None:
    """Force the fused path on (True) or off (False) in this process, or back to `ENV` (None): tests and
    `make bench` A/B both paths in one process."""
    _state["forced"] = on


def _wanted() -> str:
    if _state["forced"] is not None:
        return "1" if _state["forced"] else "0"
    return os.environ.get(ENV, "")


def _cpu_tag() -> str:
    """A short hash of the CPU's flags: the kernel is compiled with -march=native, so one build per CPU kind."""
    try:
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError:
        flags = ""
    return hashlib.sha1((flags + SOURCE.read_text()).encode()).hexdigest()[:10]


def load() -> bool:
    """Build (first call on this CPU: ~20-40 s) and load the kernel; True when torch.ops.superconv_bn is usable."""
    if _state["loaded"] is not None:
        return _state["loaded"]
    try:
        # its import warns "No CUDA runtime is found" on CPU-only machines: not this CPU kernel's concern
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        from torch.utils.cpp_extension import load as build
        generic = os.environ.get(GENERIC_ENV) == "1"
        # -fopenmp: ATen's parallel_for is header code over `#pragma omp`; without it the kernel ran on one
        # thread (it links torch's own libgomp, already loaded, so torch.set_num_threads governs it)
        build(name=f"superconv_group_bn_{_cpu_tag()}{'_generic' if generic else ''}", sources=[str(SOURCE)],
              is_python_module=False, extra_ldflags=["-fopenmp"], verbose=False,
              extra_cflags=["-O3", "-march=native", "-fopenmp"] + (["-DSUPERCONV_BN_GENERIC"] if generic else []))
        _state["loaded"] = True
    except Exception as e:  # noqa: BLE001 - any build failure means the unfused path
        _state["loaded"], _state["error"] = False, f"{type(e).__name__}: {str(e).strip().splitlines()[-1:]}"
    return _state["loaded"]


def available() -> bool:
    """Whether the fused path may run in this process (`ENV`, `set_enabled`, and a successful build)."""
    want = _wanted()
    if want == "0":
        return False
    if load():
        return True
    if want == "1":
        raise RuntimeError(f"{ENV}=1 but the fused BatchNorm kernel did not build: {_state['error']}")
    if not _state.get("warned"):
        warnings.warn(f"fused BatchNorm kernel unavailable ({_state['error']}); using the unfused path",
                      stacklevel=2)
        _state["warned"] = True
    return False


def applies(x: torch.Tensor) -> bool:
    """Whether `x` (a BN input) is one the kernel takes: CPU, 4-d, channels_last contiguous, fp32 or bf16."""
    return (x.device.type == "cpu" and x.dim() == 4 and x.dtype in (torch.float32, torch.bfloat16)
            and x.is_contiguous(memory_format=torch.channels_last))


def group_bn_act(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, residual: torch.Tensor | None,
                 group: int, eps: float, relu: bool = True,
                 running: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None,
                 momentum: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(output, per-group means [k, C], per-group unbiased variances [k, C]) of relu(BN(x) [+ residual]) with
    statistics per `group` consecutive images. Under bf16 autocast `x` and `residual` arrive in bf16 (the
    convolutions' output) and the output is bf16, as the unfused batch_norm gives it.

    `running`: (mean, var, weight) buffers the kernel updates in place from this batch with `momentum`: Caffe's
    sums when weight is a tensor, PyTorch's running average when it is None (`GroupBatchNorm2d._accumulate`'s
    two rules, in C++: in Python they cost more than the layer's arithmetic at small widths)."""
    if residual is not None:  # e.g. option A's shortcut: a strided slice padded with zeros, not channels_last
        residual = residual.to(x.dtype).contiguous(memory_format=torch.channels_last)
    run_mean, run_var, run_weight = running if running is not None else (None, None, None)
    # an op with its own C++ autograd node (csrc: GroupBNAct); autocast passes custom ops through uncast
    y, mean, var = torch.ops.superconv_bn.bn_act(x, weight, bias, residual, group, eps, relu, run_mean, run_var,
                                                 run_weight, momentum)
    return y, mean, var
