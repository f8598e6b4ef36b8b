"""CIFAR ResNets (depth 6n+2) in two variants.

``paper``
    The network of the official Caffe code of Smith & Topin, "Super-Convergence"
    (see ``docs/PROTOCOL.md`` §1). Stride-1 stem conv3x3(3->16)-BN-ReLU,
    3 stages of n basic blocks at 16/32/64 channels, global 8x8 average pool, FC.
    All convolutions have biases. The first block of stages 2 and 3 is unusual:

    * it keeps the *old* width (16->16, 32->32) and its conv1 has stride 2;
    * its shortcut is a 3x3 average pool, stride 2, no padding, with Caffe's
      round-up output size (PyTorch ``ceil_mode=True``): 32x32 -> 16x16, 16x16 -> 8x8,
      matching the conv path. For the last, partial window both Caffe and PyTorch
      divide by the number of elements actually inside the input (padding is 0);
    * after add+ReLU its output is concatenated with as many zero channels,
      doubling the width (16 -> 32, 32 -> 64) for the next block.

    Init as the Caffe net files: "msra" filler for convs (= ``kaiming_normal_``,
    fan_in, std sqrt(2/fan_in)), conv biases 0; Caffe's "xavier" filler for the FC
    weight (uniform in [-a, a], a = sqrt(3/fan_in)), FC bias 0; BN weight 1, bias 0.

``standard``
    He et al. 2016 CIFAR ResNet, "option A": no conv biases, stride-1 stem
    conv3x3(3->16)-BN-ReLU, the first block of stages 2/3 doubles the width in its
    stride-2 conv1, and its shortcut is the identity subsampled with stride 2
    (``x[:, :, ::2, ::2]``) with zero channels appended (the identity goes onto the
    first channels; appending or padding both sides is the same network up to a
    permutation of channels). Init: the same as ``paper`` (Kaiming normal fan_in
    for convs, Caffe-style Xavier uniform for the FC), our choice, so that the two
    variants differ only in their architecture.

BatchNorm (``superconv.models.batchnorm``): ``bn_stats="caffe"`` is Caffe's BatchNormLayer (bias-corrected
running sums; the paper protocol), ``"torch"`` nn.BatchNorm2d's running average; ``bn_group`` images per
statistics group (the author's per-GPU 125 of 1000), None for the whole batch. ``bn_momentum`` is in the
PyTorch convention, 1 - Caffe's ``moving_average_fraction``: the paper's CLR runs used 0.95
(``bn_momentum=0.05``), its PC-LR runs 0.999 (``bn_momentum=0.001``). eps 1e-5 as Caffe's.

Dropout (``dropout`` > 0) sits where ``dropout_at`` says: ``"fc"``, one layer between the pool and the
FC (our placement, the usual one for a ResNet); ``"blocks"``, after each BN inside every block (before
its ReLU, and before the residual add), as the author's only dropout run (lrRange3SS520kDropuoutFig10a).

Parameter counts (BN scale/shift included, 10 classes): paper 224,042 / 808,682 /
1,685,642 and standard 269,722 / 853,018 / 1,727,962 at depth 20 / 56 / 110.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .batchnorm import BN_TYPES, STATS_RULES, bn_act, make_bn

VARIANTS = ("paper", "standard")
DROPOUT_PLACES = ("fc", "blocks")


def _pad_channels(x: torch.Tensor, extra: int) -> torch.Tensor:
    """Append ``extra`` zero channels (dim 1); keeps dtype, device and memory format."""
    if extra == 0:
        return x
    zeros = x.new_zeros(()).expand(x.shape[0], extra, *x.shape[2:])
    # torch.cat keeps channels_last when its inputs are channels_last; the expanded
    # zeros tensor has no memory format of its own, so give it x's.
    zeros = zeros.contiguous(memory_format=_memory_format(x))
    return torch.cat([x, zeros], dim=1)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


class OptionAShortcut(nn.Module):
    """He et al. option A: subsample with stride 2 and append zero channels."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.extra = out_ch - in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _pad_channels(x[:, :, ::2, ::2], self.extra)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, add shortcut, ReLU [, append zero channels].

    ``residual(x)`` is the conv path, ``shortcut(x)`` the other branch;
    ``out_pad`` zero channels are appended after the final ReLU (paper variant's
    downsampling block only).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, bias: bool, bn, shortcut: nn.Module | None = None,
                 out_pad: int = 0, dropout: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=bias)
        self.bn1 = bn(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=bias)
        self.bn2 = bn(out_ch)
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.out_pad = out_pad
        # the author's dropout placement (model.dropout_at=blocks): after each BN [Fig 10a log]
        self.drop = nn.Dropout(dropout) if dropout > 0 else None

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The conv path before the add: conv-BN-[dropout]-ReLU-conv-BN-[dropout], unfused. ReLU in place:
        BN's backward needs its input, not its output, so the ReLU may overwrite it."""
        out = self.bn1(self.conv1(x))
        if self.drop is not None:
            out = self.drop(out)
        out = self.bn2(self.conv2(F.relu_(out)))
        return out if self.drop is None else self.drop(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop is None:  # the same network, with BN+ReLU and BN+add+ReLU through `bn_act` (fused on CPU)
            out = bn_act(self.bn2, self.conv2(bn_act(self.bn1, self.conv1(x))), self.shortcut(x))
            return _pad_channels(out, self.out_pad)
        out = self.residual(x)
        out += self.shortcut(x)  # in place on the residual branch's fresh BN output, never on x
        return _pad_channels(F.relu_(out), self.out_pad)


class CifarResNet(nn.Module):
    """Stem, 3 stages of ``n`` basic blocks (16/32/64 channels), global average pool,
    [dropout], FC. Build it with :func:`build_resnet`."""

    def __init__(self, n: int, variant: str, num_classes: int, dropout: float, bn_momentum: float,
                 dropout_at: str = "fc", bn_stats: str = "caffe", bn_group: int | None = None):
        super().__init__()
        bias = variant == "paper"  # the Caffe network has biases on every conv
        self.variant = variant

        def bn(channels: int) -> nn.Module:
            return make_bn(channels, bn_momentum, bn_group, bn_stats)

        block_dropout = dropout if dropout_at == "blocks" else 0.0
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=bias),
            bn(16),
            nn.ReLU(inplace=True),
        )
        stages = []
        in_ch = 16
        for width in (16, 32, 64):
            blocks = []
            for i in range(n):
                if in_ch == width:
                    blocks.append(BasicBlock(width, width, 1, bias, bn, dropout=block_dropout))
                elif variant == "paper":
                    # Unusual Caffe downsampling block: conv path and shortcut stay at the
                    # old width; the shortcut is a 3x3/2 average pool rounded up like Caffe
                    # (32->16, 16->8); the width is doubled AFTER add+ReLU with zeros.
                    pool = nn.AvgPool2d(3, stride=2, padding=0, ceil_mode=True)
                    blocks.append(BasicBlock(in_ch, in_ch, 2, bias, bn, shortcut=pool, out_pad=width - in_ch,
                                             dropout=block_dropout))
                else:
                    blocks.append(BasicBlock(in_ch, width, 2, bias, bn, shortcut=OptionAShortcut(in_ch, width),
                                             dropout=block_dropout))
                in_ch = width
            stages.append(nn.Sequential(*blocks))
        self.stage1, self.stage2, self.stage3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)  # = the 8x8 global average pool on 32x32 inputs
        # dropout_at=fc: between the pool and the FC layer, the network's only fully connected layer. The
        # paper's Fig 9b says dropout 0.2 without saying where; this position is ours (the usual place in a
        # ResNet, and it leaves the conv/BN statistics untouched). The author's log placement: "blocks".
        self.dropout = nn.Dropout(dropout) if dropout > 0 and dropout_at == "fc" else None
        self.fc = nn.Linear(64, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # Caffe "msra" filler: N(0, 2/fan_in)
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, BN_TYPES):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                # Caffe "xavier" filler (default variance_norm FAN_IN): U(-a, a), a = sqrt(3/fan_in)
                a = math.sqrt(3.0 / m.in_features)
                nn.init.uniform_(m.weight, -a, a)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = bn_act(self.stem[1], self.stem[0](x))  # = self.stem(x) (conv, BN, ReLU), with BN+ReLU fused
        x = self.stage3(self.stage2(self.stage1(x)))
        x = torch.flatten(self.pool(x), 1)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc(x)


