"""Run health: flags decided from a run's metrics.csv alone, so that a run that "trained" while its test accuracy
sat at chance, or one stopped while still climbing, is named next to its number instead of noticed by a person.

`assess(rows, num_classes, status)` takes the rows of `superconv.results.read_metrics` (or dicts with the same
keys; None or NaN for an empty cell), the number of classes and the run's status, and returns a `Health`:
the flags raised, a sentence for each saying why, and the checks that could not be made. `superconv.train`
writes it into summary.json (`health`); `paper_figures.report` computes it for runs stored before it existed.

The rules (C = number of classes; chance accuracy 1/C, chance loss ln C):

- `test_lags_train`: the test accuracy sits near chance while the network fits its training batches, as when
  BatchNorm running statistics lag the weights (PyTorch BN momentum 1e-3 or 1e-4 without bias correction:
  the statistics used at test time are still mostly their initial 0 / 1), or the model is evaluated in the
  wrong mode. An evaluation *lags* when its test accuracy <= 1/C + CHANCE_MARGIN and the training accuracy
  around it (the mean of train/acc over the rows since the previous evaluation, at least the last
  SMOOTH_ROWS rows) >= test accuracy + LAG_GAP. Flagged when the final evaluation lags, or when the longest
  unbroken stretch of lagging evaluations holds >= LAG_MIN_EVALS evaluations and >= LAG_MIN_SHARE of all the
  run's evaluations, or when the lagging evaluations together are >= LAG_MIN_SHARE of them (a test accuracy
  that flickers above chance now and then while the running statistics lag: the author's PC-LR run on 10k
  images, lr35Tr10kTab1, lags at 472 of its 801 evaluations, up to its first LR drop, in unbroken stretches of
  at most 144).
- `never_learns`: the training loss never falls below chance: its running mean over SMOOTH_ROWS consecutive
  rows (all rows when fewer) stays >= ln C - NEVER_LEARNS_MARGIN throughout.
- `diverged`: the run's status is `diverged` (recorded by the loop at the first non-finite loss).
- `still_improving`: the test accuracy is still rising steeply where the run stops while the LR no longer
  moves, so the final number is a point on a climb, not the run's result. The stretch examined: the
  evaluations in the last STILL_TAIL of the run's iterations during which the LR stayed within a factor
  STEADY_LR_RATIO of its final value without rising (PC-LR's last step, a constant LR). Flagged when it holds
  >= STILL_MIN_EVALS evaluations and the least-squares line through their test accuracies rises by >=
  STILL_RISE over STILL_TAIL of the run. Not judged when the LR still falls at the end (CLR's and 1cycle's
  final descent: the rise there is the schedule's anneal, which is what the schedule is, not a run cut short)
  or rises (a range test), and with fewer evaluations.
- `ends_below_peak`: the final test accuracy is more than FALL_GAP below the run's best evaluation, so its
  number is a point after a fall, not its result (a weight decay that makes a run collapse, BN statistics that
  drift late in a run). Not judged for range tests, which end at their largest LR by design.
- `underfit`: the run ended below UNDERFIT_BELOW training accuracy, measured by `superconv.train` with one full
  pass over its own training set in eval mode (no augmentation, the running BN statistics the test uses:
  `final_train_acc` in summary.json). The author's runs end at ~100% training accuracy (their logs' last
  training batches), so a run below the threshold has not finished learning and its test accuracy measures
  the run length rather than the schedule (docs/PROTOCOL.md, "Convergence"). Only training runs are judged
  (a range test ends at its largest LR by design); a run without the measurement (stored before it existed,
  or diverged) is not judged here: the report falls back to `tail_train_acc`, labelled as such.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["FLAGS", "CHANCE_MARGIN", "LAG_GAP", "LAG_MIN_EVALS", "LAG_MIN_SHARE", "NEVER_LEARNS_MARGIN",
           "SMOOTH_ROWS", "STILL_TAIL", "STEADY_LR_RATIO", "STILL_MIN_EVALS", "STILL_RISE", "NUM_CLASSES",
           "UNDERFIT_BELOW", "TAIL_SHARE", "FALL_GAP", "RULES_VERSION", "Health", "assess", "rule_test_lags_train",
           "rule_never_learns", "rule_still_improving", "rule_ends_below_peak", "rule_underfit", "tail_train_acc", "num_classes_of"]

FLAGS = ("test_lags_train", "never_learns", "diverged", "still_improving", "ends_below_peak", "underfit")
RULES_VERSION = 3  # stored with the flags: the report recomputes flags stored under older rules (2: underfit;
#   3: ends_below_peak, lagging evaluations counted in total as well as in their longest stretch)

CHANCE_MARGIN = 0.10  # "near chance": test accuracy <= 1/C + 0.10 (CIFAR-10: 20%)
LAG_GAP = 0.20  # training accuracy >= test accuracy + 0.20 (20 percentage points)
LAG_MIN_EVALS = 2  # a stretch of lagging evaluations: at least 2 in a row...
LAG_MIN_SHARE = 0.25  # ...and at least a quarter of the run's evaluations
NEVER_LEARNS_MARGIN = 0.10  # nats below ln C the smoothed training loss must reach once
SMOOTH_ROWS = 10  # rows in a running mean of the per-batch training loss / accuracy
STILL_TAIL = 0.20  # the end of a run: its last 20% of iterations
STEADY_LR_RATIO = 1.25  # LR within x1.25 of its final value (and not rising) = steady
STILL_MIN_EVALS = 3  # evaluations needed in the steady end stretch to fit a slope
STILL_RISE = 0.04  # rise of the fitted line over STILL_TAIL of the run: 4 percentage points (at mini scale the
#   noise of that fit, 8 evaluations on 2000 test images, is ~2 pp: committed PC-LR runs give -0.013 to +0.015)
FALL_GAP = 0.10  # final test accuracy > 10 percentage points below the run's best evaluation
UNDERFIT_BELOW = 0.97  # final training accuracy (full pass, eval mode) below which a run has not converged: the
#   author's 43 logs end at ~100% on their training batches (docs/PROTOCOL.md, "Convergence")
TAIL_SHARE = 0.05  # runs without the full pass: the mean per-batch training accuracy of their last 5% of iterations
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "synthetic": 10}  # data.name -> classes (synthetic: its default)


@dataclass(frozen=True)
class Health:
    flags: tuple[str, ...] = ()
    why: dict = field(default_factory=dict)  # flag -> sentence
    not_judged: dict = field(default_factory=dict)  # check -> why it could not be made

    def to_json(self) -> dict:
        return {"flags": list(self.flags), "why": dict(self.why), "not_judged": dict(self.not_judged),
                "rules_version": RULES_VERSION}


def num_classes_of(dataset) -> int | None:
    return NUM_CLASSES.get(dataset) if isinstance(dataset, str) else None


def _val(row: Mapping, key: str) -> float | None:
    v = row.get(key)
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _sorted(rows: Sequence[Mapping]) -> list[Mapping]:
    return sorted(rows, key=lambda r: int(r["iteration"]))


# ------------------------------------------------------------------------------ the rules
def rule_test_lags_train(rows: Sequence[Mapping], num_classes: int) -> tuple[bool, str]:
    """(flagged, why): see the module docstring."""
    rows = _sorted(rows)
    its = [int(r["iteration"]) for r in rows]
    evals = [i for i, r in enumerate(rows) if _val(r, "test/acc") is not None]
    if not evals:
        return False, "no test evaluation"
    chance = 1.0 / num_classes
    lag, prev = [], -1
    for i in evals:
        lo = min(prev + 1, max(0, i - SMOOTH_ROWS + 1))
        train = _mean([v for r in rows[lo:i + 1] if (v := _val(r, "train/acc")) is not None])
        test = _val(rows[i], "test/acc")
        lag.append(train is not None and test <= chance + CHANCE_MARGIN and train >= test + LAG_GAP)
        prev = i
    best, cur, best_end = 0, 0, -1
    for k, x in enumerate(lag):
        cur = cur + 1 if x else 0
        if cur > best:
            best, best_end = cur, k
    last = rows[evals[-1]]
    final = (f"final evaluation (iteration {its[evals[-1]]}) at test accuracy {_val(last, 'test/acc'):.3f}"
             f" (chance {chance:.3f})")
    if lag[-1]:
        return True, f"{final} while the training batches are fit {LAG_GAP:.2f}+ better"
    if best >= LAG_MIN_EVALS and best >= LAG_MIN_SHARE * len(lag):
        a, b = its[evals[best_end - best + 1]], its[evals[best_end]]
        return True, (f"test accuracy <= chance + {CHANCE_MARGIN:.2f} with the training accuracy {LAG_GAP:.2f}+ "
                      f"above it at {best} evaluations in a row (iterations {a}-{b}, {best} of {len(lag)})")
    total = sum(lag)
    if total >= LAG_MIN_EVALS and total >= LAG_MIN_SHARE * len(lag):
        lagging = [its[i] for i, x in zip(evals, lag) if x]
        return True, (f"test accuracy <= chance + {CHANCE_MARGIN:.2f} with the training accuracy {LAG_GAP:.2f}+ "
                      f"above it at {total} of {len(lag)} evaluations (iterations {lagging[0]}-{lagging[-1]}; "
                      f"longest unbroken stretch {best})")
    return False, f"longest lagging stretch {best}, {total} in all, of {len(lag)} evaluations; {final}"


def rule_never_learns(rows: Sequence[Mapping], num_classes: int) -> tuple[bool, str]:
    """(flagged, why): see the module docstring."""
    losses = [v for r in _sorted(rows) if (v := _val(r, "train/loss")) is not None]
    if not losses:
        return False, "no training loss"
    w = min(SMOOTH_ROWS, len(losses))
    run = sum(losses[:w])
    best = run / w
    for i in range(w, len(losses)):
        run += losses[i] - losses[i - w]
        best = min(best, run / w)
    floor = math.log(num_classes) - NEVER_LEARNS_MARGIN
    text = (f"lowest training loss (mean of {w} rows) {best:.3f} vs chance ln {num_classes} = "
            f"{math.log(num_classes):.3f}")
    return best >= floor, text


def rule_still_improving(rows: Sequence[Mapping]) -> tuple[bool | None, str]:
    """(flagged, why); flagged None when the check does not apply (see the module docstring)."""
    rows = [r for r in _sorted(rows) if _val(r, "lr") is not None]
    if not rows:
        return None, "no rows"
    last_it = int(rows[-1]["iteration"])
    final_lr = _val(rows[-1], "lr")
    k = len(rows) - 1
    while k > 0 and final_lr / STEADY_LR_RATIO <= _val(rows[k - 1], "lr") <= final_lr * STEADY_LR_RATIO:
        k -= 1
    steady_lr = _val(rows[k], "lr")
    if final_lr > steady_lr * (1 + 1e-9):
        return None, f"LR still rising at the end ({steady_lr:.3g} -> {final_lr:.3g}): a range test"
    start = max(int(rows[k]["iteration"]), last_it * (1.0 - STILL_TAIL))
    pts = [(int(r["iteration"]), _val(r, "test/acc")) for r in rows
           if int(r["iteration"]) >= start and _val(r, "test/acc") is not None]
    if len(pts) < STILL_MIN_EVALS:
        if int(rows[k]["iteration"]) > last_it * (1.0 - STILL_TAIL):
            why = (f"LR steady (within x{STEADY_LR_RATIO:g} of its final {final_lr:.3g}) only from iteration "
                   f"{int(rows[k]['iteration'])} of {last_it}")
        else:
            why = f"{len(pts)} evaluations in the last {STILL_TAIL:.0%} of the run"
        return None, f"{why}: fewer than {STILL_MIN_EVALS} evaluations to fit"
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    rise = slope * STILL_TAIL * last_it
    text = (f"test accuracy over the last {len(pts)} evaluations at LR {final_lr:.3g} (iterations {xs[0]}-{xs[-1]}) "
            f"rises {rise:+.3f} per {STILL_TAIL:.0%} of the run")
    return rise >= STILL_RISE, text


def rule_ends_below_peak(rows: Sequence[Mapping]) -> tuple[bool | None, str]:
    """(flagged, why); flagged None without two evaluations (see the module docstring)."""
    accs = [(int(r["iteration"]), v) for r in _sorted(rows) if (v := _val(r, "test/acc")) is not None]
    if len(accs) < 2:
        return None, "fewer than 2 evaluations"
    peak_it, peak = max(accs, key=lambda p: p[1])
    final_it, final = accs[-1]
    text = f"final test accuracy {final:.4f} (iteration {final_it}) vs best {peak:.4f} (iteration {peak_it})"
    return peak - final > FALL_GAP, text


def rule_underfit(final_train_acc: float | None) -> tuple[bool | None, str]:
    """(flagged, why); flagged None when there is no full-pass training accuracy to judge."""
    if final_train_acc is None or not math.isfinite(final_train_acc):
        return None, "no full-pass training accuracy (final_train_acc)"
    return final_train_acc < UNDERFIT_BELOW, (f"final training accuracy {final_train_acc:.4f} (full pass, eval mode) "
                                              f"vs threshold {UNDERFIT_BELOW:.2f}")


def tail_train_acc(rows: Sequence[Mapping], share: float = TAIL_SHARE) -> float | None:
    """The mean per-batch training accuracy over the last `share` of a run's iterations (at least its last row):
    the stand-in for `final_train_acc` in runs stored before the full pass existed. Per-batch accuracy is taken
    in training mode on augmented batches while the weights move, so it is a different (usually lower) number
    than the full pass: the report labels it."""
    rows = [r for r in _sorted(rows) if _val(r, "train/acc") is not None]
    if not rows:
        return None
    last = int(rows[-1]["iteration"])
    tail = [_val(r, "train/acc") for r in rows if int(r["iteration"]) > last * (1.0 - share)] or [
        _val(rows[-1], "train/acc")]
    return sum(tail) / len(tail)


def assess(rows: Sequence[Mapping], num_classes: int, status: str = "completed",
           final_train_acc: float | None = None, *, range_test: bool = False) -> Health:
    """Every flag of one run (see the module docstring). `final_train_acc`: the full-pass training accuracy of a
    training run (None: not measured, `underfit` not judged); `range_test`: an LR range test (`ends_below_peak`
    not judged)."""
    outcomes = {  # flag -> (flagged: True / False / None = not judged, why)
        "test_lags_train": rule_test_lags_train(rows, num_classes),
        "never_learns": rule_never_learns(rows, num_classes),
        "diverged": (status == "diverged", "the run stopped at a non-finite training loss"),
        "still_improving": rule_still_improving(rows),
        "ends_below_peak": (None, "a range test ends at its largest LR") if range_test else rule_ends_below_peak(rows),
        "underfit": rule_underfit(final_train_acc),
    }
    flags, why, not_judged = [], {}, {}
    for flag, (hit, text) in outcomes.items():
        if hit is None:
            not_judged[flag] = text
        elif hit:
            flags.append(flag)
            why[flag] = text
    return Health(tuple(flags), why, not_judged)
