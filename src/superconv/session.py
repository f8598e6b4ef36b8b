"""A run's set-up and bookkeeping, shared by training and the LR range test.

`prepare` does every check before anything is written: config values, the run directory's owner (a
finished run is reported and skipped; another configuration's directory is refused), the data, the
model, schedule and optimizer arguments. `open_store` then creates the directory, and `finish` writes
the summary with its provenance (git sha, hardware, command) and the DONE marker, last.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import torch

from . import checkpoint
from .allocator import keep_freed_memory
from .config import ConfigError, identity, validate
from .hardware import describe_device, git_sha, pick_device, pick_precision
from .data import DataError, load_dataset
from .loop import Parts
from .lr_estimate import LREstimate
from .models.batchnorm import fused_share
from .models.factory import build_model
from .optim import build_optimizer
from .results import RunDir, StoreError, truncate_metrics
from .sampling import Augment, BatchOrder, stratified_indices
from .schedules import Schedule

USER_ERRORS = (ConfigError, DataError, StoreError, checkpoint.CheckpointError)
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's


def default_run_dir(cfg: Mapping, run_name: str = "default") -> Path:
    return Path(cfg["paths"]["results_dir"]) / cfg["experiment_name"] / run_name


def plain(cfg) -> dict:
    """A composed config as a plain resolved dict; an interpolation error is a ConfigError."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(cfg, DictConfig):
        try:
            return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as e:
            # a resolver's own ValueError (per_replica, scaled) already names the key: no OmegaConf wrapper
            msg = str(e).split("\n")[0].removeprefix("ValueError raised while resolving interpolation: ")
            raise ConfigError(" ".join(msg.split())) from None
    return dict(cfg)


def differences(stored, current, prefix="") -> list[str]:
    """Dotted keys whose values differ between a stored config and the current one.

    Only keys present in both count: a key added to the configs after a run finished (a new option,
    with its default) must not turn every finished result into "another configuration".
    """
    if isinstance(stored, Mapping) and isinstance(current, Mapping):
        out = []
        for key in sorted(set(stored) & set(current), key=str):
            out += differences(stored[key], current[key], f"{prefix}{key}.")
        return out
    return [] if stored == current else [prefix.rstrip(".")]


def run_dir_of(c: Mapping) -> Path:
    """The run's directory: paths.run_dir (set by superconv.cli for Hydra jobs) or the default one."""
    return Path(c["paths"].get("run_dir") or default_run_dir(c))


def check_store(c: Mapping) -> RunDir:
    """The run's directory, refusing one that holds another configuration's (or foreign) files."""
    store = RunDir(run_dir_of(c))
    if store.path.exists():
        stored = store.read_config()
        if stored is None and store.foreign_files():
            raise StoreError(f"{store.path}: holds files that are not a superconv run "
                             f"({', '.join(store.foreign_files()[:3])}); choose another paths.results_dir")
        diff = differences(identity(stored), identity(c)) if stored is not None else []
        if diff:
            raise StoreError(f"{store.path}: holds a run of another configuration (differs in {', '.join(diff[:4])}); "
                             f"choose another paths.results_dir or move that directory away")
    return store


