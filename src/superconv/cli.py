"""The Hydra entry-point wrapper shared by `superconv.train` and `superconv.range_test`.

Contract of every entry point: exit 0 when the run completed, diverged or was already done; exit 2 with
one line on stderr (no traceback, nothing written) for bad input; 128+signal when stopped by SIGTERM or
SIGINT after writing a checkpoint. In a multirun, a run whose data is missing is skipped and the sweep goes
on, but the command then ends with exit 3 and the list of what it skipped: exit 0 means every run ran
(the skips are collected in a file named by SUPERCONV_SKIP_LOG, which the command creates for its jobs,
local or joblib workers alike, and which a SLURM job on another node can reach only on a shared file system). Hydra itself writes nothing (no .hydra/, no log file, run dir ".");
each run computes its own directory `<paths.results_dir>/<experiment_name>/<override_dirname>`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from .config import CONF_DIR, ConfigError, check_group_overrides, check_override_keys
from .data import DataError
from .loop import Interrupted
from .results import RunDir
from .run_lock import RunLock
from .session import USER_ERRORS, default_run_dir, plain


class RunFailed(Exception):
    """A sweep job's bad input. Raised rather than sys.exit: a SLURM job that exits without a result
    leaves submitit polling forever when the cluster has no accounting (sacct)."""


def fail(message: str, code: int = 2):
    print(f"superconv: error: {message}", file=sys.stderr)
    sys.exit(code)


SKIP_LOG = "SUPERCONV_SKIP_LOG"
EXIT_SKIPPED = 3


def record_skip(run_dir: str, reason: str) -> None:
    """Append one skipped run to the command's skip log (one JSON line; O_APPEND keeps workers' lines whole)."""
    path = os.environ.get(SKIP_LOG)
    if not path:
        return
    line = json.dumps({"run_dir": run_dir, "reason": reason}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def report_skips(path: Path) -> int:
    """After a multirun: list the skipped runs on stderr; EXIT_SKIPPED when there were any, else 0."""
    try:
        lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    except (OSError, ValueError):
        return 0
    if not lines:
        return 0
    print(f"superconv: exit {EXIT_SKIPPED}: {len(lines)} run(s) of this sweep skipped, their data missing "
          f"(the sweep's other runs ran):", file=sys.stderr)
    for rec in lines:
        print(f"  skipped {rec['run_dir']}", file=sys.stderr)
    for reason in dict.fromkeys(rec["reason"] for rec in lines):
        print(f"  because: {reason}", file=sys.stderr)
    return EXIT_SKIPPED


def check_composes(config_name: str, overrides: list[str]) -> None:
    """Compose the config once before Hydra does, to turn a typo into one line and exit code 2.

    Hydra reports a misspelt key (`schedule.max_LR=1`) in several lines with exit code 1; sweeps and
    scripts want the same contract as every other bad value. Only for single runs: a multirun's sweep
    values are composed job by job by Hydra itself.
    """
    from hydra import compose, initialize_config_dir

    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name="check"):
            compose(config_name, overrides=overrides)
    except Exception as e:  # Hydra and OmegaConf raise many types; all mean the same to a user
        raise ConfigError(" ".join(str(e).split())) from None


def plan_line(cfg) -> dict:
    """What a run would do, without doing it: its directory, status and cost in images (make plan). The
    config gets the run's own checks first, so a value the run would refuse is refused here too."""
    from .checkpoint import resume_iteration
    from .config import validate
    from .modes.range_test import validate_range_test

    c = plain(cfg)
    validate(c)
    if c["job"] == "range_test":
        validate_range_test(c)
    store = RunDir(c["paths"]["run_dir"])
    status = "done" if store.is_done() else "partial" if store.checkpoint.exists() else "todo"
    iterations = c["range_test"]["num_it"] if c["job"] == "range_test" and c["range_test"]["mode"] == "loss" \
        else c["train"]["iterations"]
    reached = iterations if status == "done" else resume_iteration(store.checkpoint) if status == "partial" else 0
    if status != "done" and RunLock(store.path).holder() is not None:
        status = "running"  # another process has claimed it: a second `make reproduce` moves past it
    return {"run_dir": str(store.path), "status": status, "experiment": c["experiment_name"], "job": c["job"],
            "depth": None if "_target_" in c["model"] else c["model"]["depth"],  # a `_target_` model: no depth
            "iterations": iterations, "reached": reached, "batch_size": c["train"]["batch_size"],
            "images": iterations * c["train"]["batch_size"],
            "images_to_go": (iterations - reached) * c["train"]["batch_size"], "dataset": c["data"]["name"],
            "eval_every": c["train"]["eval_every"], "eval_subset": c["train"]["eval_subset"],
            "precision": c["train"]["precision"]}


def main(config_name: str, module: str, run: Callable, default_experiment: str = "adhoc") -> None:
    """Check the command line, then hand it to `@hydra.main`, which calls `run(cfg, command=...)`."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    args = sys.argv[1:]
    overrides = [a for a in args if not a.startswith("-")]
    try:
        check_group_overrides(overrides)
        check_override_keys(overrides)
        sweeping = any("," in o or "(" in o for o in overrides)  # sweep values are composed job by job
        if len(overrides) == len(args) and not sweeping:  # a plain single run (no --multirun, --cfg ...)
            check_composes(config_name, overrides)
    except ConfigError as e:
        fail(str(e))

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
    def hydra_main(cfg) -> None:
        hc = HydraConfig.get()
        with open_dict(cfg):
            if cfg.experiment_name == "adhoc":
                cfg.experiment_name = default_experiment
            cfg.paths.run_dir = str(default_run_dir(
                {"paths": {"results_dir": cfg.paths.results_dir}, "experiment_name": cfg.experiment_name},
                hc.job.override_dirname or "default"))
        if cfg.get("dry_run"):  # local only (make plan): a bad value ends the whole command, in one line
            try:
                print(json.dumps(plan_line(cfg)), flush=True)
            except USER_ERRORS as e:
                fail(str(e))
            return
        try:
            run(cfg, command=" ".join([f"python -m {module}", *hc.overrides.task]))
        except DataError as e:
            if hc.mode == RunMode.MULTIRUN:  # missing data (CIFAR-100 offline): skip, let the sweep go on
                print(f"superconv: skipped {cfg.paths.run_dir}: {e}", file=sys.stderr)
                record_skip(str(cfg.paths.run_dir), str(e))  # the command ends non-zero (report_skips)
                return
            fail(str(e))
        except USER_ERRORS as e:
            if hc.mode == RunMode.MULTIRUN:  # an exception, not an exit: submitit and joblib report it back
                raise RunFailed(str(e)) from None
            fail(str(e))
        except Interrupted as e:
            fail(str(e), 128 + e.signum)

    owner = SKIP_LOG not in os.environ  # an outer command (experiments.reproduce) may collect the skips itself
    if owner:
        fd, name = tempfile.mkstemp(prefix="superconv-skipped-", suffix=".jsonl")
        os.close(fd)
        os.environ[SKIP_LOG] = name
    try:
        hydra_main()
    finally:
        if owner:
            path = Path(os.environ.pop(SKIP_LOG))
            code = report_skips(path)
            path.unlink(missing_ok=True)
    if owner and code:
        sys.exit(code)
