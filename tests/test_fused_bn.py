"""The fused BatchNorm+ReLU CPU kernel (`superconv.models.fused_bn`) computes what the unfused modules compute,
in fp32 and bf16, layer by layer and for a whole training step; where it does not apply the unfused path runs;
a failed build falls back with a warning, or is an error when the kernel was asked for."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from superconv.models import fused_bn
from superconv.models.batchnorm import GroupBatchNorm2d, bn_act, fused_share
from superconv.models.resnet import build_resnet

DTYPES = [torch.float32, torch.bfloat16]


@pytest.fixture(autouse=True)
def _default_state():
    yield
    fused_bn.set_enabled(None)


@pytest.fixture
def calls(monkeypatch):
    """How many times the fused kernel ran."""
    n = []
    real = fused_bn.group_bn_act
    monkeypatch.setattr(fused_bn, "group_bn_act", lambda *a, **k: n.append(1) or real(*a, **k))
    return n


def _kernel():
    if not fused_bn.load():
        pytest.skip(f"the fused kernel did not build on this machine: {fused_bn._state['error']}")


def _cl(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


def _close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    """Within rounding: fp32 to ~1e-5 of the tensor's scale, bf16 to ~1% (an 8-bit mantissa per stored value)."""
    assert got.dtype == want.dtype and got.shape == want.shape, what
    scale = float(want.float().abs().max()) or 1.0
    tol = 2e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got.float(), want.float(), rtol=tol, atol=tol * scale, msg=what)


def _layer(dtype, group, residual: bool, on: bool, channels: int = 8):
    torch.manual_seed(0)
    x = _cl((torch.randn(16, channels, 6, 6) * 2 + 1).to(dtype)).requires_grad_()
    r = _cl(torch.randn(16, channels, 6, 6).to(dtype)).requires_grad_() if residual else None
    bn = GroupBatchNorm2d(channels, 0.05, group)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    fused_bn.set_enabled(on)
    y = bn_act(bn, x, r)
    y.backward(_cl(torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(dtype)))
    return {"y": y.detach(), "dx": x.grad, "dweight": bn.weight.grad, "dbias": bn.bias.grad,
            "dresidual": r.grad if residual else None, "mean_sum": bn.mean_sum, "var_sum": bn.var_sum,
            "weight_sum": bn.weight_sum}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("group", [None, 4])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("channels", [8, 12])  # vectorized (multiples of 8) and the scalar fallback
def test_fused_layer_matches_the_unfused_modules(dtype, group, residual, channels, calls):
    _kernel()
    want = _layer(dtype, group, residual, on=False, channels=channels)
    assert not calls
    got = _layer(dtype, group, residual, on=True, channels=channels)
    assert len(calls) == 1
    for k, v in want.items():
        if v is not None:
            _close(got[k], v, dtype, k)
    assert got["y"].is_contiguous(memory_format=torch.channels_last) and (got["y"] >= 0).all()
    assert (got["y"] == 0).any()  # the ReLU clipped something, so its mask was exercised


@pytest.mark.parametrize("stats,momentum", [("caffe", 0.05), ("caffe", 0.001), ("torch", 0.1), ("torch", 0.7)])
def test_the_kernel_updates_the_running_statistics_by_the_modules_rule(stats, momentum):
    """The kernel updates the buffers itself (Caffe's sums and weight, or PyTorch's average, both branches of its
    lerp): over several steps they must stay what the module's own `_accumulate` gives, to fp32 rounding."""
    _kernel()
    g = torch.Generator().manual_seed(0)
    batches = [_cl(torch.randn(16, 8, 4, 4, generator=g) * (i + 1) + 3 * i) for i in range(6)]

    def buffers(on: bool) -> dict:
        bn = GroupBatchNorm2d(8, momentum, 4, stats)
        fused_bn.set_enabled(on)
        with torch.no_grad():
            for x in batches:
                bn_act(bn, x)
        assert bn.ran_fused is on
        return {k: v.clone() for k, v in bn.named_buffers()}

    want, got = buffers(False), buffers(True)
    assert got.keys() == want.keys() and len(want) == (3 if stats == "caffe" else 2)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=2e-6, atol=1e-6, msg=k)


