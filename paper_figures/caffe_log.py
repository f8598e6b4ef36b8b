"""A reader for the paper author's Caffe training logs, so his curves can be drawn beside ours.

The author's re-runs (github.com/lnsmith54/super-convergence, `Results/*.log`) are glog text: a solver
header, the full net definition, then per display/test interval

    I0817 21:58:33.145417 17550 solver.cpp:337] Iteration 9900, Testing net (#0)
    I0817 21:58:33.145417 17550 solver.cpp:404]     Test net output #0: accuracy = 0.92476
    I0817 21:58:33.145417 17550 solver.cpp:404]     Test net output #1: loss = 0.306059 (* 1 = ...)
    I0817 22:02:10.065716 17550 solver.cpp:228] Iteration 9900, loss = 0.000533901
    I0817 22:02:10.065762 17550 solver.cpp:244]     Train net output #0: accuracy = 1
    I0817 22:02:10.170817 17550 sgd_solver.cpp:166] Iteration 9900, lr = 0.158

Why it is written the way it is:
- Lines are matched by their message, not their position: data-loader threads of the other GPUs write
  lines in between ("Waiting for data"), and a line glued to the next one (two glog records on one line)
  is split at the glog prefix first.
- A test output belongs to the latest "Testing net" line; a test started but never reported (a range
  test cut off mid-evaluation) is dropped. A file that does not end in a newline has its last, partial
  line dropped; a .gz cut short is read up to the cut, with a warning.
- Accuracies stay fractions (0.9244), as in our metrics.csv. `train/loss` is the solver's
  "Iteration N, loss" line (the displayed loss; the last one, after the final iteration, has no
  accuracy), `train/acc` the "Train net output ... accuracy" that follows it.
- A repeated iteration (a resumed run logged twice) keeps its last value.
"""

from __future__ import annotations

import gzip
import re
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["CaffeLog", "read_caffe_log", "read_reference_dir", "find_log", "is_log_file", "log_name"]

_NUM = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))"
# glog prefix: severity+date, time, thread id, file:line]
_PREFIX = re.compile(r"[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [\w.\-]+:\d+\] ?")
_TESTING = re.compile(r"Iteration (\d+), Testing net")
_TEST_OUT = re.compile(r"Test net output #\d+: (\w+) = " + _NUM, re.I)
_TRAIN_LOSS = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = " + _NUM, re.I)
_TRAIN_OUT = re.compile(r"Train net output #\d+: (\w+) = " + _NUM, re.I)
_LR = re.compile(r"Iteration (\d+), lr = " + _NUM, re.I)
_HEADER = re.compile(r"Initializing solver from parameters:")
_KEY_VALUE = re.compile(r"^(\w+): (.*)$")
_BN_FRACTION = re.compile(r"moving_average_fraction: " + _NUM)


@dataclass
class CaffeLog:
    """One parsed log: solver header, BN setting, and the test / train / lr curves (one row per iteration)."""

    name: str
    path: Path
    solver: dict = field(default_factory=dict)
    bn_moving_average_fraction: float | None = None
    test: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["iteration", "test/acc", "test/loss"]))
    train: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["iteration", "train/loss", "train/acc"]))
    lr: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["iteration", "lr"]))

    @property
    def final_test_acc(self) -> float | None:
        """Accuracy of the last completed test (a fraction), None when the log has no test."""
        acc = self.test["test/acc"].dropna()
        return float(acc.iloc[-1]) if len(acc) else None

    @property
    def peak_test_acc(self) -> float | None:
        acc = self.test["test/acc"].dropna()
        return float(acc.max()) if len(acc) else None

    @property
    def last_iteration(self) -> int | None:
        """The highest iteration any curve reached (where a truncated range test stopped)."""
        its = [int(df["iteration"].max()) for df in (self.test, self.train, self.lr) if len(df)]
        return max(its) if its else None

    @property
    def solver_type(self) -> str:
        return str(self.solver.get("type", "SGD"))


