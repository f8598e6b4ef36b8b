"""Caffe's BatchNorm (superconv.models.batchnorm): per-group statistics, bias-corrected running sums, resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from superconv import checkpoint
from superconv.config import ConfigError, identity
from superconv.models.batchnorm import GroupBatchNorm2d, make_bn
from superconv.models.resnet import build_resnet


def _x(n=8, c=4, seed=0, channels_last=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, 5, 5, generator=g) * 3 + 1
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@pytest.mark.parametrize("stats", ["caffe", "torch"])
@pytest.mark.parametrize("group", [None, 8])  # None and G = batch: the same thing
@pytest.mark.parametrize("channels_last", [True, False])
def test_group_equal_to_the_batch_is_nn_batchnorm(stats, group, channels_last):
    torch.manual_seed(0)
    ref = nn.BatchNorm2d(4, momentum=0.1)
    ours = GroupBatchNorm2d(4, momentum=0.1, group=group, stats=stats)
    with torch.no_grad():
        for m in (ref, ours):
            m.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
            m.bias.copy_(torch.tensor([0.0, 1.0, -1.0, 2.0]))
    x1 = _x(channels_last=channels_last).requires_grad_()
    x2 = x1.detach().clone().requires_grad_()
    y1, y2 = ref(x1), ours(x2)
    torch.testing.assert_close(y2, y1)
    w = torch.randn_like(y1)
    (y1 * w).sum().backward()
    (y2 * w).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad)
    if stats == "torch":  # PyTorch's own running average, exactly
        torch.testing.assert_close(ours.running_mean, ref.running_mean)
        torch.testing.assert_close(ours.running_var, ref.running_var)


@pytest.mark.parametrize("channels_last", [True, False])
def test_each_group_is_normalised_with_its_own_statistics(channels_last):
    # two groups of 4 images with very different means and scales
    x = torch.cat([_x(4, seed=1) * 0.1 - 5, _x(4, seed=2) * 10 + 7])
    x = x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    bn = GroupBatchNorm2d(4, momentum=0.1, group=4)
    y = bn(x)
    for part in (y[:4], y[4:]):  # mean 0, variance 1 per group and channel
        torch.testing.assert_close(part.mean((0, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)
        torch.testing.assert_close(part.var((0, 2, 3), unbiased=False), torch.ones(4), atol=1e-3, rtol=0)
    whole = nn.BatchNorm2d(4)(x)  # statistics over the whole batch would not normalise each group
    assert not torch.allclose(whole[:4].mean((0, 2, 3)), torch.zeros(4), atol=0.1)
    torch.testing.assert_close(y[:4], nn.functional.batch_norm(x[:4], None, None, training=True))


def test_running_statistics_follow_caffes_recurrence():
    """W <- f W + 1; S <- f S + mean; V <- f V + m/(m-1) var (m = values per channel in one group); the test
    network uses S/W, V/W. Here by hand, with the group statistics averaged over the groups."""
    f, group, k = 0.9, 2, 5
    bn = GroupBatchNorm2d(4, momentum=1 - f, group=group, stats="caffe")
    w_sum, s_sum, v_sum = 0.0, torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    for step in range(k):
        x = _x(6, seed=10 + step)
        bn(x)
        groups = x.double().view(3, group, 4, 5, 5)
        m = group * 5 * 5
        mean = groups.mean((1, 3, 4)).mean(0)
        var = (groups.var((1, 3, 4), unbiased=False) * m / (m - 1)).mean(0)
        w_sum, s_sum, v_sum = f * w_sum + 1, f * s_sum + mean, f * v_sum + var
    assert bn.weight_sum.item() == pytest.approx(w_sum, rel=1e-6)
    torch.testing.assert_close(bn.mean_sum.double(), s_sum, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.var_sum.double(), v_sum, rtol=1e-5, atol=1e-6)
    mean, var = bn.running_stats()
    torch.testing.assert_close(mean.double(), s_sum / w_sum, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(var.double(), v_sum / w_sum, rtol=1e-5, atol=1e-6)
    # bias-corrected: after one step the estimate is that step's statistics, with no initial 0 / 1 mixed in
    one = GroupBatchNorm2d(4, momentum=0.001, stats="caffe")
    x = _x(6, seed=3)
    one(x)
    torch.testing.assert_close(one.running_stats()[0], x.mean((0, 2, 3)))
    torch.testing.assert_close(one.running_stats()[1], x.var((0, 2, 3)))  # unbiased: m/(m-1)
    one.eval()
    torch.testing.assert_close(one(x), nn.functional.batch_norm(x, x.mean((0, 2, 3)), x.var((0, 2, 3)),
                                                                one.weight, one.bias))


def test_untrained_caffe_bn_uses_mean_0_variance_1():
    bn = GroupBatchNorm2d(4, momentum=0.05).eval()
    x = _x()
    torch.testing.assert_close(bn(x), x / (1 + 1e-5) ** 0.5)


def test_checkpoint_resume_keeps_the_accumulated_weight(tmp_path):
    torch.manual_seed(0)
    a = build_resnet(8, bn_momentum=0.001, bn_stats="caffe", bn_group=2)
    for seed in range(3):
        a(_x(4, 3, seed).contiguous(memory_format=torch.channels_last).view(4, 3, 5, 5).repeat(1, 1, 7, 7)[..., :32, :32])
    bn = a.stem[1]
    assert bn.weight_sum.item() == pytest.approx(1 + 0.999 + 0.999**2, rel=1e-6)
    checkpoint.save(tmp_path / "ckpt.pt", {"model": a.state_dict()})
    b = build_resnet(8, bn_momentum=0.001, bn_stats="caffe", bn_group=2)
    b.load_state_dict(checkpoint.load(tmp_path / "ckpt.pt")["model"])
    for name, buf in a.named_buffers():
        assert torch.equal(buf, dict(b.named_buffers())[name]), name
    assert "stem.1.weight_sum" in a.state_dict()


def test_a_training_batch_must_hold_whole_groups():
    with pytest.raises(ValueError, match="model.bn_group=3"):
        GroupBatchNorm2d(4, momentum=0.1, group=3)(_x(8))


def test_make_bn_keeps_nn_batchnorm_for_the_first_protocol():
    assert type(make_bn(16, 0.05, None, "torch")) is nn.BatchNorm2d
    assert type(make_bn(16, 0.05, None, "caffe")) is GroupBatchNorm2d


@pytest.mark.parametrize("kwargs, key", [({"bn_stats": "pytorch"}, "model.bn_stats"),
                                         ({"bn_group": 1}, "model.bn_group"),
                                         ({"bn_group": 12.5}, "model.bn_group"),
                                         ({"dropout_at": "head"}, "model.dropout_at")])
def test_bad_bn_settings_name_their_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        build_resnet(20, **kwargs)


def test_per_replica_group_must_divide_the_batch():
    from hydra import compose, initialize_config_dir

    from superconv.config import CONF_DIR
    from superconv.session import plain

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name="t"):
        good = plain(compose("config", overrides=["train.batch_size=800"]))
        bad = compose("config", overrides=["train.batch_size=1001"])
    assert good["model"]["bn_group"] == 100  # ResNet-110's 8 x 100 in the author's logs
    with pytest.raises(ConfigError, match=r"^train.batch_size=1001 must be a multiple of train.replicas=8"):
        plain(bad)


def test_runs_of_the_first_protocol_differ_in_identity():
    """A config.yaml written before the BN keys existed describes nn.BatchNorm2d over the whole batch: it must
    not pass for a protocol-2 configuration (and so never be pooled with one or resumed into)."""
    old = {"seed": 0, "model": {"depth": 20, "dropout": 0.0, "bn_momentum": 0.05}}
    new = {"seed": 0, "protocol_version": 2,
           "model": {"depth": 20, "dropout": 0.0, "bn_momentum": 0.05, "bn_stats": "caffe", "bn_group": 32,
                     "dropout_at": "fc"}}
    assert identity(old)["model"]["bn_stats"] == "torch" and identity(old)["protocol_version"] == 1
    from superconv.session import differences

    assert differences(identity(old), identity(new)) == ["model.bn_group", "model.bn_stats", "protocol_version"]
