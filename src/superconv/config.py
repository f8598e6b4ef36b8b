"""Validation of a composed run configuration, before anything is written or trained.

A sweep of a hundred runs is only as robust as its worst typo: every value a user can set is checked
here, and a bad one stops the run with one line that names the key and what is allowed (the entry
point turns `ConfigError` into exit code 2). Checks that need the data (a batch larger than the
training set) are made by `superconv.session.prepare` before the run directory is created; the building
blocks (schedule, model, optimizer arguments) raise `ValueError` with the same one-line convention, which
`validate` calls early and turns into `ConfigError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from difflib import get_close_matches
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from .lr_estimate import check_every
from .models.factory import check_model, is_target
from .optim import check_cfg
from .schedules import Schedule, build_schedule


def scaled(iterations, factor) -> int:
    """`${scaled:N,${length_factor}}`: a paper run length N shrunk by the scale's factor (at least 1).

    Experiment configs give run lengths in the paper's iterations; `scale=mini` sets length_factor < 1,
    so every run (CLR 10k, PC-LR 80k, a 20k range test) shrinks by the same ratio and the paper's
    comparisons keep their proportions.
    """
    return max(1, round(int(iterations) * float(factor)))


def bn_scaled(momentum, factor) -> float:
    """`${bn_scaled:M,${length_factor}}`: a BN running-average momentum M whose horizon shrinks with the run.

    Caffe's moving-average fraction f = 1 - M averages over ~1/M iterations: 1000 for the PC-LR baseline
    (0.999), 20 for CLR (0.95). A run shrunk by `length_factor` keeps that horizon as the same fraction of
    the run: f' = f ** (1 / length_factor). Without this a 1200-iteration mini PC-LR run evaluates with
    running statistics still ~30% at their initial values (measured: train loss 0.76, test accuracy 15%).
    At length_factor 1 (paper) M is unchanged; the result is capped at 1 (the last batch's statistics).
    """
    m, f = float(momentum), float(factor)
    return min(1.0, round(1.0 - (1.0 - m) ** (1.0 / f), 6))


def per_replica(batch_size, replicas) -> int:
    """`${per_replica:${train.batch_size},${train.replicas}}`: the images each replica's BN normalises over.

    The author trained on 8 GPUs; Caffe's multi-GPU solver reduces gradients, not BN statistics, so each
    GPU's BN layers saw only its own batch_size / 8 images (125 of 1000). `model.bn_group` reproduces that
    with statistics over consecutive groups of this many images of the batch.
    """
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (batch_size, replicas)):
        return None  # not numbers: validate() names train.batch_size / train.replicas in one line
    b, r = batch_size, replicas
    if r < 1 or b % r:
        raise ValueError(f"train.batch_size={b} must be a multiple of train.replicas={r} "
                         f"(each replica normalises batch_size / replicas images)")
    return b // r


def evals(iterations, count) -> int:
    """`${evals:${train.iterations},N}`: the evaluation interval that gives a run about N intermediate
    evaluations whatever its length (a budget ladder from 100 to 6400 iterations draws every rung with the same
    number of points)."""
    return max(1, int(iterations) // int(count))


PAPER_BATCH = 1000  # the author's total batch: 8 GPUs x 125 images [code]


def same_images(iterations, batch_size) -> int:
    """`${same_images:N,${train.batch_size}}`: the iterations at this batch that see the images of N iterations
    at the paper's batch of 1000, so a batch sweep can hold the epochs instead of the iterations (fig9a holds
    the iterations, as the paper did, and a larger batch then also trains more epochs)."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"train.batch_size={batch_size!r} must be a positive integer")
    return max(1, round(int(iterations) * PAPER_BATCH / batch_size))


OmegaConf.register_new_resolver("scaled", scaled, replace=True)
OmegaConf.register_new_resolver("evals", evals, replace=True)
OmegaConf.register_new_resolver("per_replica", per_replica, replace=True)
OmegaConf.register_new_resolver("bn_scaled", bn_scaled, replace=True)
OmegaConf.register_new_resolver("same_images", same_images, replace=True)

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

# The config groups a user selects with `group=option`; each option is a file conf/<group>/<option>.yaml.
GROUPS = ("data", "model", "net", "optim", "schedule", "logger", "scale", "paths", "protocol", "experiment",
          "stepsize", "recipe", "launcher")

# Keys that do not change what a run computes. They stay out of a run's identity, so that moving the
# data, turning wandb on or checkpointing more often does not make a finished run look foreign.
VOLATILE_KEYS = {
    "dry_run": None,
    "launcher_name": None,
    "paths": None,
    "logger": None,
    # compile, like device, changes rounding only (fused kernels), not what is computed
    "train": ("progress", "checkpoint_every", "keep_checkpoint", "log_every", "device", "threads", "compile",
              "compile_mode"),
    "range_test": ("tolerance", "bounds_rule", "min_div"),  # analysis of the curve, not the curve
    "data": ("download",),  # where the files came from is provenance (summary.json's data_source), not identity
}


