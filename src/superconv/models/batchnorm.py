"""BatchNorm as the author's Caffe runs computed it: per-replica statistics, bias-corrected running averages.

Two differences from ``nn.BatchNorm2d`` matter for reproducing the paper (``docs/PROTOCOL.md``):

**Per-replica batch statistics (ghost batch norm).** Every author run trained on 8 GPUs x 125 images.
Caffe's multi-GPU solver reduces gradients, never BN statistics, so each replica's BN layers normalised
over its own 125 images. ``group=G`` reproduces that on one device: the batch is cut into consecutive
groups of G images and each group is normalised with its own mean and variance. ``group=None`` (or G equal
to the batch) is ordinary BatchNorm over the whole batch.

**Caffe's running averages** (``BatchNormLayer``, ``moving_average_fraction`` f). Caffe keeps three
blobs, the running sums S_mean and S_var and their weight W, and updates them after each training forward:

    W      <- f * W + 1
    S_mean <- f * S_mean + mean_batch
    S_var  <- f * S_var  + m / (m - 1) * var_batch      (m = values per channel: images x H x W)

and the test-time network normalises with S_mean / W and S_var / W. Before any training step (W = 0)
Caffe would use 0 for both, which blows an untrained network's outputs up to inf; we use nn.BatchNorm2d's
initial mean 0 / variance 1 instead (no run evaluates before its first step, so no result differs). Because of the division by W this is a bias-corrected
exponential average: unlike PyTorch's ``running = (1 - M) running + M batch``, it never mixes in the
initial mean 0 / variance 1, which with f = 0.999 (the PC-LR runs) stays in PyTorch's estimate for
thousands of iterations. ``stats="torch"`` keeps PyTorch's rule (the project's protocol_version 1).

**Which running statistics the test network uses.** Caffe tested with replica 0's layers, i.e. the
running average of one group's statistics per step. Here every group's statistics enter: each step adds
the mean over the groups of their means and of their (m/(m-1)-corrected) variances, with m the values of
one group. That is the same expectation as replica 0's estimate (the groups are exchangeable draws of
the same distribution) with ~1/groups of its variance, so it is equivalent or better as an estimate of
the population statistics, and it does not depend on which images land in the first group.

Parameters are the Caffe ``Scale`` layer's (``weight`` = gamma, ``bias`` = beta, as in nn.BatchNorm2d),
so parameter counts and optimizer groups are unchanged. Running statistics are fp32 buffers (also under
bf16 autocast) and are saved in checkpoints, ``weight_sum`` included, so a resumed run continues exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import fused_bn

STATS_RULES = ("caffe", "torch")


class GroupBatchNorm2d(nn.Module):
    """BatchNorm2d with statistics per group of ``group`` images and Caffe's or PyTorch's running averages.

    ``momentum`` is in PyTorch's convention, M = 1 - Caffe's moving_average_fraction (0.05 <-> 0.95).
    Buffers: ``caffe``: ``mean_sum``, ``var_sum`` [C], ``weight_sum`` [] (Caffe's three blobs);
    ``torch``: ``running_mean``, ``running_var`` [C] (nn.BatchNorm2d's).
    """

    def __init__(self, num_features: int, momentum: float, group: int | None = None, stats: str = "caffe",
                 eps: float = 1e-5):  # Caffe's BatchNorm eps default 1e-5, as PyTorch's
        super().__init__()
        if stats not in STATS_RULES:
            raise ValueError(f"model.bn_stats must be one of {list(STATS_RULES)}, got {stats!r}")
        self.num_features, self.momentum, self.group, self.stats, self.eps = num_features, momentum, group, stats, eps
        self.ran_fused: bool | None = None  # whether the last training forward ran the fused kernel (provenance)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        if stats == "caffe":
            self.register_buffer("mean_sum", torch.zeros(num_features))
            self.register_buffer("var_sum", torch.zeros(num_features))
            self.register_buffer("weight_sum", torch.zeros(()))
        else:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))

    def extra_repr(self) -> str:
        return f"{self.num_features}, momentum={self.momentum}, group={self.group}, stats={self.stats}"

    def running_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and variance the test-time network normalises with."""
        if self.stats == "torch":
            return self.running_mean, self.running_var
        # untrained (W = 0): nn.BatchNorm2d's initial statistics (module docstring). `where`, not `.item()`: no
        # host sync per BN layer per evaluation batch on CUDA
        untrained = self.weight_sum == 0
        w = torch.where(untrained, 1.0, self.weight_sum)
        return (torch.where(untrained, 0.0, self.mean_sum / w), torch.where(untrained, 1.0, self.var_sum / w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            mean, var = self.running_stats()
            return F.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps)
        n = x.shape[0]
        g = self._group_size(n)
        self.ran_fused = False
        # Each group through the native kernel, writing its batch mean and unbiased variance into a row of
        # (means, variances) via momentum 1. Groups are contiguous blocks of the batch dimension, so they are
        # views in both memory formats; the forward concatenation and the backward one are the only copies.
        # `split`, not slicing: the gradient of k slices is k full-size zero tensors added up (measured: 45%
        # of a ResNet-20 step at 8 groups), the gradient of a split is one concatenation.
        k = n // g
        means = x.new_zeros((k, self.num_features), dtype=torch.float32)
        variances = x.new_ones((k, self.num_features), dtype=torch.float32)
        outs = [F.batch_norm(part, means[i], variances[i], self.weight, self.bias, True, 1.0, self.eps)
                for i, part in enumerate(x.split(g))]
        with torch.no_grad():
            self._accumulate(means.mean(0), variances.mean(0))
        return outs[0] if k == 1 else torch.cat(outs)

    def _group_size(self, n: int) -> int:
        """Images per statistics group in a training batch of `n`."""
        g = self.group or n
        if n % g:
            raise ValueError(f"model.bn_group={g}: a training batch of {n} images is not a whole number of groups")
        return g

    def fusable(self, x: torch.Tensor) -> bool:
        """Whether `bn_act` may run this layer through the fused kernel (`fused_bn`): training, on CPU, an input
        the kernel takes, not under torch.compile (whose inductor fuses the unfused ops itself and cannot trace
        the kernel), and the kernel built."""
        return (self.training and fused_bn.applies(x) and not torch.compiler.is_compiling()
                and fused_bn.available())

    def fused_act(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """relu_(self(x) [+ residual]) in one fused op; the kernel updates the running statistics by `_accumulate`'s
        rule (to fp32 rounding: it averages the groups in double)."""
        running = ((self.mean_sum, self.var_sum, self.weight_sum) if self.stats == "caffe"
                   else (self.running_mean, self.running_var, None))
        out, _, _ = fused_bn.group_bn_act(x, self.weight, self.bias, residual, self._group_size(x.shape[0]), self.eps,
                                          running=running, momentum=self.momentum)
        self.ran_fused = True
        return out

    @torch.no_grad()
    def _accumulate(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        """One step of the running statistics; `var` is already m/(m-1)-corrected (PyTorch's kernel does it). The
        fused kernel applies the same rule in C++ (`update_running`); tests/test_fused_bn.py holds the two equal."""
        if self.stats == "caffe":
            f = 1.0 - self.momentum  # moving_average_fraction
            self.weight_sum.mul_(f).add_(1.0)
            self.mean_sum.mul_(f).add_(mean)
            self.var_sum.mul_(f).add_(var)
        else:
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var, self.momentum)


BN_TYPES = (nn.BatchNorm2d, GroupBatchNorm2d)


def bn_act(bn: nn.Module, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
    """relu_(bn(x) [+ residual]) for either BN type: one fused op where `GroupBatchNorm2d.fusable`, which
    computes the same thing in fewer passes over memory; else the modules' own ops."""
    if isinstance(bn, GroupBatchNorm2d) and bn.fusable(x):
        return bn.fused_act(x, residual)
    out = bn(x)
    if residual is not None:
        out += residual
    return F.relu_(out)


def fused_share(model: nn.Module) -> str:
    """"k/n": how many of the model's n BatchNorm layers ran their last training forward through the fused
    kernel (a run's summary records it: the kernel changes rounding, not what is computed)."""
    layers = [m for m in model.modules() if isinstance(m, BN_TYPES)]
    return f"{sum(bool(getattr(m, 'ran_fused', False)) for m in layers)}/{len(layers)}"


def make_bn(num_features: int, momentum: float, group: int | None, stats: str) -> nn.Module:
    """The model's BatchNorm: ``nn.BatchNorm2d`` itself for PyTorch's rule over the whole batch (the
    protocol_version 1 network, whose checkpoints keep loading), else :class:`GroupBatchNorm2d`."""
    if stats == "torch" and group is None:
        return nn.BatchNorm2d(num_features, momentum=momentum)
    return GroupBatchNorm2d(num_features, momentum, group, stats)
