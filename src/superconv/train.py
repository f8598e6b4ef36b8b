"""Train one network: `python -m superconv.train [overrides]` (also `superconv-train`).

    python -m superconv.train                       # the paper's Fig 1a CLR run (ResNet-56, batch 1000, 10k it)
    python -m superconv.train scale=smoke           # seconds on a CPU, synthetic data
    python -m superconv.train model=resnet20 data.fraction=0.1 train.batch_size=128 \
        train.iterations=200 train.eval_every=50    # ~1-2 min on a 2-core CPU, real CIFAR-10

Output: one directory `<paths.results_dir>/<experiment_name>/<override_dirname or "default">/` with
config.yaml, metrics.csv, summary.json and DONE (see superconv.results). Ad-hoc runs go to the gitignored
`outputs/`; experiment configs write to `results/`. Rerunning a finished configuration does nothing;
rerunning an interrupted one resumes from its checkpoint.

Exit codes: 0 completed, diverged or already done; 2 bad input (one line on stderr, nothing written);
128+signal when stopped by SIGTERM/SIGINT (a checkpoint was written: rerun to resume).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import torch

from . import checkpoint
from .config import CONF_DIR, ConfigError, check_group_overrides, identity, validate
from .data import DataError, Augment, BatchOrder, load_dataset, stratified_indices
from .loggers import make_logger
from .loop import Interrupted, Parts, Settings, run_loop
from .models.resnet import build_resnet
from .optim import build_optimizer
from .results import RunDir, StoreError, finite_or_none
from .schedules import build_schedule

USER_ERRORS = (ConfigError, DataError, StoreError, checkpoint.CheckpointError)


def git_sha() -> str:
    """The commit of the code that ran, with `-dirty` when the work tree had uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {cpu}, {torch.get_num_threads()} threads"


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda: no CUDA device is available; use auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 instructions (AVX512-BF16 or AMX-BF16).

    Without them oneDNN emulates bf16 and autocast is ~10x *slower* than fp32 (measured on an AVX2-only
    AMD EPYC: ResNet-20 at batch 128, 423 img/s fp32 vs 43 bf16); with them it is ~2x faster.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_precision(name: str, device: torch.device) -> torch.dtype | None:
    """`auto`: bf16 autocast where it is faster (CUDA with bf16; CPUs with bf16 instructions), else fp32."""
    if name == "fp32":
        return None
    if name == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_native_bf16() else None


def default_run_dir(cfg: Mapping, run_name: str = "default") -> Path:
    return Path(cfg["paths"]["results_dir"]) / cfg["experiment_name"] / run_name


def _differences(a, b, prefix="") -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def _plain(cfg) -> dict:
    from omegaconf import DictConfig, OmegaConf

    from omegaconf.errors import OmegaConfBaseException

    if isinstance(cfg, DictConfig):
        try:
            return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as e:
            raise ConfigError(" ".join(str(e).split())) from None
    return dict(cfg)


