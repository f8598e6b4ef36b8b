"""What a run does, chosen by `cfg.job`: `train` (superconv.modes.training) or `range_test` (Smith's accuracy
test and fastai's lr_find, superconv.modes.range_test). The entry points (superconv.train, and
superconv.range_test as an alias for range tests) hand every Hydra job to `run`; no mode imports an entry.
"""

from __future__ import annotations

from . import range_test, training


def run(cfg, command: str | None = None) -> dict:
    """Run the job `cfg` describes (a composed config or a plain dict) in the mode `cfg.job` names."""
    if cfg.get("job", "train") == "range_test":  # a range-test experiment, also inside a training sweep
        return range_test.run(cfg, command)
    return training.run(cfg, command)
