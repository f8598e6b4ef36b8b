"""The run's network from its `model` config: the built-in CIFAR ResNets, or any `_target_`.

Two kinds of `model` config:

* the built-in ResNets (conf/model/resnet20.yaml, ...): the keys of BUILTIN_KEYS, as always
  (superconv.models.resnet.build_resnet); these configs hold no `_target_`, so their runs keep their identity;
* a `_target_` (a dotted path to a class or function, e.g. conf/model/torchvision_resnet18.yaml), instantiated
  by `hydra.utils.instantiate` with `num_classes` from the data and the other keys of the node as keyword
  arguments. The built-in ResNet expressed this way is `_target_: superconv.models.resnet.build_resnet` plus its
  keys (tests/test_api.py builds the same network both ways).

The rule for a `_target_` model's keys: the built-in keys (depth, variant, dropout, dropout_at, bn_momentum,
bn_stats, bn_group, name) are passed only when the target names them as parameters, and are otherwise ignored.
They are set for the built-in ResNets by files a foreign model shares (protocol: the Caffe BN momentum; scale:
depth, the per-replica BN groups), and the Caffe BN protocol does not apply to a network with its own
BatchNorm layers. Every other key must be a parameter of the target (or the target takes **kwargs): a typo is
refused, as for the built-in keys. `num_classes` comes from the data and may not be set.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from difflib import get_close_matches
from typing import Any

from torch import nn

from .resnet import build_resnet, check_args

__all__ = ["BUILTIN_KEYS", "is_target", "target_kwargs", "check_model", "build_model"]

BUILTIN_KEYS = ("name", "depth", "variant", "dropout", "dropout_at", "bn_momentum", "bn_stats", "bn_group")


def is_target(m: Mapping) -> bool:
    return isinstance(m, Mapping) and "_target_" in m


def _locate(path: Any) -> Callable:
    if not isinstance(path, str) or not path:
        raise ValueError(f"model._target_={path!r}: must be a dotted path to a class or function")
    from hydra.utils import get_object

    try:
        obj = get_object(path)
    except Exception as e:  # ImportError, AttributeError, wrapped by Hydra in several ways
        raise ValueError(f"model._target_={path}: cannot import it ({' '.join(str(e).split())[:200]})") from None
    if not callable(obj):
        raise ValueError(f"model._target_={path}: not a class or function")
    return obj


def target_kwargs(m: Mapping) -> dict:
    """The keyword arguments the `_target_` of model config `m` is called with (besides num_classes), by the
    rule of the module docstring; a one-line ValueError naming the `model.*` key otherwise."""
    path = m["_target_"]
    params = inspect.signature(_locate(path)).parameters
    named = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    var_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
    if "num_classes" in m:
        raise ValueError("model.num_classes: set from the data (data.name), not in the model config")
    if "num_classes" not in named and not var_kw:
        raise ValueError(f"model._target_={path}: must take a num_classes argument (the data's number of classes)")
    kwargs = {}
    for key, value in m.items():
        if key == "_target_" or (key in BUILTIN_KEYS and key not in named):
            continue
        if key not in named and not var_kw:
            close = get_close_matches(key, sorted(named - {"num_classes"}), n=1)
            hint = f"did you mean model.{close[0]}?" if close else \
                f"its parameters: {', '.join(sorted(named - {'num_classes'})) or '(none besides num_classes)'}"
            raise ValueError(f"model.{key}: not a parameter of {path}; {hint}")
        kwargs[key] = value
    return kwargs


def check_model(m: Mapping) -> None:
    """Check a model config before anything runs (config.validate): a target's keys, or the built-in ResNet's."""
    if is_target(m):
        target_kwargs(m)
    else:
        check_args(m["depth"], m["variant"], 10, m["dropout"], m["bn_momentum"], m["dropout_at"], m["bn_stats"],
                   m["bn_group"])


def build_model(m: Mapping, num_classes: int) -> nn.Module:
    """The network of model config `m` for `num_classes` classes (see the module docstring)."""
    if not is_target(m):
        return build_resnet(m["depth"], m["variant"], num_classes, m["dropout"], m["bn_momentum"], m["dropout_at"],
                            m["bn_stats"], m["bn_group"])
    from hydra.utils import instantiate

    kwargs = target_kwargs(m)
    try:
        model = instantiate({"_target_": m["_target_"], **kwargs}, num_classes=num_classes, _convert_="all")
    except Exception as e:  # a bad argument value: Hydra wraps the target's own error
        raise ValueError(f"model._target_={m['_target_']}: {' '.join(str(e).split())[:300]}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"model._target_={m['_target_']}: returned a {type(model).__name__}, not a torch nn.Module")
    return model
