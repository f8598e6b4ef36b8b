"""Optional mirrors of a run's metrics (wandb). The results store is written regardless.

wandb is a mirror, never a source: an offline wandb run cannot be read back locally (its history is a
binary file), so figures read `results/` only. With no API key configured and no mode given, a plain
`wandb.init` raises; here the run then goes offline instead, and `WANDB_MODE` always wins.
"""

from __future__ import annotations

import hashlib
import netrc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path


class NullLogger:
    def log_rows(self, rows: Sequence[Mapping]) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(configured: str | None) -> str:
    """WANDB_MODE if set, else the configured mode, else online with an API key and offline without."""
    return os.environ.get("WANDB_MODE") or configured or ("online" if _has_api_key() else "offline")


class WandbLogger:
    """Mirrors config and metric rows; `group` = experiment name, `job_type` = train (or range_test)."""

    def __init__(self, cfg: Mapping, config: Mapping, *, group: str, name: str, run_dir: Path,
                 wandb_dir: Path, job_type: str = "train"):
        import wandb  # slow to import: only when asked for

        Path(wandb_dir).mkdir(parents=True, exist_ok=True)
        run_id = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]
        self._wandb = wandb
        self._run = wandb.init(
            project=cfg.get("project") or "superconv",
            entity=cfg.get("entity"),
            mode=wandb_mode(cfg.get("mode")),
            dir=str(wandb_dir),
            config=dict(config),
            group=group,
            job_type=job_type,
            name=name,
            id=run_id,  # stable: a resumed run continues the same wandb run
            resume="allow",
            reinit=True,
        )

    def log_rows(self, rows: Sequence[Mapping]) -> None:
        for row in rows:
            data = {k: v for k, v in row.items() if v is not None and k != "iteration"}
            self._run.log(data, step=int(row["iteration"]))

    def finish(self, exit_code: int = 0) -> None:
        self._run.finish(exit_code=exit_code)


def make_logger(cfg: Mapping, config: Mapping, *, group: str, name: str, run_dir: Path, wandb_dir: Path,
                job_type: str = "train"):
    if cfg.get("name", "none") == "none":
        return NullLogger()
    return WandbLogger(cfg, config, group=group, name=name, run_dir=run_dir, wandb_dir=wandb_dir,
                       job_type=job_type)