def run(cfg, command: str | None = None) -> dict:
    """Train the run `cfg` describes (a composed config or a plain dict); return its summary.

    Every check (values, data, the run directory's owner, the checkpoint) happens before anything is
    written. Raises one of USER_ERRORS for bad input, `Interrupted` after a signal.
    """
    c = _plain(cfg)
    validate(c)
    store = RunDir(c["paths"].get("run_dir") or default_run_dir(c))

    if store.path.exists():
        stored = store.read_config()
        if stored is None and store.foreign_files():
            raise StoreError(f"{store.path}: holds files that are not a superconv run "
                             f"({', '.join(store.foreign_files()[:3])}); choose another paths.results_dir")
        if stored is not None and identity(stored) != identity(c):
            diff = _differences(identity(stored), identity(c))
            raise StoreError(f"{store.path}: holds a run of another configuration (differs in {', '.join(diff[:4])}); "
                             f"choose another paths.results_dir or move that directory away")
        if store.is_done():
            print(f"superconv: {store.path} is already done; nothing to do", file=sys.stderr)
            return store.read_summary()

    tr = c["train"]
    if tr["threads"]:
        torch.set_num_threads(tr["threads"])
    torch.use_deterministic_algorithms(bool(tr["deterministic"]))
    device = pick_device(tr["device"])
    amp_dtype = pick_precision(tr["precision"], device)

    try:
        split = load_dataset(c["data"]["name"], c["paths"]["data_dir"], download=c["data"]["download"],
                             verify_md5=c["data"]["verify_md5"])
        subset = stratified_indices(split.train_y, c["data"]["fraction"], c["seed"])
        if tr["batch_size"] > len(subset):
            raise ConfigError(f"train.batch_size={tr['batch_size']}: must be <= the training set size "
                              f"({len(subset)} images at data.fraction={c['data']['fraction']})")
        torch.manual_seed(c["seed"])  # model initialisation
        m = c["model"]
        model = build_resnet(m["depth"], m["variant"], split.num_classes, m["dropout"], m["bn_momentum"])
        model = model.to(device, memory_format=torch.channels_last)
        schedule = build_schedule(c["schedule"], tr["iterations"], c["optim"]["momentum"])
        optimizer = build_optimizer(model, c["optim"], schedule.lr(0))
        order = BatchOrder(len(subset), tr["batch_size"], c["seed"])
    except ValueError as e:
        if isinstance(e, USER_ERRORS):
            raise
        raise ConfigError(str(e)) from None
    resume = checkpoint.load(store.checkpoint)

    train_x, train_y = split.train_x[subset].to(device), split.train_y[subset].to(device)
    parts = Parts(model=model, optimizer=optimizer, schedule=schedule, train_x=train_x, train_y=train_y,
                  test_x=split.test_x.to(device), test_y=split.test_y.to(device),
                  augment=Augment(c["data"]["augment"], train_x), order=order, device=device,
                  amp_dtype=amp_dtype, seed=c["seed"])
    settings = Settings(iterations=tr["iterations"], eval_every=tr["eval_every"],
                        eval_batch_size=tr["eval_batch_size"], log_every=tr["log_every"],
                        checkpoint_every=tr["checkpoint_every"], progress=tr["progress"],
                        desc=c["experiment_name"])

    store.path.mkdir(parents=True, exist_ok=True)
    if store.read_config() is None:
        store.write_config(c)
    if resume is not None:
        from .results import truncate_metrics

        truncate_metrics(store.metrics, resume["iteration"])
        print(f"superconv: resuming {store.path} at iteration {resume['iteration']}", file=sys.stderr)
    elif store.metrics.exists():
        store.metrics.unlink()  # rows of an attempt that never reached a checkpoint

    logger = make_logger(c["logger"], c, group=c["experiment_name"], name=store.path.name, run_dir=store.path,
                         wandb_dir=Path(c["paths"]["wandb_dir"]))
    exit_code = 1
    try:
        out = run_loop(parts, settings, store, logger, resume)
        exit_code = 0
    finally:
        logger.finish(exit_code=exit_code)

    summary = {
        "status": out.status,
        "final_test_acc": finite_or_none(out.final_test_acc),
        "final_test_loss": finite_or_none(out.final_test_loss),
        "best_test_acc": finite_or_none(out.best_test_acc),
        "iterations": out.iterations,
        "images_seen": out.images_seen,
        "wall_s": round(out.wall_s, 3),
        "train_s": round(out.train_s, 3),
        "images_per_s": round(out.images_per_s, 2),
        "git_sha": git_sha(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": describe_device(device),
        "precision": "bf16" if amp_dtype == torch.bfloat16 else "fp32",
        "hostname": platform.node(),
        "command": command or "superconv.train.run(cfg)",
        "finished_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "experiment": c["experiment_name"],
        "job_type": "train",
    }
    if out.status == "diverged":
        summary["diverged_at"] = out.diverged_at
        summary["last_finite"] = {k: finite_or_none(v) if isinstance(v, float) else v
                                  for k, v in out.last_finite.items()}
    store.write_summary(summary)
    if not tr["keep_checkpoint"]:
        checkpoint.remove(store.checkpoint)
    store.mark_done()
    acc = summary["final_test_acc"]
    print(f"superconv: {out.status} {store.path} "
          f"final test acc {acc if acc is None else f'{acc:.4f}'}, {summary['images_per_s']:.0f} img/s, "
          f"{summary['wall_s']:.0f} s", file=sys.stderr)
    return summary


def _fail(message: str, code: int = 2):
    print(f"superconv: error: {message}", file=sys.stderr)
    sys.exit(code)


def _hydra_entry():
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
    def hydra_main(cfg) -> None:
        hc = HydraConfig.get()
        run_name = hc.job.override_dirname or "default"
        with open_dict(cfg):
            cfg.paths.run_dir = str(default_run_dir({"paths": {"results_dir": cfg.paths.results_dir},
                                                     "experiment_name": cfg.experiment_name}, run_name))
        command = " ".join(["python -m superconv.train", *hc.overrides.task])
        try:
            run(cfg, command=command)
        except USER_ERRORS as e:
            _fail(str(e))
        except Interrupted as e:
            _fail(str(e), 128 + e.signum)

    return hydra_main


def check_composes(overrides: list[str]) -> None:
    """Compose the config once before Hydra does, to turn a typo into one line and exit code 2.

    Hydra reports a misspelt key (`schedule.max_LR=1`) in several lines with exit code 1; sweeps and
    scripts want the same contract as every other bad value. Only for single runs: a multirun's sweep
    values are composed job by job by Hydra itself.
    """
    from hydra import compose, initialize_config_dir

    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name="check"):
            compose("config", overrides=overrides)
    except Exception as e:  # Hydra and OmegaConf raise many types; all mean the same to a user
        raise ConfigError(" ".join(str(e).split())) from None


def main() -> None:
    """Console entry point: bad overrides get one line and exit code 2 before Hydra starts."""
    args = sys.argv[1:]
    overrides = [a for a in args if not a.startswith("-")]
    try:
        check_group_overrides(overrides)
        if len(overrides) == len(args):  # a plain single run (no --multirun, --cfg, --help ...)
            check_composes(overrides)
    except ConfigError as e:
        _fail(str(e))
    _hydra_entry()()


if __name__ == "__main__":
    main()
