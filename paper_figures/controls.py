"""Runs of one experiment that stand in for an arm another experiment does not run itself.

At the frontier scale the sweeps run only the values that differ from the frontier's CLR runs on the 10k subset
at the converged length (400 iterations of batch 1000 = 40 epochs, weight decay 1e-4, 2 seeds): the batch sweeps
(iterations held and epochs held: at batch 1000 both are those runs) and the weight-decay sweep. Their composed
configuration at that value is the frontier runs', key for key (tests/test_experiments.py checks it); running it
again under the weight-decay sweep's name spent two runs, and the batch sweeps' 1000 row stayed empty. The claims
and the sweep figures take their runs through `with_controls`, so the arm is run once and counted in each sweep.
Where a sweep has run the shared value itself (the same configuration and seed), its own run counts and the
frontier's is left out: a seed is never counted twice. (Fig 9b runs its no-dropout arm itself: the dropout
placement is part of the protocol key the report compares within.)
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from experiments.suites import FRONTIER_CONVERGED

from .judging import identity_key
from .selection import select_runs

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
                       "at the frontier scale its arm at batch 1000 and weight decay 1e-4 is the `frontier` "
                       f"experiment's CLR runs (10k subset, {FRONTIER_CONVERGED} iterations = "
                       f"{FRONTIER_CONVERGED * 1000 // 10_000} epochs of batch 1000), run once and shared by "
                       "fig9a_batch, fig9a_batch_epochs and fig10b_weight_decay")  # 10,000 images in the subset
CONTROLS: dict[str, tuple[Control, ...]] = {"fig9a_batch": (FRONTIER_CLR,), "fig9a_batch_epochs": (FRONTIER_CLR,),
                                            "fig10b_weight_decay": (FRONTIER_CLR,)}


def with_controls(summaries: pd.DataFrame, experiments) -> pd.DataFrame:
    """The rows of `summaries` of `experiments`, and the runs that stand in for an arm of theirs (CONTROLS),
    except those whose configuration and seed one of the experiments' own runs has (`judging.identity_key`)."""
    experiments = tuple(experiments)
    if summaries is None or "experiment" not in summaries:
        return summaries if summaries is None else summaries.iloc[0:0]
    own = summaries[summaries["experiment"].isin(experiments)]
    parts, seen = [own], {_identity(r) for _, r in own.iterrows()}
    for control in _controls_of(experiments):
        rows = select_runs(summaries[summaries["experiment"] == control.experiment], dict(control.where))
        parts.append(rows[[_identity(r) not in seen for _, r in rows.iterrows()]] if len(rows) else rows)
    out = pd.concat(parts) if len(parts) > 1 else own
    return out[~out.index.duplicated()]


def _identity(r) -> tuple:
    return identity_key(r), r.get("seed")


def control_text(experiments) -> list[str]:
    """What stands in for the arms `experiments` do not run, one phrase per control."""
    return [c.text for c in _controls_of(tuple(experiments))]


def _controls_of(experiments: tuple) -> list[Control]:
    """The controls of `experiments`, each once, in order."""
    return list(dict.fromkeys(c for e in experiments for c in CONTROLS.get(e, ())))
