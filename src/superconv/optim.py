"""Optimizers with the paper's weight-decay split, and per-step hyperparameter updates.

The paper's Caffe protocol (docs/PROTOCOL.md §1) puts weight decay 1e-4 on conv and FC weights, the FC bias and
the BN scale and shift, but NOT on conv biases (``decay="paper"``). ``decay="weights_only"`` is the
common modern choice: conv and FC weights only. Parameters are classified by the type of the module
that owns them, never by name; a parameter owned by any other module type raises, so none can be
silently left out of (or doubled in) the groups.

The training loop sets LR and momentum itself every step (``set_hparams``) from a
``superconv.schedules.Schedule``; for Adam the schedule's momentum is beta1.

Schedules are written in the paper's SGD units (CLR 0.1 -> 3, PC-LR 0.35) whatever the optimizer, so one
``protocol`` serves the whole Fig 8 sweep. An optimizer whose useful LR lies elsewhere says so with
``optim.lr_scale``: the author's Adam PC-LR run used 0.0035 = 0.01 x 0.35 [code: lr35AdamFig9]. The factor is
kept in each param group (``"lr_scale"``) rather than folded into the schedule, so it is applied at every
``set_hparams`` and travels with the optimizer's state dict into a resumed run.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .models.batchnorm import GroupBatchNorm2d

__all__ = ["NAMES", "DECAY_MODES", "param_groups", "build_optimizer", "set_hparams"]

NAMES = ("sgd", "adam", "adagrad", "adadelta")  # Fig 8: SGD(+Nesterov), Adam, AdaGrad, AdaDelta
DECAY_MODES = ("paper", "weights_only")

_CONV = nn.modules.conv._ConvNd  # Conv1d/2d/3d and transposed
_BN = (nn.modules.batchnorm._BatchNorm, GroupBatchNorm2d)  # BatchNorm1d/2d/3d, SyncBatchNorm, Caffe's BN

# (module type, parameter name) -> decayed?, per mode
_RULES = {
    "paper": {(_CONV, "weight"): True, (_CONV, "bias"): False,
              (nn.Linear, "weight"): True, (nn.Linear, "bias"): True,
              (_BN, "weight"): True, (_BN, "bias"): True},
    "weights_only": {(_CONV, "weight"): True, (_CONV, "bias"): False,
                     (nn.Linear, "weight"): True, (nn.Linear, "bias"): False,
                     (_BN, "weight"): False, (_BN, "bias"): False},
}


def _check_decay(weight_decay, decay) -> None:
    if decay not in _RULES:
        raise ValueError(f"optim.decay must be one of {', '.join(DECAY_MODES)} (got {decay!r})")
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
        raise ValueError(f"optim.weight_decay must be a number >= 0 (got {weight_decay!r})")


def param_groups(model: nn.Module, weight_decay: float, decay: str = "paper") -> list[dict]:
    """Two optimizer groups: ``{"name": "decay", "weight_decay": weight_decay}`` and
    ``{"name": "no_decay", "weight_decay": 0.0}`` (an empty group is left out).

    Raises ``ValueError`` for an unknown ``decay`` or a parameter owned by a module type other than
    Conv / Linear / BatchNorm.
    """
    _check_decay(weight_decay, decay)
    rules = _RULES[decay]
    decayed: list[nn.Parameter] = []
    plain: list[nn.Parameter] = []
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            if id(p) in seen:  # a parameter shared between modules: the first owner decides
                continue
            kind = next((t for t in (_CONV, nn.Linear, _BN) if isinstance(module, t)), None)
            if kind is None or (kind, p_name) not in rules:
                raise ValueError(
                    f"param_groups: no weight-decay rule for parameter {mod_name + '.' if mod_name else ''}"
                    f"{p_name} of {type(module).__name__} (known: Conv, Linear, BatchNorm weight/bias)"
                )
            seen.add(id(p))
            (decayed if rules[(kind, p_name)] else plain).append(p)
    missed = [n for n, p in model.named_parameters() if id(p) not in seen]
    assert not missed, f"parameters in no group: {missed}"
    groups = [
        {"params": decayed, "weight_decay": float(weight_decay), "name": "decay"},
        {"params": plain, "weight_decay": 0.0, "name": "no_decay"},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: Mapping, lr: float) -> torch.optim.Optimizer:
    """The optimizer named ``cfg["name"]`` over ``param_groups(model, ...)`` with initial LR
    ``lr x optim.lr_scale`` (``lr`` is the schedule's, in SGD units).

    Keys (defaults in brackets): name [sgd], momentum [0.9], weight_decay [1e-4], nesterov [false],
    decay [paper], lr_scale [1.0]. Adam uses ``betas=(momentum, 0.999)``; AdaGrad and AdaDelta ignore
    momentum. Weight decay is Caffe's: L2 added to the gradient before the update, for every optimizer
    (so Adam's is coupled L2, not AdamW).
    """
    name, momentum, weight_decay, nesterov, decay, lr_scale = check_cfg(cfg)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr >= 0:
        raise ValueError(f"initial learning rate must be >= 0 (got {lr!r})")
    groups = param_groups(model, weight_decay, decay)
    lr_scale = float(lr_scale)
    for g in groups:  # read back by set_hparams at every step (and saved with the optimizer's state)
        g["lr_scale"] = lr_scale
    lr = float(lr) * lr_scale
    # foreach=None (torch's default) selects the multi-tensor path at step time when every parameter
    # is on CUDA, and the per-tensor loop on CPU, so the choice follows the model's device.
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=float(momentum), nesterov=nesterov, foreach=None)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=(float(momentum), 0.999), foreach=None)
    if name == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr, foreach=None)
    return torch.optim.Adadelta(groups, lr=lr, foreach=None)  # lr is a scale factor (torch default 1.0)


def check_cfg(cfg: Mapping) -> tuple:
    """Validate the `optim` config (one-line ValueError naming the key); return its values with defaults."""
    name = cfg.get("name", "sgd")
    momentum = cfg.get("momentum", 0.9)  # docs/PROTOCOL.md §1: constant momentum 0.9
    weight_decay = cfg.get("weight_decay", 1e-4)  # docs/PROTOCOL.md §1 / Fig 10b: 1e-4
    nesterov = cfg.get("nesterov", False)  # Fig 8: CLR + Nesterov
    decay = cfg.get("decay", "paper")
    lr_scale = cfg.get("lr_scale", 1.0)  # schedule LR -> optimizer LR (Fig 8 Adam: 0.01)
    if name not in NAMES:
        raise ValueError(f"optim.name must be one of {', '.join(NAMES)} (got {name!r})")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
        raise ValueError(f"optim.momentum must be in [0, 1) (got {momentum!r})")
    if not isinstance(nesterov, bool):
        raise ValueError(f"optim.nesterov must be true or false (got {nesterov!r})")
    if nesterov and (name != "sgd" or momentum == 0):
        raise ValueError(f"optim.nesterov needs optim.name=sgd and optim.momentum > 0 (got {name}, {momentum!r})")
    if isinstance(lr_scale, bool) or not isinstance(lr_scale, (int, float)) or not lr_scale > 0:
        raise ValueError(f"optim.lr_scale must be a number > 0 (got {lr_scale!r})")
    _check_decay(weight_decay, decay)
    return name, momentum, weight_decay, nesterov, decay, lr_scale


def set_hparams(optimizer: torch.optim.Optimizer, lr: float, momentum: float) -> None:
    """Set the schedule's ``lr`` (SGD units) x the group's ``lr_scale`` on every group, and ``momentum``
    (SGD) or ``betas[0]`` (Adam's beta1) where the optimizer has one; AdaGrad and AdaDelta take the LR only.

    A group without ``lr_scale`` (an optimizer built elsewhere, or restored from a checkpoint written
    before the key existed, which were all SGD) is taken as unscaled."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
        if "betas" in group:
            group["betas"] = (momentum, group["betas"][1])
        elif "momentum" in group:
            group["momentum"] = momentum