class ConfigError(ValueError):
    """A user-facing configuration error: one line, naming the key and what is allowed."""


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The options of a config group, as the file names under conf/<group>/."""
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def check_group_overrides(overrides: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Refuse `group=option` command-line overrides naming an option that does not exist.

    Hydra would fail on them too, but with a multi-line report and exit code 1; a sweep script
    wants the same one-line, exit-code-2 contract as every other bad value. Sweep values
    (`model=resnet20,resnet56`) are checked one by one; sweep functions (`glob(*)`) are left to Hydra.
    """
    for override in overrides:
        key, sep, value = override.lstrip("+~").partition("=")
        if not sep or key not in GROUPS or "(" in value or value in ("", "null"):
            continue
        allowed = group_options(key, conf_dir)
        for option in value.split(","):
            if option not in allowed:
                raise ConfigError(f"{key}={option}: unknown option; allowed: {', '.join(allowed) or '(none yet)'}")


# Keys that only files of the `_global_` groups set (protocol, scale, launcher) and that name what was
# chosen; every other key must be declared by conf/config.yaml or by an option of a non-global group.
GLOBAL_NAME_KEYS = ("protocol", "scale_name", "launcher_name")
RUNTIME_KEYS = ("paths.run_dir",)  # set by superconv.cli for every Hydra job


def _is_global(path: Path) -> bool:
    return path.read_text().lstrip().startswith("# @package _global_")


def _leaves(node: Mapping, prefix: str = "") -> list[str]:
    out = []
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out += _leaves(value, dotted + ".")
        else:
            out.append(dotted)
    return out


def _file_keys(path: Path, prefix: str = "") -> list[str]:
    """The dotted keys a config file sets (its defaults list and Hydra's own settings aside)."""
    node = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
    return _leaves({k: v for k, v in node.items() if k not in ("defaults", "hydra")}, prefix)


def _is_target_option(path: Path) -> bool:
    """A `_target_` model option (conf/model/torchvision_resnet18.yaml): its other keys are its target's
    arguments, checked against the target (superconv.models.factory), not declared keys of every model."""
    return path.parent.name == "model" and "_target_" in (OmegaConf.to_container(OmegaConf.load(path)) or {})


@lru_cache(maxsize=4)
def known_keys(conf_dir: Path = CONF_DIR) -> frozenset[str]:
    """Every key a run configuration may hold, and every section above one (an empty section is its own
    leaf): those conf/config.yaml declares and those of every option of the groups that own a section (data,
    model, optim, schedule, logger, paths). The `_global_` groups (experiment, protocol, scale, net, ...) only
    set keys declared there, so a typo in one of their files is caught like a typo on the command line.
    A `_target_` model option adds `model._target_` only: its other keys are arguments of its target, which
    a built-in ResNet must not accept (check_known_keys checks a target model's keys against its target)."""
    keys = set(GLOBAL_NAME_KEYS) | set(RUNTIME_KEYS)
    for path in [conf_dir / "config.yaml", *sorted(conf_dir.glob("*/*.yaml"))]:
        if _is_target_option(path):
            keys.add("model._target_")
        elif not _is_global(path):
            keys.update(_file_keys(path, "" if path.parent == conf_dir else f"{path.parent.name}."))
    return frozenset(keys | {k.rsplit(".", 1)[0] for k in keys if "." in k})


def _check_key(key: str, known: frozenset[str], where: str = "") -> None:
    if key in known:
        return
    section = key.rpartition(".")[0]
    siblings = sorted(k for k in known if k.rpartition(".")[0] == section and "." in k)
    close = get_close_matches(key, siblings, n=1)
    hint = f"did you mean {close[0]}?" if close else f"known keys here: {', '.join(siblings) or '(none)'}"
    raise ConfigError(f"{key}: unknown configuration key{where}; {hint}")


def check_known_keys(cfg: Mapping, conf_dir: Path = CONF_DIR) -> None:
    """Refuse a key no config file declares (`+model.dropuot=0.2`, or the same typo in an experiment file):
    unchecked, it would be carried along silently while the run trains without what was meant. The keys of a
    `_target_` model are its target's arguments: validate checks them against it (models.factory.target_kwargs)."""
    known = known_keys(conf_dir)
    target = is_target(cfg.get("model"))
    for key in _leaves({k: v for k, v in cfg.items() if k != "hydra"}):
        if not (target and key.startswith("model.")):
            _check_key(key, known)