def check_args(depth, variant, num_classes, dropout, bn_momentum, dropout_at="fc", bn_stats="caffe",
               bn_group=None) -> None:
    """Raise a one-line ValueError naming the `model.*` key of the first invalid argument."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
        raise ValueError(f"model.depth must be an integer 6n+2 with n >= 1 (20, 56, 110, ...), got {depth!r}")
    if variant not in VARIANTS:
        raise ValueError(f"model.variant must be one of {list(VARIANTS)}, got {variant!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"model.num_classes must be a positive integer, got {num_classes!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"model.dropout must be a number in [0, 1), got {dropout!r}")
    if (isinstance(bn_momentum, bool) or not isinstance(bn_momentum, (int, float))
            or not 0.0 < bn_momentum <= 1.0):
        raise ValueError(f"model.bn_momentum must be a number in (0, 1], got {bn_momentum!r}")
    if dropout_at not in DROPOUT_PLACES:
        raise ValueError(f"model.dropout_at must be one of {list(DROPOUT_PLACES)}, got {dropout_at!r}")
    if bn_stats not in STATS_RULES:
        raise ValueError(f"model.bn_stats must be one of {list(STATS_RULES)}, got {bn_stats!r}")
    if bn_group is not None and (isinstance(bn_group, bool) or not isinstance(bn_group, int) or bn_group < 2):
        raise ValueError(f"model.bn_group must be null (the whole batch) or an integer >= 2, got {bn_group!r}")


def build_resnet(depth: int, variant: str = "paper", num_classes: int = 10, dropout: float = 0.0,
                 bn_momentum: float = 0.1, dropout_at: str = "fc", bn_stats: str = "caffe",
                 bn_group: int | None = None) -> torch.nn.Module:
    """Build a CIFAR ResNet of ``depth`` = 6n+2 layers; input [B,3,32,32], output logits
    [B,num_classes]. See the module docstring for the ``paper`` and ``standard`` variants, BatchNorm and
    dropout. ``bn_momentum`` uses the PyTorch convention (Caffe moving_average_fraction 0.95 -> 0.05)."""
    check_args(depth, variant, num_classes, dropout, bn_momentum, dropout_at, bn_stats, bn_group)
    return CifarResNet((depth - 2) // 6, variant, num_classes, float(dropout), float(bn_momentum), dropout_at,
                       bn_stats, bn_group)
