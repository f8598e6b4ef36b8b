"""The schedules themselves: LR (top) and momentum (bottom) against the iteration, as in the seed's illustration.

Drawn from the code, not from results: each schedule is `superconv.schedules.build_schedule` applied to
its config file `conf/schedule/<name>.yaml` (clr, one_cycle, fastai, multistep) over 10,000 iterations,
with momentum 0.9 where the schedule keeps it constant. The figure therefore shows exactly what a run
with `schedule=<name>` and `train.iterations=10000` would use (positions in the run are fractions, so a
longer or shorter run is the same picture stretched). A config file that is missing or invalid gives a
note in the figure instead of its curves.

Table (`schedules.csv`): LR and momentum of each schedule at iterations 0, 2500, 5000, 7500 and 9999.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import yaml

from superconv.schedules import Schedule, build_schedule

from . import style
from .caffe_log import CaffeLog

__all__ = ["draw", "build", "describe", "SCHEDULES", "TOTAL", "MOMENTUM", "TABLE_ITERATIONS", "STEM", "CONF_DIR"]

SCHEDULES = ("clr", "one_cycle", "fastai", "multistep")
TOTAL = 10_000
MOMENTUM = 0.9  # optim.momentum: the momentum of the schedules that do not cycle it
TABLE_ITERATIONS = (0, 2500, 5000, 7500, 9999)
STEM = "schedules"
CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "schedule"
STYLES = {"clr": "-", "one_cycle": "--", "fastai": "-.", "multistep": ":"}


def build(name: str, conf_dir: Path = CONF_DIR) -> tuple[Schedule, dict]:
    """(schedule, config) for `conf_dir/<name>.yaml` over TOTAL iterations; OSError/ValueError if unusable."""
    path = Path(conf_dir) / f"{name}.yaml"
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: not a mapping")
    return build_schedule(cfg, TOTAL, MOMENTUM), cfg


def describe(s: Schedule) -> str:
    """A legend label with the schedule's settings."""
    p = s.params
    if s.name == "clr":
        text = f"{p['min_lr']:g} -> {p['max_lr']:g} -> {p['min_lr']:g}, peak at {p['peak_at']:.0%}"
    elif s.name in ("one_cycle", "fastai"):
        phases = "3-phase" if p["three_phase"] else "2-phase"
        text = f"{phases} {p['anneal']}, max {p['max_lr']:g}, start {p['min_lr']:.3g}, warm-up {p['pct_start']:.0%}"
    elif s.name == "multistep":
        drops = ", ".join(f"{m:.1%}" for m in p["milestones"])
        text = f"{p['max_lr']:g}, x{p['gamma']:g} at {drops}"
    else:
        text = ""
    mom = (f"mom {p['max_momentum']:g}-{p['base_momentum']:g}" if p.get("cycle_momentum")
           else f"mom {p.get('momentum', MOMENTUM):g}")
    return f"{s.name}: {text}; {mom}" if text else f"{s.name}; {mom}"


def draw(runs: pd.DataFrame, summaries: pd.DataFrame, out_dir: Path,
         reference: dict[str, CaffeLog] | None, conf_dir: Path | None = None) -> list[Path]:
    """Write schedules.pdf/.png/.csv (the results and the reference are not used)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    conf_dir = Path(conf_dir) if conf_dir is not None else CONF_DIR
    its = np.arange(TOTAL)
    palette = dict(zip(SCHEDULES, sns.color_palette("colorblind", len(SCHEDULES))))
    fig, (ax_lr, ax_mom) = plt.subplots(2, 1, figsize=(6.4, 5.0), sharex=True, height_ratios=(3, 2))
    rows, notes = [], []
    for name in SCHEDULES:
        try:
            s, _ = build(name, conf_dir)
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as e:
            notes.append(f"{name}: not drawn ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
            continue
        lr = np.array([s.lr(int(i)) for i in its])
        mom = np.array([s.momentum(int(i)) for i in its])
        kw = dict(color=palette[name], linestyle=STYLES[name], linewidth=1.4)
        ax_lr.plot(its, lr, label=describe(s), **kw)
        ax_mom.plot(its, mom, **kw)
        for it in TABLE_ITERATIONS:
            rows.append({"schedule": name, "iteration": it, "lr": s.lr(it), "momentum": s.momentum(it)})
    ax_lr.set_ylabel("learning rate")
    ax_mom.set_ylabel("momentum")
    ax_mom.set_xlabel(f"iteration (of {TOTAL:,})")
    ax_lr.set_xlim(0, TOTAL)
    top = max((float(np.max(line.get_ydata())) for line in ax_lr.lines), default=1.0)
    ax_lr.set_ylim(0, 1.45 * top)  # headroom for the legend above the curves
    lo, hi = ax_mom.get_ylim()
    ax_mom.set_ylim(min(lo, 0.83), max(hi, 0.97))
    if ax_lr.lines:
        ax_lr.legend(fontsize=6, loc="upper right", framealpha=0.9)
    else:
        ax_lr.text(0.5, 0.5, "no schedule config found", ha="center", va="center", transform=ax_lr.transAxes)
    ax_lr.set_title(f"Schedules as configured in conf/schedule/*.yaml, {TOTAL:,} iterations "
                    f"(constant momentum {MOMENTUM:g})", fontsize=8)
    fig.tight_layout()
    if notes:
        fig.text(0.01, -0.01, "\n".join(f"Note: {n}" for n in notes), ha="left", va="top", fontsize=6.5)
    written = style.save(fig, out_dir / STEM)
    table = pd.DataFrame(rows, columns=["schedule", "iteration", "lr", "momentum"])
    written.append(style.write_table(table, out_dir / f"{STEM}.csv"))
    return written
