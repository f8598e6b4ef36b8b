"""The fast path (bf16 autocast, channels_last, torch.compile; CUDA when present) takes the same step as
plain fp32: one SGD update from the same weights and batch agrees to bf16 tolerance."""

from __future__ import annotations

import copy

import pytest
import torch

from superconv.config import ConfigError, validate
from superconv.loop import train_step
from superconv.models.resnet import build_resnet
from superconv.optim import build_optimizer
from superconv.session import prepare

FAST_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
OPTIM = {"name": "sgd", "momentum": 0.9, "weight_decay": 1e-4}


def _one_step(model, x, y, device, amp_dtype, channels_last, compiled, mode=None, steps=1):
    """`steps` SGD updates on the same batch (CUDA graphs record on a later call than the first)."""
    model = copy.deepcopy(model).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = build_optimizer(model, OPTIM, 0.1)
    step_model = torch.compile(model, mode=mode) if compiled else model
    for _ in range(steps):
        loss, correct = train_step(step_model, opt, x.to(device), y.to(device), amp_dtype, torch.device(device))
    return loss.float().item(), correct.item(), {k: v.detach().float().cpu() for k, v in model.state_dict().items()}


def _batch(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def _assert_same_update(before, ref, fast, rel=2e-2):
    """The whole update (every parameter's change, as one vector) agrees with the fp32 one to `rel`.

    Judged as one vector, not per parameter: the conv biases before BN get a zero true gradient, and
    small weight gradients that are sums of cancelling terms, so their own relative error says
    nothing about bf16 (measured here: 0.2% on the whole update of a ResNet-8).
    """
    keys = [k for k, v in before.items() if v.is_floating_point() and "running" not in k]
    d_ref = torch.cat([(ref[k] - before[k]).flatten() for k in keys])
    d_fast = torch.cat([(fast[k] - before[k]).flatten() for k in keys])
    assert d_ref.norm() > 0
    assert (d_fast - d_ref).norm().item() <= rel * d_ref.norm().item()


def _fp32_and_fast(device, amp_dtype, compiled):
    """(weights before, fp32 eager CPU result, fast-path result) of one step from the same ResNet-8 and batch."""
    torch.manual_seed(0)
    model = build_resnet(8, "paper", 10)
    x, y = _batch()
    before = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
    ref = _one_step(model, x, y, "cpu", None, channels_last=False, compiled=False)
    fast = _one_step(model, x, y, device, amp_dtype, channels_last=True, compiled=compiled)
    return before, ref, fast


@pytest.mark.parametrize("device", FAST_DEVICES)
def test_bf16_channels_last_step_matches_fp32(device):
    before, (ref_loss, _, ref), (fast_loss, _, fast) = _fp32_and_fast(device, torch.bfloat16, compiled=False)
    assert fast_loss == pytest.approx(ref_loss, rel=2e-2)
    _assert_same_update(before, ref, fast)


def test_the_check_catches_a_wrong_step():
    """The tolerance is tight enough to see a step at another LR (so the test above can fail)."""
    before, (_, _, ref), _ = _fp32_and_fast("cpu", None, compiled=False)
    other = {k: before[k] + 1.1 * (v - before[k]) if v.is_floating_point() else v for k, v in ref.items()}
    with pytest.raises(AssertionError):
        _assert_same_update(before, ref, other)


@pytest.mark.slow  # compiling costs ~1 min on a 2-core CPU
@pytest.mark.parametrize("device", FAST_DEVICES)
def test_compiled_step_matches_eager_fp32(device):
    amp = torch.bfloat16 if device == "cuda" else None
    before, (ref_loss, _, ref), (fast_loss, _, fast) = _fp32_and_fast(device, amp, compiled=True)
    assert fast_loss == pytest.approx(ref_loss, rel=2e-2)
    _assert_same_update(before, ref, fast)


# train.compile_mode (torch.compile's mode: reduce-overhead = CUDA graphs, max-autotune) and train.tf32 (TF32
# tensor cores for fp32 on CUDA): what the faster CUDA path is tried with, off by default.


@pytest.fixture
def composed(synthetic_data_dir, tmp_path):
    from superconv.bench import _compose

    def _c(*overrides):
        return _compose([f"paths.data_dir={synthetic_data_dir}", f"paths.results_dir={tmp_path}", "data=synthetic",
                         "model.depth=8", "train.batch_size=16", "train.replicas=2", "logger=none", *overrides])[0]

    return _c


def test_compile_mode_reaches_torch_compile(composed, monkeypatch):
    seen = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: seen.append(kw) or model)
    for mode in ("reduce-overhead", "max-autotune", None):
        c = composed("train.compile=true", "train.device=cpu", *([f"train.compile_mode={mode}"] if mode else []))
        prepare(c, validate(c))
    assert seen == [{"mode": "reduce-overhead"}, {"mode": "max-autotune"}, {"mode": None}]


@pytest.mark.parametrize("override,key", [("train.tf32=maybe", "train.tf32"), ("train.compile_mode=turbo", "turbo"),
                                          ("train.compile_mode=max-autotune", "train.compile=true")])
def test_bad_compile_mode_or_tf32_is_a_config_error(composed, override, key):
    c = composed("train.device=cpu", override, *(["train.compile=true"] if "turbo" in override else []))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        prepare(c, validate(c))


@pytest.mark.slow  # compiling costs ~1 min per mode on a 2-core CPU
@pytest.mark.parametrize("mode", ["reduce-overhead", "max-autotune-no-cudagraphs"])
@pytest.mark.parametrize("device", FAST_DEVICES)
def test_compile_mode_steps_match_eager_steps(device, mode):
    """Three updates through torch.compile(mode=...) (CUDA graphs record on the third) agree with eager ones
    on the same device and precision."""
    amp = torch.bfloat16 if device == "cuda" else None
    torch.manual_seed(0)
    model = build_resnet(8, "paper", 10)
    x, y = _batch()
    before = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
    eager_loss, _, eager = _one_step(model, x, y, device, amp, channels_last=True, compiled=False, steps=3)
    fast_loss, _, fast = _one_step(model, x, y, device, amp, channels_last=True, compiled=True, mode=mode, steps=3)
    assert fast_loss == pytest.approx(eager_loss, rel=2e-2)
    _assert_same_update(before, eager, fast)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="TF32 is a CUDA setting")
@pytest.mark.parametrize("tf32", [True, False])
def test_tf32_on_cuda_is_applied_and_its_fp32_step_matches(composed, tf32):
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        c = composed(f"train.tf32={str(tf32).lower()}", "train.device=cuda", "train.precision=fp32")
        prepare(c, validate(c))
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (tf32, tf32)
        before, (ref_loss, _, ref), (fast_loss, _, fast) = _fp32_and_fast("cuda", None, compiled=False)
        assert fast_loss == pytest.approx(ref_loss, rel=2e-2)
        _assert_same_update(before, ref, fast)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