def log_name(path: str | Path) -> str:
    """`clr3SS5kFig1a.log.gz` -> `clr3SS5kFig1a`."""
    name = Path(path).name
    for suffix in (".gz", ".log", ".txt"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _value(text: str):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _read_lines(path: Path) -> list[str]:
    """The log's complete lines; a gzip stream cut short gives the lines before the cut (with a warning)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such Caffe log")
    lines: list[str] = []
    if path.name.endswith(".gz"):
        try:
            with gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="") as f:
                for line in f:
                    lines.append(line)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
            if not lines:
                raise ValueError(f"{path}: not a readable gzip file ({type(e).__name__})") from None
            warnings.warn(f"{path}: gzip stream cut short ({type(e).__name__}); read {len(lines)} lines", stacklevel=3)
    else:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()  # a partial last line: its number may be cut short
    out = []
    for line in lines:
        line = line.rstrip("\r\n")
        starts = [m.start() for m in _PREFIX.finditer(line)]
        if len(starts) > 1:  # two glog records glued together by concurrent writers
            out += [line[a:b] for a, b in zip([0] + starts[1:], starts[1:] + [len(line)])]
        else:
            out.append(line)
    return out


def _parse_solver(lines: list[str], start: int) -> dict:
    """Top-level `key: value` lines after the header; repeated keys (stepvalue) become lists."""
    solver: dict = {}
    depth = 0
    for line in lines[start + 1:]:
        if _PREFIX.match(line):
            break
        s = line.strip()
        if s.endswith("{"):
            depth += 1
            continue
        if s == "}":
            depth = max(depth - 1, 0)
            continue
        m = _KEY_VALUE.match(s)
        if depth or not m:
            continue
        key, value = m.group(1), _value(m.group(2))
        if key == "stepvalue":
            solver.setdefault(key, []).append(value)
        elif key in solver:
            solver[key] = solver[key] if isinstance(solver[key], list) else [solver[key]]
            solver[key].append(value)
        else:
            solver[key] = value
    if "lr_policy" in solver or "base_lr" in solver:
        solver.setdefault("stepvalue", [])
    return solver


def _frame(rows: dict[int, dict], columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame([{"iteration": it, **vals} for it, vals in sorted(rows.items())], columns=columns)
    df["iteration"] = df["iteration"].astype("int64")
    for c in columns[1:]:
        df[c] = df[c].astype("float64")
    return df


def read_caffe_log(path: str | Path) -> CaffeLog:
    """Parse one Caffe training log (plain text or .gz). Missing file: FileNotFoundError; not a log: ValueError."""
    path = Path(path)
    lines = _read_lines(path)
    solver: dict = {}
    bn = None
    test: dict[int, dict] = {}
    train: dict[int, dict] = {}
    lr: dict[int, dict] = {}
    testing_at = None  # iteration of the test being reported
    train_at = None  # iteration of the last "Iteration N, loss" line
    for i, line in enumerate(lines):
        if not solver and _HEADER.search(line):
            solver = _parse_solver(lines, i)
            continue
        if bn is None and "moving_average_fraction" in line:
            m = _BN_FRACTION.search(line)
            if m:
                bn = float(m.group(1))
            continue
        if "Iteration" in line:
            if m := _TESTING.search(line):
                testing_at = int(m.group(1))
                continue
            if m := _LR.search(line):
                lr[int(m.group(1))] = {"lr": float(m.group(2))}
                continue
            if m := _TRAIN_LOSS.search(line):
                train_at = int(m.group(1))
                train[train_at] = {"train/loss": float(m.group(2))}
                continue
        if testing_at is not None and (m := _TEST_OUT.search(line)):
            key = {"accuracy": "test/acc", "loss": "test/loss"}.get(m.group(1).lower())
            if key:
                test.setdefault(testing_at, {})[key] = float(m.group(2))
            continue
        if train_at is not None and (m := _TRAIN_OUT.search(line)):
            if m.group(1).lower() == "accuracy":
                train[train_at]["train/acc"] = float(m.group(2))
    if not solver and not test and not train and not lr:
        raise ValueError(f"{path}: not a Caffe training log (no solver header, no iteration lines)")
    test = {it: v for it, v in test.items() if "test/acc" in v}  # a test cut off before its accuracy
    return CaffeLog(
        name=log_name(path), path=path, solver=solver, bn_moving_average_fraction=bn,
        test=_frame(test, ["iteration", "test/acc", "test/loss"]),
        train=_frame(train, ["iteration", "train/loss", "train/acc"]),
        lr=_frame(lr, ["iteration", "lr"]),
    )


def is_log_file(p: Path) -> bool:
    """A Caffe log by its name: `*.log`, `*.log.gz`, or no suffix at all, as the files of the official repo's
    `Results/` folder are named (`clr3SS5kFig1a`); hidden files and other suffixes (README.md) are not."""
    return p.is_file() and not p.name.startswith(".") and (p.name.endswith((".log", ".log.gz")) or "." not in p.name)


def find_log(folder: str | Path, name: str) -> Path:
    """The file of log `name` in `folder`: `name.log`, `name.log.gz` or the bare `name`, first found in that
    order; FileNotFoundError naming the three when none exists."""
    folder = Path(folder)
    for candidate in (f"{name}.log", f"{name}.log.gz", name):
        if (folder / candidate).is_file():
            return folder / candidate
    raise FileNotFoundError(f"{folder}: no {name}.log, {name}.log.gz or {name}")


def read_reference_dir(path: str | Path) -> dict[str, CaffeLog]:
    """Every Caffe log in a folder (`is_log_file`: e.g. the official repo's `Results/` as cloned), by name.

    A missing folder is a FileNotFoundError naming it; an unreadable log is skipped with a warning, so
    one bad file does not take the author's other curves off the figures. `name.log` wins over
    `name.log.gz`, and both over a bare `name`, when several exist.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such reference folder (expected Caffe logs: *.log, *.log.gz or "
                                "the official repo's Results/ files)")
    files = sorted(p for p in path.iterdir() if is_log_file(p))
    order = {".log": 0, ".gz": 1}
    logs: dict[str, CaffeLog] = {}
    for f in sorted(files, key=lambda p: (log_name(p), order.get(p.suffix, 2))):
        name = log_name(f)
        if name in logs:
            warnings.warn(f"{f}: {name} already read from {logs[name].path.name}; ignored", stacklevel=2)
            continue
        try:
            logs[name] = read_caffe_log(f)
        except (OSError, ValueError) as e:
            warnings.warn(f"skipped reference log: {e}", stacklevel=2)
    return logs
