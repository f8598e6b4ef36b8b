"""Runs of one experiment that stand in for an arm another experiment does not run itself.

At the frontier scale the sweeps run only the values that differ from the frontier's own CLR run on the 10k
subset at the converged length (400 iterations of batch 1000 = 40 epochs, weight decay 1e-4): the batch sweeps
(iterations held and epochs held: both are that run at batch 1000) and the weight-decay sweep. Their configuration
at that value is the frontier run's, key for key; running it again under each sweep's name would spend six runs
on one configuration already run twice. The claims and the sweep figures take their runs through
`with_controls`, so the arm is counted and drawn where it is run once. (Fig 9b's no-dropout arm is run by the
sweep itself: its dropout placement is part of the protocol the report compares within.)
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from experiments.suites import FRONTIER_CONVERGED

__all__ = ["Control", "CONTROLS", "with_controls", "control_text"]


@dataclass(frozen=True)
class Control:
    """The runs of `experiment` matching `where` (column == value): they join the runs of every experiment
    that CONTROLS maps to this control."""

    experiment: str
    where: tuple[tuple[str, object], ...]
    text: str  # what the runs are, for the report


# The frontier's CLR runs at the converged length on the 10k subset (weight decay 1e-4: conf/optim/sgd.yaml).
FRONTIER_CLR = Control("frontier", (("batch_size", 1000), ("fraction", 0.2), ("iterations", FRONTIER_CONVERGED),
                                    ("scale", "frontier"), ("schedule", "clr"), ("weight_decay", 1e-4)),
                       f"at the frontier scale its arm at batch 1000 and weight decay 1e-4 is the `frontier` "
                       f"experiment's own CLR run (10k subset, {FRONTIER_CONVERGED} iterations = "
                       f"{FRONTIER_CONVERGED // 10} epochs), run once for every sweep")  # 10 iterations an epoch
CONTROLS: dict[str, tuple[Control, ...]] = {"fig9a_batch": (FRONTIER_CLR,), "fig9a_batch_epochs": (FRONTIER_CLR,),
                                            "fig10b_weight_decay": (FRONTIER_CLR,)}


def with_controls(summaries: pd.DataFrame, experiments) -> pd.DataFrame:
    """The rows of `summaries` of `experiments`, and of the runs that stand in for an arm of theirs (CONTROLS),
    each run once."""
    if summaries is None or summaries.empty or "experiment" not in summaries:
        return summaries
    from .verdicts import select_runs  # verdicts imports this module

    parts = [summaries[summaries["experiment"].isin(experiments)]]
    for control in dict.fromkeys(c for e in experiments for c in CONTROLS.get(e, ())):
        parts.append(select_runs(summaries[summaries["experiment"] == control.experiment], dict(control.where)))
    out = pd.concat(parts) if len(parts) > 1 else parts[0]
    return out[~out.index.duplicated()]


def control_text(experiments) -> list[str]:
    """What stands in for the arms `experiments` do not run, one phrase per control."""
    return [c.text for c in dict.fromkeys(c for e in experiments for c in CONTROLS.get(e, ()))]