def check_override_keys(overrides: list[str], conf_dir: Path = CONF_DIR) -> None:
    """The same check before Hydra composes anything, for sweeps too: the keys set on the command line and
    those set by the option files of the `_global_` groups it selects (experiment=..., protocol=...).
    A sweep then stops with one line and exit code 2 instead of failing job by job. Where the command line picks
    a `_target_` model (`model=torchvision_resnet18`, `+model._target_=...`), its `model.*` keys are left to
    validate, which checks them against the target once the config is composed."""
    known = known_keys(conf_dir)
    target = any(_picks_target_model(o, conf_dir) for o in overrides)
    for override in overrides:
        key, sep, value = override.lstrip("+~").partition("=")
        if not sep or key.startswith("hydra") or "(" in value:
            continue
        if key not in GROUPS:
            if not (target and key.startswith("model.")):
                _check_key(key, known)
            continue
        for option in value.split(","):
            path = conf_dir / key / f"{option}.yaml"
            if path.is_file() and _is_global(path):
                for leaf in _file_keys(path):
                    _check_key(leaf, known, f" (set in {path.relative_to(conf_dir.parent)})")


def _picks_target_model(override: str, conf_dir: Path) -> bool:
    key, _, value = override.lstrip("+~").partition("=")
    if key == "model._target_":
        return True
    return key == "model" and any((conf_dir / "model" / f"{o}.yaml").is_file()
                                  and _is_target_option(conf_dir / "model" / f"{o}.yaml") for o in value.split(","))


def _number(cfg: Mapping, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"{dotted}: missing from the configuration")
        node = node[part]
    return node


def _int_at_least(cfg: Mapping, key: str, low: int) -> int:
    value = _number(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{key}={value!r}: must be an integer >= {low}")
    return value


def _float_in(cfg: Mapping, key: str, low: float, high: float, *, low_open: bool, high_open: bool) -> float:
    value = _number(cfg, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}={value!r}: must be a number")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ConfigError(f"{key}={value!r}: must be in {interval}")
    return float(value)


def _choice(cfg: Mapping, key: str, allowed: tuple[str, ...]) -> str:
    value = _number(cfg, key)
    if value not in allowed:
        raise ConfigError(f"{key}={value!r}: must be one of {', '.join(allowed)}")
    return value


def validate(cfg: Mapping) -> Schedule:
    """Check every user-settable value of a resolved config (a plain nested dict), and that it holds no key
    that no config file declares. Returns the run's schedule: building it is its check, and the run uses
    this one (session.load_config hands it to session.prepare), so it is built once."""
    check_known_keys(cfg)
    _int_at_least(cfg, "seed", 0)
    for key in ("batch_size", "replicas", "iterations", "eval_every", "eval_batch_size", "log_every",
                "checkpoint_every"):
        _int_at_least(cfg, f"train.{key}", 1)
    _choice(cfg, "train.precision", ("auto", "bf16", "fp32"))
    _choice(cfg, "train.device", ("auto", "cpu", "cuda"))
    for key in ("compile", "deterministic"):
        if not isinstance(cfg["train"].get(key, False), bool):
            raise ConfigError(f"train.{key}={cfg['train'][key]!r}: must be true or false")
    threads = cfg["train"].get("threads")
    if threads is not None:
        _int_at_least(cfg, "train.threads", 1)

    _choice(cfg, "data.name", ("cifar10", "cifar100", "synthetic"))
    _float_in(cfg, "data.fraction", 0.0, 1.0, low_open=True, high_open=False)
    _choice(cfg, "data.augment", ("paper", "standard"))

    # The building blocks check their own arguments (one place per rule); here they are only called
    # early, before data is loaded, and their ValueError becomes a ConfigError.
    try:
        check_model(cfg["model"])  # a built-in ResNet's keys, or a `_target_` and its arguments
        check_cfg(cfg["optim"])
        schedule = build_schedule(cfg["schedule"], cfg["train"]["iterations"], cfg["optim"]["momentum"])
        check_every(cfg["train"].get("lr_estimate_every"))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    _choice(cfg, "logger.name", ("none", "wandb"))
    _choice(cfg, "job", ("train", "range_test"))
    return schedule


# What a config without these keys computed: runs made before they existed (protocol_version 1) used
# nn.BatchNorm2d over the whole batch with a dropout layer before the FC. Filling them in makes such a
# run differ from a protocol-2 configuration in its identity instead of passing for one.
LEGACY_MODEL_KEYS = {"bn_stats": "torch", "bn_group": None, "dropout_at": "fc"}


def identity(cfg: Mapping) -> dict:
    """The part of a resolved config that decides what a run computes (see VOLATILE_KEYS)."""
    cfg = dict(cfg)
    cfg.setdefault("protocol_version", 1)
    if isinstance(cfg.get("model"), Mapping):
        cfg["model"] = {**LEGACY_MODEL_KEYS, **cfg["model"]}
    out = {}
    for key, value in cfg.items():
        if key in VOLATILE_KEYS and VOLATILE_KEYS[key] is None:
            continue
        if key in VOLATILE_KEYS and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k not in VOLATILE_KEYS[key]}
        out[key] = value
    return out