def prepare(c: dict, schedule: Schedule, store: RunDir | None = None) -> Parts:
    """Check everything and build the run once; raises one of USER_ERRORS on bad input.

    `c` is validated and `schedule` built by `load_config` (or by the caller: the LR finder's exponential
    schedule, the bench's). `store`: the run directory `load_config` already checked; None checks it here
    (bench, profile), so each run's store is checked exactly once.
    """
    tr = c["train"]
    if tr["threads"]:
        torch.set_num_threads(tr["threads"])
    torch.use_deterministic_algorithms(bool(tr["deterministic"]))
    device = pick_device(tr["device"])
    if device.type == "cpu":  # activations stay in the heap between steps (see superconv.allocator)
        keep_freed_memory()
    if tr.get("tf32") is not None and not isinstance(tr["tf32"], bool):
        raise ConfigError(f"train.tf32={tr['tf32']!r}: must be null, true or false")
    if tr.get("compile_mode") not in COMPILE_MODES or (tr.get("compile_mode") and not tr.get("compile")):
        raise ConfigError(f"train.compile_mode={tr['compile_mode']!r}: must be null or, with train.compile=true, "
                          f"one of {', '.join(COMPILE_MODES[1:])}")
    if device.type == "cuda":  # cuDNN picks the fastest conv algorithms for the (fixed) batch shape
        torch.backends.cudnn.benchmark = not tr["deterministic"]
        if tr.get("tf32") is not None:  # fp32 matmuls and convolutions on TF32 tensor cores, or neither
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tr["tf32"]
    amp_dtype = pick_precision(tr["precision"], device)
    store = check_store(c) if store is None else store
    try:
        split = load_dataset(c["data"]["name"], c["paths"]["data_dir"], download=c["data"]["download"],
                             verify_md5=c["data"]["verify_md5"])
        subset = stratified_indices(split.train_y, c["data"]["fraction"], c["seed"])
        if tr["batch_size"] > len(subset):
            raise ConfigError(f"train.batch_size={tr['batch_size']}: must be <= the training set size "
                              f"({len(subset)} images at data.fraction={c['data']['fraction']})")
        test_idx = torch.arange(len(split.test_y))
        if tr["eval_subset"] is not None:
            n_test = len(split.test_y)
            if not 1 <= tr["eval_subset"] <= n_test:
                raise ConfigError(f"train.eval_subset={tr['eval_subset']}: must be null or 1..{n_test}")
            test_idx = stratified_indices(split.test_y, tr["eval_subset"] / n_test, c["seed"])
        torch.manual_seed(c["seed"])  # model initialisation
        model = build_model(c["model"], split.num_classes)  # a built-in ResNet, or the config's `_target_`
        model = model.to(device, memory_format=torch.channels_last)
        # built with the schedule's first LR (torch optimizers need one); the loop sets each step's LR and
        # momentum from the schedule (optim.set_hparams), the same values at step 0
        optimizer = build_optimizer(model, c["optim"], schedule.lr(0))
        order = BatchOrder(len(subset), tr["batch_size"], c["seed"])
    except ValueError as e:
        if isinstance(e, USER_ERRORS):
            raise
        raise ConfigError(str(e)) from None
    # The normalisation statistics come from the FULL training set, also for reduced-training-set runs: the
    # author's Table 1 runs subtract the full set's mean file (mean.binaryproto in every log).
    augment = Augment(c["data"]["augment"], split.train_x)
    train_x, train_y = split.train_x[subset].to(device), split.train_y[subset].to(device)
    test_x, test_y = split.test_x.to(device), split.test_y.to(device)
    # Only the training step is compiled: evaluation (model.eval(), inference mode) calls the eager
    # module, which would otherwise cost a second compilation; checkpoints use its plain state_dict keys.
    step_model = torch.compile(model, mode=tr.get("compile_mode")) if tr.get("compile") else model
    every = tr.get("lr_estimate_every")  # the Hessian-free LR estimate (bench times it too)
    return Parts(c=c, store=store, model=model, optimizer=optimizer, schedule=schedule, train_x=train_x,
                 train_y=train_y, test_x=test_x, test_y=test_y, eval_x=test_x[test_idx.to(device)],
                 eval_y=test_y[test_idx.to(device)], num_classes=split.num_classes, augment=augment, order=order,
                 device=device, amp_dtype=amp_dtype, step_model=step_model,
                 lr_estimate=LREstimate(model.parameters(), every) if every else None, data_source=split.source)


def load_config(cfg) -> tuple[dict, Schedule, RunDir]:
    """Validate once: the plain config, the schedule built while validating it (prepare uses it), and the
    run directory, checked against its owner (`store.is_done()` says whether there is anything to run)."""
    c = plain(cfg)
    schedule = validate(c)
    return c, schedule, check_store(c)


def open_store(s: Parts, resume: dict | None) -> None:
    """Create the run directory and make metrics.csv consistent with the checkpoint (if any)."""
    store = s.store
    store.path.mkdir(parents=True, exist_ok=True)
    # Every attempt rewrites it: check_store has made sure only volatile keys (device, threads, compile,
    # paths...) can differ from a stored one, and those should say how the attempt that finishes ran.
    store.write_config(s.c)
    if resume is not None:
        truncate_metrics(store.metrics, resume["iteration"])
        print(f"superconv: resuming {store.path} at iteration {resume['iteration']}", file=sys.stderr)
    elif store.metrics.exists():
        store.metrics.unlink()  # rows of an attempt that never reached a checkpoint


def provenance(s: Parts, command: str | None, job_type: str) -> dict:
    """Where a number came from: code version, software, hardware, the command that reproduces it."""
    return {
        "git_sha": git_sha(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": describe_device(s.device),
        "precision": "bf16" if s.amp_dtype == torch.bfloat16 else "fp32",
        "fused_bn": fused_share(s.model),
        "hostname": platform.node(),
        "command": command or f"superconv.{job_type}.run(cfg)",
        "finished_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "experiment": s.c["experiment_name"],
        "job_type": job_type,
        "data_source": s.data_source or {"route": "unknown"},
    }


def finish(s: Parts, summary: Mapping) -> None:
    """Write summary.json, drop the checkpoint (unless kept) and mark the run DONE, in that order."""
    s.store.write_summary(summary)
    if not s.c["train"]["keep_checkpoint"]:
        checkpoint.remove(s.store.checkpoint)
    s.store.mark_done()
