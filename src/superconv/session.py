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
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from . import checkpoint
from .allocator import keep_freed_memory
from .config import ConfigError, identity, validate
from .hardware import describe_device, git_sha, pick_device, pick_precision
from .data import DataError, Split, load_dataset
from .loop import Parts
from .lr_estimate import LREstimate
from .models.resnet import build_resnet
from .optim import build_optimizer
from .results import RunDir, StoreError, truncate_metrics
from .sampling import Augment, BatchOrder, stratified_indices
from .schedules import Schedule, build_schedule

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


@dataclass
class Setup:
    """What a run trains with, built and checked before anything is written."""

    c: dict
    store: RunDir
    device: torch.device
    amp_dtype: torch.dtype | None
    split: Split  # on the device; train_x/train_y already the `data.fraction` subset
    eval_x: torch.Tensor  # the test images of intermediate evaluations (train.eval_subset, or all)
    eval_y: torch.Tensor
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    order: BatchOrder
    augment: Augment
    step_model: torch.nn.Module  # `model`, or torch.compile(model) (train.compile); shares its parameters

    def parts(self) -> Parts:
        """What the loop trains with (superconv.train and superconv.bench step the same thing)."""
        return Parts(model=self.model, optimizer=self.optimizer, schedule=self.schedule,
                     train_x=self.split.train_x, train_y=self.split.train_y, test_x=self.split.test_x,
                     test_y=self.split.test_y, eval_x=self.eval_x, eval_y=self.eval_y, augment=self.augment,
                     order=self.order, device=self.device, amp_dtype=self.amp_dtype, seed=self.c["seed"],
                     step_model=self.step_model, lr_estimate=self._lr_estimate())

    def _lr_estimate(self) -> LREstimate | None:
        """The Hessian-free LR estimate when `train.lr_estimate_every` asks for it (bench times it too)."""
        every = self.c["train"].get("lr_estimate_every")
        return LREstimate(self.model.parameters(), every) if every else None


def prepare(c: dict, *, iterations: int, schedule_cfg: Mapping) -> Setup:
    """Check everything and build the run's parts; raises one of USER_ERRORS on bad input."""
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
    store = check_store(c)
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
        m = c["model"]
        model = build_resnet(m["depth"], m["variant"], split.num_classes, m["dropout"], m["bn_momentum"],
                             m["dropout_at"], m["bn_stats"], m["bn_group"])
        model = model.to(device, memory_format=torch.channels_last)
        schedule = build_schedule(schedule_cfg, iterations, c["optim"]["momentum"])
        optimizer = build_optimizer(model, c["optim"], schedule.lr(0))
        order = BatchOrder(len(subset), tr["batch_size"], c["seed"])
    except ValueError as e:
        if isinstance(e, USER_ERRORS):
            raise
        raise ConfigError(str(e)) from None
    # The normalisation statistics come from the FULL training set, also for reduced-training-set runs: the
    # author's Table 1 runs subtract the full set's mean file (mean.binaryproto in every log).
    augment = Augment(c["data"]["augment"], split.train_x)
    split = Split(train_x=split.train_x[subset].to(device), train_y=split.train_y[subset].to(device),
                  test_x=split.test_x.to(device), test_y=split.test_y.to(device),
                  num_classes=split.num_classes, classes=split.classes)
    # Only the training step is compiled: evaluation (model.eval(), inference mode) calls the eager
    # module, which would otherwise cost a second compilation; checkpoints use its plain state_dict keys.
    step_model = torch.compile(model, mode=tr.get("compile_mode")) if tr.get("compile") else model
    return Setup(c=c, store=store, device=device, amp_dtype=amp_dtype, split=split, model=model,
                 step_model=step_model, eval_x=split.test_x[test_idx.to(device)],
                 eval_y=split.test_y[test_idx.to(device)], optimizer=optimizer, schedule=schedule, order=order,
                 augment=augment)


def load_config(cfg) -> tuple[dict, RunDir | None]:
    """Validate; return the plain config and, when the run is already done, its store (else None)."""
    c = plain(cfg)
    validate(c)
    store = check_store(c)
    return c, (store if store.is_done() else None)


def open_store(s: Setup, resume: dict | None) -> None:
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


def provenance(s: Setup, command: str | None, job_type: str) -> dict:
    """Where a number came from: code version, software, hardware, the command that reproduces it."""
    return {
        "git_sha": git_sha(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": describe_device(s.device),
        "precision": "bf16" if s.amp_dtype == torch.bfloat16 else "fp32",
        "hostname": platform.node(),
        "command": command or f"superconv.{job_type}.run(cfg)",
        "finished_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "experiment": s.c["experiment_name"],
        "job_type": job_type,
    }


def finish(s: Setup, summary: Mapping) -> None:
    """Write summary.json, drop the checkpoint (unless kept) and mark the run DONE, in that order."""
    s.store.write_summary(summary)
    if not s.c["train"]["keep_checkpoint"]:
        checkpoint.remove(s.store.checkpoint)
    s.store.mark_done()
