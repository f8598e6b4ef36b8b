"""Selecting runs by their columns: a filter value matches a cell within rounding (floats), as a bool (bools),
else by equality. Shared by the claims (paper_figures.verdicts) and the arms one experiment lends another
(paper_figures.controls), below both so neither imports the other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["is_num", "same_value", "select_runs"]


def is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def same_value(x, v) -> bool:
    """`x` (a cell) equals `v` (a filter value): floats within rounding, bools as bools, else ==."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return False
    if isinstance(v, (bool, np.bool_)):
        return isinstance(x, (bool, np.bool_)) and bool(x) == bool(v)
    if is_num(v):
        if isinstance(x, (bool, np.bool_)):
            return False
        try:
            return math.isclose(float(x), float(v), rel_tol=1e-6, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return x == v


def select_runs(df: pd.DataFrame, where: Mapping[str, object]) -> pd.DataFrame:
    mask = np.ones(len(df), dtype=bool)
    for col, v in where.items():
        if col not in df:
            return df.iloc[0:0]
        mask &= np.array([same_value(x, v) for x in df[col].tolist()], dtype=bool)
    return df[mask]
