"""Which runs `make reproduce SCALE=...` launches: one entry per experiment config, with extra overrides.

Each entry becomes one command, `python -m superconv.train experiment=<name> scale=<scale> <overrides>`,
whose sweep (declared in the experiment's YAML, refined by the overrides) Hydra expands into runs with
deterministic directories `results/<experiment>/<override_dirname>/`. Finished runs (DONE) are skipped,
interrupted ones resume, so a suite can be rerun at any time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CONF_EXPERIMENTS = Path(__file__).resolve().parents[1] / "conf" / "experiment"


@dataclass(frozen=True)
class Job:
    experiment: str
    overrides: tuple[str, ...] = field(default_factory=tuple)
    why: str = ""


def all_experiments() -> list[str]:
    return sorted(p.stem for p in CONF_EXPERIMENTS.glob("*.yaml"))


# The mini suite: real CIFAR-10 on a 2-core CPU in about an hour (choices in conf/scale/mini.yaml). It
# covers Fig 1a and the training-set-size sweep with 2 seeds each, the Fig 2b range test and its dropout twin
# (the author's dropout protocol), the four named sweeps and Fig 5b's LR estimate (constant vs CLR); every other
# experiment is paper-scale only.
# Not here on purpose: fig6b_depth and range_fig4b_* (their ResNet-110 is a real ResNet-110, ~6x a
# ResNet-20's cost on this CPU).
MINI = (
    Job("fig1a", ("seed=0,1",), "the main comparison, CLR 150 it vs PC-LR 1200 it, 2 seeds"),
    Job("range_fig2b_20k", (), "Smith's range test, LR 0 -> 3 over 300 iterations"),
    Job("range_fig10a_dropout", (), "the same range test with dropout 0.2 after every BN in the blocks [log]"),
    Job("fig6a_fraction", ("data.fraction=0.4,0.2", "seed=0,1"), "training-set size, both schedules, 2 seeds (1.0 is fig1a)"),
    Job("fig9a_batch", ("train.batch_size=512,256,128",), "batch size, CLR"),
    Job("fig10b_weight_decay", ("optim.weight_decay=1e-3,1e-4,1e-5",), "weight decay, CLR"),
    Job("fig9b_dropout", ("model.dropout=0.0,0.2",), "dropout, CLR"),
    Job("fig5b_lr_estimate", (), "Fig 5b: the Hessian-free LR estimate, constant LR 0.1 vs CLR, 150 it each"),
)


# Smoke runs every experiment with its whole sweep, except values the tiny synthetic set cannot hold.
SMOKE_OVERRIDES = {"fig9a_batch": ("train.batch_size=64,32",)}  # batch 1536 > 400 synthetic images


def suite(scale: str) -> tuple[Job, ...]:
    """The jobs of a scale: mini is the curated list above; smoke and paper run every experiment."""
    if scale == "mini":
        return MINI
    if scale == "smoke":
        return tuple(Job(e, SMOKE_OVERRIDES.get(e, ())) for e in all_experiments())
    if scale == "paper":
        return tuple(Job(e) for e in all_experiments())
    raise ValueError(f"SCALE={scale!r}: must be one of smoke, mini, paper")


def command(job: Job, scale: str, python: str = "python") -> list[str]:
    return [python, "-m", "superconv.train", f"experiment={job.experiment}", f"scale={scale}", *job.overrides]


# Measured training throughput (images/s, train step only), used to estimate wall time (results/bench/).
# CPU: this project's 2-core AMD EPYC development machine, fp32, batch 128 (ResNet-20 480, ResNet-56 153;
# ResNet-110 scaled by depth). GPU: one NVIDIA H200, bf16, batch 1000 (ResNet-20 75,047 by make bench;
# ResNet-56 32,003 from the whole paper-scale Fig 1a CLR run, tests included: 10M images in 321 s;
# ResNet-110 scaled by depth). The author's 2017 rate, from the logs: Fig 1a CLR, 10M images in ~6 h on 8
# GTX Titan Black = ~48 GPU-hours per 10M images, tests included.
CPU_IMAGES_PER_S = {20: 480.0, 56: 153.0, 110: 78.0}
H200_IMAGES_PER_S = {20: 75_000.0, 56: 32_000.0, 110: 16_300.0}
AUTHOR_GPU_HOURS_PER_IMAGE = 48.0 / 10_000_000
