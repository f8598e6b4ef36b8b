"""Tests for superconv.models.resnet (both CIFAR ResNet variants)."""

import pytest
import torch
from torch import nn

from superconv.models.batchnorm import BN_TYPES, GroupBatchNorm2d
from superconv.models.resnet import build_resnet

torch.set_num_threads(2)


def _x(b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, 32, 32, generator=g)


# ---------------------------------------------------------------------------
# Parameter counts derived by hand (n = (depth - 2) / 6 blocks per stage).
# conv3x3(a->b) has 9ab weights (+ b biases in the paper variant); BN(c) has 2c
# (scale + shift); FC(64->10) has 640 + 10 = 650.
#
# paper variant (every conv has a bias; downsampling blocks keep the old width):
#   stem     conv 3*16*9 + 16 = 448, BN 32                          ->    480
#   block16  2*(16*16*9 + 16) + 2*32   = 4640 + 64                  ->  4,704
#   block32  2*(32*32*9 + 32) + 2*64   = 18496 + 128                -> 18,624
#   block64  2*(64*64*9 + 64) + 2*128  = 73856 + 256                -> 74,112
#   stage 1 = n*block16; stage 2 = block16 (downsampling, 16 wide) + (n-1)*block32;
#   stage 3 = block32 (downsampling, 32 wide) + (n-1)*block64
#   total = 480 + 650 + (n+1)*4704 + n*18624 + (n-1)*74112
#
# standard variant (no conv biases; downsampling blocks widen in conv1):
#   stem     3*16*9 + 32                         = 432 + 32         ->    464
#   block16  2*16*16*9 + 2*32                    = 4608 + 64        ->  4,672
#   down32   16*32*9 + 32*32*9 + 2*64            = 4608+9216+128    -> 13,952
#   block32  2*32*32*9 + 2*64                    = 18432 + 128      -> 18,560
#   down64   32*64*9 + 64*64*9 + 2*128           = 18432+36864+256  -> 55,552
#   block64  2*64*64*9 + 2*128                   = 73728 + 256      -> 73,984
#   total = 464 + 650 + n*4672 + 13952 + (n-1)*18560 + 55552 + (n-1)*73984
# ---------------------------------------------------------------------------
def paper_count(n, fc=650):
    return 480 + fc + (n + 1) * 4704 + n * 18624 + (n - 1) * 74112


def standard_count(n, fc=650):
    return 464 + fc + n * 4672 + 13952 + (n - 1) * 18560 + 55552 + (n - 1) * 73984


EXPECTED_PARAMS = {
    ("paper", 20): 224_042,
    ("paper", 56): 808_682,  # PAPER.md §1
    ("paper", 110): 1_685_642,
    ("standard", 20): 269_722,
    ("standard", 56): 853_018,  # PAPER.md §1
    ("standard", 110): 1_727_962,
}


def test_hand_formulas_match_hardcoded_counts():
    for (variant, depth), expected in EXPECTED_PARAMS.items():
        n = (depth - 2) // 6
        f = paper_count if variant == "paper" else standard_count
        assert f(n) == expected, (variant, depth)


@pytest.mark.parametrize("variant,depth", sorted(EXPECTED_PARAMS))
def test_parameter_count(variant, depth):
    model = build_resnet(depth, variant)
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMS[(variant, depth)]


@pytest.mark.parametrize("variant", ["paper", "standard"])
def test_parameter_count_cifar100(variant):
    # FC(64->100) = 6400 + 100 = 6500 instead of 650
    f = paper_count if variant == "paper" else standard_count
    model = build_resnet(20, variant, num_classes=100)
    assert sum(p.numel() for p in model.parameters()) == f(3, fc=6500)