def test_the_fused_op_runs_without_autograd_too():
    """Under inference mode the dispatcher skips the autograd node: the op's plain CPU kernel must give the same
    output and update the running statistics the same way."""
    _kernel()
    x = _cl(torch.randn(8, 8, 4, 4) * 2 + 1)
    a, b = GroupBatchNorm2d(8, 0.05, 4), GroupBatchNorm2d(8, 0.05, 4)
    fused_bn.set_enabled(True)
    y = bn_act(a, x)
    with torch.inference_mode():
        y_inf = bn_act(b, x)
    assert a.ran_fused and b.ran_fused and not y_inf.requires_grad
    assert torch.equal(y.detach(), y_inf)
    for (k, va), vb in zip(a.named_buffers(), b.buffers()):
        assert torch.equal(va, vb), k


def _step(variant: str, dtype, on: bool):
    torch.manual_seed(0)
    model = build_resnet(8, variant, bn_group=4).to(memory_format=torch.channels_last).train()
    # seed 1: with seed 0's images one pre-ReLU value of the standard net lies within fp32 rounding of 0, so
    # any two fp32 implementations (native BN at 1 vs 2 threads too) may mask it differently: ~1% in the grads
    x = _cl(torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    y = torch.randint(0, 10, (8,), generator=torch.Generator().manual_seed(0))
    fused_bn.set_enabled(on)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    return loss.detach(), grads, {n: b for n, b in model.named_buffers()}


def _rel(got: dict, want: dict, name: str) -> float:
    return float((got[name].float() - want[name].float()).norm() / want[name].float().norm())


def _bias_before_bn(name: str) -> bool:
    """A conv bias followed by BN: its gradient is 0 (BN subtracts the mean), so only rounding noise is left."""
    return name.endswith(".bias") and (name.startswith("stem.0") or ".conv" in name)


@pytest.mark.parametrize("variant", ["paper", "standard"])
def test_a_training_step_through_the_fused_kernel_matches_the_unfused_one(variant, calls):
    """Both shortcuts (the paper's average pool; option A's padded slice, not channels_last) and the stem. fp32:
    equal to rounding. bf16: at this tiny batch a bf16 step's gradients differ from fp32's by ~15% in the first
    layers whichever path runs (measured), so the fused bf16 step must be as close to fp32 as the unfused one."""
    _kernel()
    loss, grads, bufs = _step(variant, torch.float32, on=False)
    loss_f, grads_f, bufs_f = _step(variant, torch.float32, on=True)
    assert len(calls) == 7  # the stem's BN+ReLU and two per block (3 blocks at depth 8)
    assert float(loss_f) == pytest.approx(float(loss), rel=1e-5)
    for n in grads:
        if _bias_before_bn(n):
            scale = float(grads[n[:-4] + "weight"].norm())
            assert float(grads_f[n].norm()) < 1e-3 * scale and float(grads[n].norm()) < 1e-3 * scale, n
        else:
            assert _rel(grads_f, grads, n) < 1e-4, n
    for n, b in bufs.items():
        _close(bufs_f[n], b, torch.float32, n)
    loss_u16, grads_u16, _ = _step(variant, torch.bfloat16, on=False)
    loss_f16, grads_f16, bufs_f16 = _step(variant, torch.bfloat16, on=True)
    assert len(calls) == 14
    assert abs(float(loss_f16) - float(loss)) <= 2 * abs(float(loss_u16) - float(loss)) + 2e-3
    for n in grads:
        if not _bias_before_bn(n):
            assert _rel(grads_f16, grads, n) <= 1.5 * _rel(grads_u16, grads, n) + 0.02, n
    for n, b in bufs.items():
        _close(bufs_f16[n], b, torch.bfloat16, n)


def test_the_unfused_path_runs_where_the_kernel_does_not_apply(calls):
    _kernel()
    fused_bn.set_enabled(True)
    bn = GroupBatchNorm2d(8, 0.05, 4)
    x = torch.randn(8, 8, 4, 4)
    bn_act(bn, x)  # NCHW
    bn.eval()
    bn_act(bn, _cl(x))  # evaluation: running statistics
    assert not calls
    bn.train()
    bn_act(bn, _cl(x))
    assert len(calls) == 1
    fused_bn.set_enabled(False)
    bn_act(bn, _cl(x))
    assert len(calls) == 1
    # the author's dropout placement sits between BN and ReLU: such blocks never fuse
    fused_bn.set_enabled(True)
    model = build_resnet(8, "paper", dropout=0.2, dropout_at="blocks", bn_group=4)
    model = model.to(memory_format=torch.channels_last).train()
    calls.clear()
    model(_cl(torch.randn(8, 3, 32, 32)))
    assert len(calls) == 1  # the stem only
    assert fused_share(model) == "1/7"  # what a run's summary records
    fused_bn.set_enabled(False)
    model(_cl(torch.randn(8, 3, 32, 32)))
    assert fused_share(model) == "0/7"


def test_a_batch_that_is_not_whole_groups_is_refused_on_the_fused_path():
    _kernel()
    fused_bn.set_enabled(True)
    with pytest.raises(ValueError, match=r"model.bn_group=4: a training batch of 6 images"):
        bn_act(GroupBatchNorm2d(8, 0.05, 4), _cl(torch.randn(6, 8, 4, 4)))


def test_a_failed_build_warns_and_falls_back_unless_the_kernel_was_asked_for(monkeypatch, calls):
    monkeypatch.setitem(fused_bn._state, "loaded", False)
    monkeypatch.setitem(fused_bn._state, "error", "RuntimeError: no C++ compiler")
    monkeypatch.setitem(fused_bn._state, "warned", False)
    monkeypatch.delenv(fused_bn.ENV, raising=False)
    bn = GroupBatchNorm2d(8, 0.05, 4)
    x = _cl(torch.randn(8, 8, 4, 4))
    with pytest.warns(UserWarning, match="fused BatchNorm kernel unavailable .*no C\\+\\+ compiler"):
        out = bn_act(bn, x)
    assert out.shape == x.shape and not calls
    monkeypatch.setenv(fused_bn.ENV, "1")
    with pytest.raises(RuntimeError, match="SUPERCONV_FUSED_BN=1 but the fused BatchNorm kernel did not build: "
                                           "RuntimeError: no C\\+\\+ compiler"):
        bn_act(bn, x)
    monkeypatch.setenv(fused_bn.ENV, "0")
    bn_act(bn, x)  # off: no warning, no error
    assert not calls


def test_statistics_stay_exact_far_from_zero():
    """Activations with a mean 100x their sd (sum-of-squares formulas lose the variance there): the fused
    statistics agree with float64 ones to fp32 rounding."""
    _kernel()
    x64 = torch.randn(8, 16, 8, 8, dtype=torch.float64) * 0.5 + 50.0
    y, means, variances = fused_bn.group_bn_act(_cl(x64.float()), torch.ones(16), torch.zeros(16), None, 4, 1e-5,
                                                relu=False)
    groups = x64.view(2, 4, 16, 8, 8)
    torch.testing.assert_close(means.double(), groups.mean(dim=(1, 3, 4)), rtol=1e-6, atol=0)
    torch.testing.assert_close(variances.double(), groups.var(dim=(1, 3, 4)), rtol=1e-4, atol=0)
    assert float(y.float().std()) == pytest.approx(1.0, rel=1e-3)


def test_the_kernel_runs_on_torchs_intra_op_threads():
    """Built without OpenMP, ATen's parallel_for is a serial loop: the kernel ran on one thread whatever
    torch.set_num_threads said (as it did until the build passed -fopenmp)."""
    _kernel()
    before = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            assert torch.ops.superconv_bn.threads_used(64) == n
    finally:
        torch.set_num_threads(before)


def _same_values(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    """Equal value for value, NaN where the other has NaN (signed zeros compare equal)."""
    assert got.dtype == want.dtype and torch.equal(got.isnan(), want.isnan()), what
    assert torch.equal(got.nan_to_num(0.0), want.nan_to_num(0.0)), what


def _rounding_case(residual: bool):
    """Inputs of a bf16 layer, with a NaN in one group. Multiples of 1/8 in [-8, 8): every sum of the statistics is exact in fp32, so both precisions get the same statistics
    whatever the order of summation, and their outputs agree before rounding."""
    torch.manual_seed(0)
    x = _cl((torch.randint(-64, 64, (64, 16, 32, 32)) / 8).bfloat16())
    x[5, 3, 2, 2] = float("nan")  # channel 3 of images 4-7 (the second group of 4): NaN statistics and outputs
    r = _cl(torch.randn(64, 16, 32, 32).bfloat16()) if residual else None
    w, b = torch.rand(16) + 0.5, torch.randn(16)
    return x, r, w, b


@pytest.mark.parametrize("residual", [False, True])
def test_bf16_outputs_are_the_fp32_outputs_rounded_as_torch_rounds(residual):
    """The kernel rounds in its own code (not torch's conversion): the same layer on the same values in fp32,
    rounded by torch (BN output first, then the sum with the residual, as the unfused bf16 path does), must give
    the bf16 layer's output value for value, NaN included."""
    _kernel()
    x, r, w, b = _rounding_case(residual)
    y16, m16, v16 = fused_bn.group_bn_act(x, w, b, r, 4, 1e-5)
    bn32, m32, v32 = fused_bn.group_bn_act(x.float(), w, b, None, 4, 1e-5, relu=False)
    want = bn32.bfloat16()
    if residual:
        want = (want.float() + r.float()).bfloat16()
    want = torch.relu(want.float()).bfloat16()
    _same_values(y16, want, "output")
    assert y16[4:8, 3].isnan().all() and int(y16.isnan().sum()) == 4 * 32 * 32
    _same_values(m16, m32, "means")
    _same_values(v16, v32, "variances")


def test_bf16_rounding_breaks_ties_to_even():
    """Outputs that lie exactly halfway between two bf16 values: x = +-1 in a checkerboard (each group's mean is
    exactly 0 and its variance 1; eps 0 makes the scale exactly the weight), weights 1 + (2c + 1) / 256. Even
    channels round down, odd ones up, as torch's conversion does."""
    _kernel()
    c = torch.arange(16)
    sign = (torch.arange(4).view(4, 1) + torch.arange(4)) % 2 * -2 + 1  # +1 at (0, 0)
    x = _cl(sign.expand(8, 16, 4, 4).bfloat16())
    w = 1 + (2 * c + 1) / 256.0
    y, _, _ = fused_bn.group_bn_act(x, w, torch.zeros(16), None, 4, 0.0, relu=False)
    want = (sign.view(1, 1, 4, 4) * w.view(1, 16, 1, 1)).bfloat16()  # torch rounds the exact fp32 products
    _same_values(y, want.expand(8, 16, 4, 4), "output")
    assert torch.equal(y[0, :, 0, 0].float() - 1, torch.where(c % 2 == 0, 2 * c, 2 * c + 2) / 256.0)


_BOTH_BUILDS = """
import sys, torch
from superconv.models import fused_bn
assert fused_bn.load(), fused_bn._state["error"]
out = {}
for dtype in (torch.float32, torch.bfloat16):
    g = torch.Generator().manual_seed(0)
    x, r, dy = ((torch.randint(-64, 64, (16, 16, 8, 8), generator=g) / 8).to(dtype)
                .contiguous(memory_format=torch.channels_last) for _ in range(3))  # exact sums, as above
    w, b = torch.rand(16, generator=g) + 0.5, torch.randn(16, generator=g)
    y, mean, invstd, var = torch.ops.superconv_bn.forward(x, w, b, r, 4, 1e-5, True)
    dx, dw, db, dz = torch.ops.superconv_bn.backward(dy, x, y, mean, invstd, w, 4, True, True)
    out[str(dtype)] = [y, mean, invstd, var, dx, dw, db, dz]
torch.save(out, sys.argv[1])
"""


@pytest.mark.slow  # a second build of the kernel: ~25 s
def test_the_portable_bf16_conversions_match_the_x86_ones(tmp_path):
    """x86 CPUs build the bf16 conversions with intrinsics; others with GCC vector extensions
    (`SUPERCONV_BN_GENERIC=1` forces those here). Both builds give the same bits in fp32 and bf16. Exact data:
    on random values the two builds' statistics differ in the last bit now and then (GCC contracts a * b + c
    into an FMA in one build and not the other), which says nothing about the conversions."""
    import os
    import subprocess
    import sys

    _kernel()
    files = {}
    for generic in ("0", "1"):
        files[generic] = tmp_path / f"generic{generic}.pt"
        env = {**os.environ, fused_bn.GENERIC_ENV: generic, fused_bn.ENV: "1"}
        subprocess.run([sys.executable, "-c", _BOTH_BUILDS, str(files[generic])], env=env, check=True)
    x86, portable = (torch.load(files[k]) for k in ("0", "1"))
    for dtype, tensors in x86.items():
        for i, (a, b) in enumerate(zip(tensors, portable[dtype])):
            assert torch.equal(a, b), f"{dtype} output {i}"
