"""One look for every figure, and files whose bytes depend only on what was drawn.

`make figures` must leave a figure whose inputs did not change byte-identical, so that git and make see
no change. Hence: the Agg backend and a font shipped with matplotlib (DejaVu Sans, found offline on
every machine), no creation date or software version in the PDF/PNG metadata, a fixed SVG hash salt and
PDF compression level, and files rewritten only when their bytes differ (their mtime then stays too).
Tables are written with a fixed float format for the same reason.

Which bytes travel between machines: the PNGs (Agg and Pillow's bundled zlib, pinned by requirements.lock) and
the CSV tables are tracked in git. The PDFs are stable on one machine but not across machines: the font subset
fontTools embeds and the streams compressed by the system's zlib differ from one installation to another, so
they are written but not tracked (.gitignore).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

from superconv.atomic import write_if_changed

__all__ = ["setup", "save", "write_table", "summarize", "DPI", "PDF_METADATA", "PNG_METADATA"]

DPI = 200
FONT = "DejaVu Sans"
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": "superconv paper_figures"}
PNG_METADATA = {"Software": None}
FLOAT_FORMAT = "%.6g"


def setup() -> None:
    """Seaborn paper context on a white grid, Agg backend, and the rcParams that make output reproducible."""
    matplotlib.use("Agg", force=True)
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", font=FONT)
    matplotlib.rcParams.update({
        "font.family": "sans-serif",
        "font.sans-serif": [FONT],
        "svg.hashsalt": "superconv",  # fixed ids in SVG output instead of random ones
        "svg.fonttype": "path",
        "pdf.compression": 6,
        "pdf.fonttype": 42,  # embedded TrueType: selectable text, same bytes each time
        "figure.dpi": 100,
        "savefig.dpi": DPI,
        "savefig.bbox": "tight",
        "path.simplify": True,
        "axes.formatter.use_mathtext": False,
    })


def save(fig, path_without_suffix: str | os.PathLike, *, close: bool = True) -> list[Path]:
    """Write `<path>.pdf` and `<path>.png`; return both paths. `fig` may be a Figure or a seaborn grid."""
    import matplotlib.pyplot as plt

    fig = getattr(fig, "figure", fig)  # FacetGrid / JointGrid -> their Figure
    base = Path(path_without_suffix)
    out = []
    for suffix, metadata in ((".pdf", PDF_METADATA), (".png", PNG_METADATA)):
        buf = io.BytesIO()
        fig.savefig(buf, format=suffix[1:], metadata=dict(metadata), dpi=DPI)
        path = base.with_name(base.name + suffix)
        write_if_changed(path, buf.getvalue())
        out.append(path)
    if close:
        plt.close(fig)
    return out


def summarize(df, by: Sequence[str], value: str):
    """n / mean / sd of `value` per group of `by` (n counts non-missing values; sd is NaN when n = 1)."""
    import pandas as pd

    by = list(by)
    if not by:
        v = df[value].dropna()
        return pd.DataFrame({"n": [len(v)], "mean": [v.mean()], "sd": [v.std(ddof=1)]})
    g = df.groupby(by, dropna=False, sort=True)[value]
    out = g.agg(n="count", mean="mean", sd=lambda s: s.std(ddof=1)).reset_index()
    out["n"] = out["n"].astype("int64")
    out.loc[out["n"] < 2, "sd"] = float("nan")
    return out


def write_table(df, path: str | os.PathLike) -> Path:
    """The table a figure was drawn from, as CSV: fixed float format, NaN as an empty cell, LF endings."""
    path = Path(path)
    text = df.to_csv(index=False, float_format=FLOAT_FORMAT, na_rep="", lineterminator="\n")
    write_if_changed(path, text.encode("utf-8"))
    return path