@pytest.mark.parametrize("variant", ["paper", "standard"])
@pytest.mark.parametrize("depth,num_classes", [(20, 10), (20, 100), (56, 10)])
def test_output_shape(variant, depth, num_classes):
    model = build_resnet(depth, variant, num_classes=num_classes).eval()
    with torch.no_grad():
        out = model(_x(2))
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("stage,c,hw", [("stage2", 16, 32), ("stage3", 32, 16)])
def test_paper_downsampling_block_shapes(stage, c, hw):
    model = build_resnet(20, "paper")
    block = getattr(model, stage)[0]
    x = torch.randn(2, c, hw, hw)
    with torch.no_grad():
        res = block.residual(x)
        sc = block.shortcut(x)
        out = block(x)
    assert res.shape == (2, c, hw // 2, hw // 2)  # conv path keeps the old width
    assert sc.shape == (2, c, hw // 2, hw // 2)  # 3x3/2 avg pool, ceil mode
    assert isinstance(block.shortcut, nn.AvgPool2d)
    assert block.conv1.stride == (2, 2) and block.conv1.out_channels == c
    assert out.shape == (2, 2 * c, hw // 2, hw // 2)
    assert torch.equal(out[:, c:], torch.zeros_like(out[:, c:]))  # appended zero channels
    assert torch.allclose(out[:, :c], torch.relu(res + sc))
    assert (out[:, :c] != 0).any()


def test_paper_shortcut_pool_matches_caffe_edges():
    # With padding 0 the last (partial) window is averaged over the elements inside the
    # input, as Caffe does: a constant input stays constant, edges included.
    pool = build_resnet(20, "paper").stage2[0].shortcut
    out = pool(torch.full((1, 1, 32, 32), 3.0))
    assert out.shape == (1, 1, 16, 16)
    assert torch.allclose(out, torch.full_like(out, 3.0))
    # the window of output (0, 15) covers columns 30, 31 only
    x = torch.arange(32.0).expand(1, 1, 32, 32)
    assert pool(x)[0, 0, 0, 15].item() == pytest.approx(30.5)


@pytest.mark.parametrize("stage,c,hw", [("stage2", 16, 32), ("stage3", 32, 16)])
def test_standard_downsampling_block_shapes(stage, c, hw):
    block = getattr(build_resnet(20, "standard"), stage)[0]
    x = torch.randn(2, c, hw, hw)
    with torch.no_grad():
        sc = block.shortcut(x)
        out = block(x)
    assert block.conv1.stride == (2, 2) and block.conv1.out_channels == 2 * c
    assert sc.shape == (2, 2 * c, hw // 2, hw // 2)
    assert torch.equal(sc[:, :c], x[:, :, ::2, ::2])
    assert torch.equal(sc[:, c:], torch.zeros_like(sc[:, c:]))
    assert out.shape == (2, 2 * c, hw // 2, hw // 2)


@pytest.mark.parametrize(
    "kwargs,key",
    [
        ({"depth": 21}, "model.depth"),
        ({"depth": 2}, "model.depth"),
        ({"depth": 56.0}, "model.depth"),
        ({"depth": 20, "variant": "resnet"}, "model.variant"),
        ({"depth": 20, "dropout": 1.0}, "model.dropout"),
        ({"depth": 20, "dropout": -0.1}, "model.dropout"),
        ({"depth": 20, "bn_momentum": 0.0}, "model.bn_momentum"),
        ({"depth": 20, "bn_momentum": 1.5}, "model.bn_momentum"),
    ],
)
def test_invalid_arguments(kwargs, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        build_resnet(**kwargs)


def test_dropout_only_in_train_mode():
    torch.manual_seed(0)
    model = build_resnet(20, "paper", dropout=0.5)
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 1
    x = _x(2)
    model.train()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert not torch.allclose(a, b)
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(a, b)


@pytest.mark.parametrize("variant", ["paper", "standard"])
def test_no_dropout_module_when_zero(variant):
    model = build_resnet(20, variant, dropout=0.0)
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())


@pytest.mark.parametrize("variant", ["paper", "standard"])
@pytest.mark.parametrize("stats, group, kind", [("caffe", None, GroupBatchNorm2d), ("caffe", 125, GroupBatchNorm2d),
                                               ("torch", 125, GroupBatchNorm2d), ("torch", None, nn.BatchNorm2d)])
def test_bn_settings_everywhere(variant, stats, group, kind):
    model = build_resnet(20, variant, bn_momentum=0.05, bn_stats=stats, bn_group=group)
    bns = [m for m in model.modules() if isinstance(m, BN_TYPES)]
    assert len(bns) == 1 + 2 * 9  # stem + 2 per block, 9 blocks
    assert all(type(m) is kind and m.momentum == 0.05 for m in bns)
    assert all(getattr(m, "group", None) == group and getattr(m, "stats", "torch") == stats for m in bns)


def test_conv_biases():
    paper = [m for m in build_resnet(20, "paper").modules() if isinstance(m, nn.Conv2d)]
    std = [m for m in build_resnet(20, "standard").modules() if isinstance(m, nn.Conv2d)]
    assert len(paper) == len(std) == 19
    assert all(m.bias is not None for m in paper)
    assert all(m.bias is None for m in std)


@pytest.mark.parametrize("variant", ["paper", "standard"])
def test_init(variant):
    torch.manual_seed(0)
    model = build_resnet(56, variant)
    for m in model.modules():
        if isinstance(m, BN_TYPES):
            assert torch.equal(m.weight, torch.ones_like(m.weight))
            assert torch.equal(m.bias, torch.zeros_like(m.bias))
        elif isinstance(m, nn.Conv2d) and m.bias is not None:
            assert torch.equal(m.bias, torch.zeros_like(m.bias))
    # He/MSRA std sqrt(2/fan_in) on the widest convs (64*9 fan in, 36,864 weights)
    w = model.stage3[-1].conv2.weight
    assert w.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.03)
    # Caffe xavier: U(-a, a), a = sqrt(3/64)
    a = (3 / 64) ** 0.5
    assert model.fc.weight.abs().max().item() <= a
    assert model.fc.weight.abs().max().item() > 0.8 * a
    assert torch.equal(model.fc.bias, torch.zeros_like(model.fc.bias))


@pytest.mark.parametrize("variant", ["paper", "standard"])
def test_channels_last_bf16_autocast_forward_backward(variant):
    model = build_resnet(20, variant, dropout=0.2).to(memory_format=torch.channels_last).train()
    x = _x(2).to(memory_format=torch.channels_last)
    y = torch.tensor([1, 7])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        loss = nn.functional.cross_entropy(out, y)
    assert out.shape == (2, 10)
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    # matches the fp32 contiguous result in eval mode up to bf16 precision
    model.eval()
    with torch.no_grad():
        ref = model.to(memory_format=torch.contiguous_format)(_x(2))
        model.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert torch.allclose(low.float(), ref, atol=0.1 * ref.abs().max().item() + 1e-3)
