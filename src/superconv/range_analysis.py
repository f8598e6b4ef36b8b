"""Analysis of LR range tests: pure functions on logged numbers (numpy only; no torch, no Hydra).

Two kinds of range test are analysed here.

* **Accuracy mode** (Smith & Topin, Fig 2, Fig 7, Fig 11): one run whose LR rises *linearly* (paper:
  0 -> 3), with the **test accuracy** evaluated along the way. :func:`verdict` applies the project's
  super-convergence rule to the (LR, test accuracy) curve; :func:`suggest_bounds` turns the curve into a
  ``(min_lr, max_lr)`` pair for a CLR / 1cycle run.
* **Loss mode** (fastai v2 ``Learner.lr_find``): the LR rises *exponentially* (1e-7 -> 10 over 100
  iterations), the training loss is smoothed with fastai's debiased EMA (:func:`smooth_losses`), the
  run stops once the smoothed loss exceeds 4x the best so far (:func:`stop_index`), and an LR is
  suggested from the smoothed curve (:func:`lr_find_suggestions`, fastai's ``valley``, ``steep``,
  ``minimum`` and ``slide`` rules).

The fastai rules are transcriptions of ``fastai/callback/schedule.py`` (``valley``, ``slide``,
``minimum``, ``steep``, ``LRFinder.after_batch``) and ``fastai/learner.py`` (``AvgSmoothLoss``); every
place where this module departs from fastai is said in the docstring of the function concerned.

All return values are JSON-serialisable (plain ``float``/``int``/``str``/``bool``/``None``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "smooth_losses",
    "stop_index",
    "lr_find_suggestions",
    "suggest_bounds",
    "verdict",
    "LossStop",
    "analyze_accuracy_curve",
    "analyze_loss_curve",
    "MIN_POINTS",
    "BOUNDARY_SLACK",
]

# Fewest points lr_find_suggestions accepts (fastai itself has no check and fails in odd ways below it).
MIN_POINTS = 5
# Absolute slack on the accuracy threshold of the verdict, so that an accuracy exactly at
# (1 - tolerance) * peak counts as "within tolerance" despite float rounding (0.8 * 0.8 = 0.6400000000000001).
BOUNDARY_SLACK = 1e-9


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------


def _as_1d(name: str, values) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:  # pragma: no cover - message only
        raise ValueError(f"{name} must be a sequence of numbers ({exc})") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _fmt(x: float | None) -> str:
    """A short human form of a number: 3 significant digits, 'None' for None."""
    if x is None:
        return "None"
    return f"{x:.3g}"


def _fmt_acc(x: float) -> str:
    return f"{x:.3f}"


def _fmt_pct(frac: float) -> str:
    return f"{frac * 100:g}%"


# ---------------------------------------------------------------------------------------------------
# loss mode: fastai lr_find
# ---------------------------------------------------------------------------------------------------


def smooth_losses(losses: Sequence[float], beta: float = 0.98) -> list[float]:
    """fastai's debiased exponential moving average of the training loss (``AvgSmoothLoss``).

    ``avg_0 = 0``; for each loss ``l_i`` (i from 0): ``avg = beta*avg + (1-beta)*l_i`` and
    ``smoothed_i = avg / (1 - beta**(i+1))``. The first smoothed value therefore equals the first loss,
    and a constant input stays constant. A NaN/inf loss propagates to every later value, as in fastai.
    ``beta`` must lie in [0, 1); ``beta = 0`` returns the losses unchanged.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    out: list[float] = []
    avg = 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1.0 - beta) * float(loss)
        out.append(avg / (1.0 - beta ** (i + 1)))
    return out


def stop_index(smoothed: Sequence[float], factor: float = 4.0) -> int | None:
    """First index where the smoothed loss blows up (fastai ``LRFinder`` with ``stop_div=True``).

    Rule: the first ``i`` with ``smoothed[i] > factor * min(smoothed[:i+1])`` (strictly greater; the
    best loss is updated with the current value before the comparison, as in fastai's ``after_batch``);
    ``None`` if there is none. The value at the returned index is the last one fastai records.

    Departure from fastai: a NaN smoothed loss also stops (its index is returned). fastai's
    comparisons are False on NaN, so it keeps training to ``num_it`` and then drops everything from the
    first NaN before suggesting; stopping there yields the same suggestions. ``+inf`` stops in both.
    """
    if factor <= 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    best = math.inf
    for i, value in enumerate(smoothed):
        v = float(value)
        if math.isnan(v):
            return i
        if v < best:
            best = v
        if v > factor * best:
            return i
    return None


def _valley_index(losses: np.ndarray) -> int:
    """fastai v2 ``valley``: index of the suggestion (see :func:`lr_find_suggestions`)."""
    n = len(losses)
    lds = [1] * n  # lds[i]: length of the longest strictly decreasing subsequence ending at i
    max_start, max_end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    # fastai would index lrs[-1] (the LARGEST LR) when idx == -1, which happens when the longest
    # valley is the first two points; that is a negative-index accident, so we clamp to 0.
    return max(idx, 0)


def _slide_lr(lrs: np.ndarray, losses: np.ndarray, lr_diff: int = 15, thresh: float = 0.005,
              adjust_value: float = 1.0) -> float:
    """fastai v2 ``slide`` with its defaults (see :func:`lr_find_suggestions`)."""
    loss_grad = np.gradient(losses)
    r_idx = -1
    l_idx = r_idx - lr_diff
    local_min_lr = lrs[l_idx]
    while l_idx >= -len(losses) and abs(loss_grad[r_idx] - loss_grad[l_idx]) > thresh:
        local_min_lr = lrs[l_idx]
        r_idx -= 1
        l_idx -= 1
    return float(local_min_lr) * adjust_value


def lr_find_suggestions(lrs: Sequence[float], losses: Sequence[float], *, skip_start: int = 0,
                        skip_end: int = 0) -> dict[str, float]:
    """fastai v2's LR suggestions from an exponential range test's SMOOTHED losses.

    Inputs: the LR of each iteration (strictly increasing, all > 0) and the smoothed training loss
    (:func:`smooth_losses`) up to the stop (:func:`stop_index`). fastai's ``lr_find`` first drops the
    first ``num_it // 10`` and the last 5 recorded points (``skip_start=num_it//10, skip_end=5`` here;
    the defaults drop nothing), then cuts at the first NaN loss; so does this function. At least
    ``MIN_POINTS`` (5) points must remain, else ``ValueError``.

    Rules (fastai v2, ``fastai/callback/schedule.py``):

    * ``minimum``: ``lrs[argmin(losses)] / 10`` (first minimum on ties).
    * ``steep``: the steepest descent of loss vs log(lr). fastai v2 uses the forward difference
      ``g_k = (loss[k+1]-loss[k]) / (log lr[k+1] - log lr[k])`` and returns ``lrs[argmin g]``, the LEFT
      end of the steepest segment (fastai v1's ``min_grad_lr`` used ``np.gradient`` instead; the v2
      rule is used here).
    * ``valley``: the longest valley. ``lds[i]`` = length of the longest strictly decreasing
      subsequence (not necessarily contiguous) ending at ``i``; ``max_end`` = first ``i`` with the
      largest ``lds``; ``max_start = max_end - lds[max_end]`` (one before the valley's first point);
      ``s = (max_end - max_start)/3``; index ``max_start + int(s) + int(s/2)``, i.e. about half-way
      down the valley. Departure: fastai would return ``lrs[-1]`` when that index is -1 (longest valley
      = first two points); we return ``lrs[0]``.
    * ``slide`` (only when more than 15 points remain; fastai raises IndexError otherwise): with
      ``grad = np.gradient(losses)`` (per index, not per log-LR), slide a window of 15 points leftwards
      from the end while ``|grad[r] - grad[r-15]| > 0.005``; the suggestion is the LR at the left end of
      the last window that satisfied the test (the first window's left end if none did).

    Returns ``{"valley", "steep", "minimum"[, "slide"]}`` as plain floats. Deterministic: the same input
    gives the same output (no randomness, first-index tie breaking).
    """
    lr = _as_1d("lrs", lrs)
    loss = _as_1d("losses", losses)
    if len(lr) != len(loss):
        raise ValueError(f"lrs and losses differ in length ({len(lr)} vs {len(loss)})")
    if skip_start < 0 or skip_end < 0:
        raise ValueError(f"skip_start and skip_end must be >= 0, got {skip_start}, {skip_end}")
    stop = len(lr) - skip_end
    lr, loss = lr[skip_start:stop], loss[skip_start:stop]
    nan = np.flatnonzero(np.isnan(loss))
    if len(nan):
        lr, loss = lr[: nan[0]], loss[: nan[0]]
    if len(lr) < MIN_POINTS:
        raise ValueError(f"need at least {MIN_POINTS} finite points to suggest an LR, got {len(lr)}")
    if not np.all(np.isfinite(lr)) or np.any(lr <= 0):
        raise ValueError("lrs must be finite and > 0 (the loss-mode range test is exponential in the LR)")
    if np.any(np.diff(lr) <= 0):
        raise ValueError("lrs must be strictly increasing")

    i_min = int(np.argmin(loss))
    minimum = float(lr[i_min]) / 10

    log_lr = np.log(lr)
    grads = (loss[1:] - loss[:-1]) / (log_lr[1:] - log_lr[:-1])
    steep = float(lr[int(np.argmin(grads))])

    valley = float(lr[_valley_index(loss)])

    out = {"valley": valley, "steep": steep, "minimum": minimum}
    if len(loss) > 15:
        out["slide"] = _slide_lr(lr, loss)
    return out


# ---------------------------------------------------------------------------------------------------
# accuracy mode: Smith's range test
# ---------------------------------------------------------------------------------------------------


def _check_curve(lrs, accs) -> tuple[np.ndarray, np.ndarray]:
    lr = _as_1d("lrs", lrs)
    acc = _as_1d("accs", accs)
    if len(lr) == 0:
        raise ValueError("empty range-test curve: no (lr, accuracy) evaluations")
    if len(lr) != len(acc):
        raise ValueError(f"lrs and accs differ in length ({len(lr)} vs {len(acc)})")
    if not (np.all(np.isfinite(lr)) and np.all(np.isfinite(acc))):
        raise ValueError("lrs and accs must be finite numbers")
    if np.any(np.diff(lr) < 0):
        raise ValueError("lrs must be non-decreasing (evaluations in the order the LR rose)")
    return lr, acc


def running_median(acc: np.ndarray, window: int) -> np.ndarray:
    """Centered running median (window shrinks at the ends): one noisy test point changes nothing.

    The author's own range tests (range3Iter5k/20k/100kFig2b) dip for a single evaluation below 80% of
    their peak (e.g. 0.648 against a threshold of 0.652 at 4900 of 5000 iterations) although the paper
    reads them, rightly, as staying high; judged point by point they would all "collapse".
    """
    if window <= 1:
        return acc
    half = window // 2
    return np.array([np.median(acc[max(0, i - half):i + half + 1]) for i in range(len(acc))])


def default_window(n_evals: int) -> int:
    """5% of the evaluations, made odd: the same share of a 5k or a 100k-iteration test (50 or 1000
    evaluations: 3 or 51); a short curve (under 30 evaluations) is judged point by point."""
    w = round(0.05 * n_evals)
    return max(1, w if w % 2 else w + 1) if w >= 2 else 1


def _curve_stats(lr: np.ndarray, acc: np.ndarray, tolerance: float, window: int | None = 1) -> dict:
    """Peak, threshold, first drop below the threshold after the peak, and the plateau end."""
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
    window = default_window(len(acc)) if window is None else window
    acc = running_median(acc, window)
    i_peak = int(np.argmax(acc))  # first maximum
    peak = float(acc[i_peak])
    threshold = (1.0 - tolerance) * peak
    below = np.flatnonzero(acc[i_peak + 1:] < threshold - BOUNDARY_SLACK)
    i_drop = i_peak + 1 + int(below[0]) if len(below) else None
    i_plateau_end = (i_drop - 1) if i_drop is not None else len(lr) - 1
    return {
        "i_peak": i_peak,
        "peak": peak,
        "threshold": threshold,
        "i_drop": i_drop,
        "i_plateau_end": i_plateau_end,
    }


def verdict(lrs: Sequence[float], accs: Sequence[float], *, diverged_lr: float | None = None,
            tolerance: float = 0.2, chance: float | None = None, window: int | None = None) -> dict:
    """The project's super-convergence verdict on an accuracy-mode LR range test.

    Input: the LR of each test evaluation (non-decreasing, in the order the LR rose) and its test
    accuracy (any unit, fraction or percent, as long as ``chance`` uses the same one).

    Rule (on the running median of ``window`` consecutive evaluations, by default 5% of them (see
    ``default_window``), so that isolated noisy test points make neither the peak nor a collapse;
    ``window=1`` judges the raw points):
      1. ``peak`` = the maximum accuracy (first one on ties) and ``peak_lr`` its LR.
      2. If ``chance`` is given and ``peak < 1.5 * chance``: label ``"never_learns"``.
      3. Else if ``diverged_lr`` is given (the run diverged, e.g. NaN loss, before reaching the end of
         the range): label ``"diverged"``; divergence before the end of the range counts as a collapse.
      4. Else if every evaluation after the peak stays ``>= (1 - tolerance) * peak`` up to the largest
         LR tested (an accuracy exactly on the threshold counts as within; ``BOUNDARY_SLACK`` absorbs
         float rounding): label ``"stays_high"``.
      5. Else: label ``"collapses"``.
    ``super_convergence_possible`` is True for ``"stays_high"`` only.

    ``plateau_end_lr`` is the largest LR still within tolerance before the first drop below the
    threshold after the peak (the last LR tested if there is no drop); ``first_drop_lr`` is the LR of
    that first drop (None if none). Note that a curve whose peak is its last point trivially "stays
    high"; pass ``chance`` to catch curves that never learn.

    Returns a JSON-serialisable dict: ``label``, ``super_convergence_possible``, ``peak_acc``,
    ``peak_lr``, ``plateau_end_lr``, ``first_drop_lr``, ``threshold``, ``final_acc``,
    ``max_lr_tested``, ``n_evals``, ``tolerance``, ``diverged_lr``, ``chance``, ``text`` (one sentence
    with the numbers). ``ValueError`` (one line) on an empty or malformed curve.
    """
    lr, acc = _check_curve(lrs, accs)
    s = _curve_stats(lr, acc, tolerance, window)
    peak, peak_lr = s["peak"], float(lr[s["i_peak"]])
    plateau_end_lr = float(lr[s["i_plateau_end"]])
    first_drop_lr = float(lr[s["i_drop"]]) if s["i_drop"] is not None else None
    final_acc, max_lr_tested = float(acc[-1]), float(lr[-1])
    tol = _fmt_pct(tolerance)
    peak_txt = f"peak {_fmt_acc(peak)} (LR {_fmt(peak_lr)})"

    if chance is not None and peak < 1.5 * chance:
        label = "never_learns"
        text = (f"accuracy never rises above 1.5x chance ({_fmt_acc(chance)}): {peak_txt}, final "
                f"{_fmt_acc(final_acc)} at LR {_fmt(max_lr_tested)}"
                + (f", diverged at LR {_fmt(diverged_lr)}" if diverged_lr is not None else "")
                + ": the network never learns, no verdict on super-convergence")
    elif diverged_lr is not None:
        label = "diverged"
        text = (f"training diverged at LR {_fmt(diverged_lr)} after a peak accuracy of {_fmt_acc(peak)} at "
                f"LR {_fmt(peak_lr)} (last evaluation {_fmt_acc(final_acc)} at LR {_fmt(max_lr_tested)}): "
                f"divergence before the end of the range counts as a collapse, super-convergence is not "
                f"indicated")
    elif s["i_drop"] is None:
        label = "stays_high"
        text = (f"accuracy stays within {tol} of its {peak_txt} up to LR {_fmt(max_lr_tested)} "
                f"(final {_fmt_acc(final_acc)}): super-convergence is possible")
    else:
        label = "collapses"
        text = (f"accuracy falls below {_fmt_pct(1 - tolerance)} of its {peak_txt} at LR "
                f"{_fmt(first_drop_lr)} (plateau ends at LR {_fmt(plateau_end_lr)}; final "
                f"{_fmt_acc(final_acc)} at LR {_fmt(max_lr_tested)}): the curve collapses, "
                f"super-convergence is not indicated")

    return {
        "label": label,
        "super_convergence_possible": label == "stays_high",
        "peak_acc": peak,
        "peak_lr": peak_lr,
        "plateau_end_lr": plateau_end_lr,
        "first_drop_lr": first_drop_lr,
        "threshold": float(s["threshold"]),
        "final_acc": final_acc,
        "max_lr_tested": max_lr_tested,
        "n_evals": int(len(lr)),
        "tolerance": float(tolerance),
        "diverged_lr": None if diverged_lr is None else float(diverged_lr),
        "chance": None if chance is None else float(chance),
        "text": text,
    }


BOUND_RULES = ("peak", "plateau_end")


def suggest_bounds(lrs: Sequence[float], accs: Sequence[float], *, rule: str = "peak",
                   min_div: float = 4.0, tolerance: float = 0.2, window: int | None = None) -> dict:
    """``(min_lr, max_lr)`` for a CLR / 1cycle run from an accuracy-mode range test.

    Rules:
      * ``"peak"``: ``max_lr`` = the LR at the peak test accuracy (first one on ties).
      * ``"plateau_end"``: ``max_lr`` = the largest LR before accuracy first falls below
        ``(1 - tolerance) * peak`` after the peak (the verdict's ``plateau_end_lr``, same tolerance,
        default 0.2); the last LR tested if it never falls.
    ``min_lr = max_lr / min_div``. Guidance: ``min_div`` 3-4 (CLR paper, arXiv 1506.01186), 10-20
    (1cycle, arXiv 1803.09820).

    Returns ``{"max_lr", "min_lr", "rule", "min_div", "text"}`` (``text`` says in words which rule was
    used). ``ValueError`` on an unknown rule, ``min_div < 1``, a malformed curve, or ``max_lr <= 0``
    (peak at LR 0: no usable bound).
    """
    if rule not in BOUND_RULES:
        raise ValueError(f"unknown rule {rule!r}; expected one of {', '.join(BOUND_RULES)}")
    if not (math.isfinite(min_div) and min_div >= 1.0):
        raise ValueError(f"min_div must be a finite number >= 1, got {min_div}")
    lr, acc = _check_curve(lrs, accs)
    s = _curve_stats(lr, acc, tolerance, window)
    peak, peak_lr = s["peak"], float(lr[s["i_peak"]])
    if rule == "peak":
        max_lr = peak_lr
        how = f"the LR at peak test accuracy {_fmt_acc(peak)}"
    else:
        max_lr = float(lr[s["i_plateau_end"]])
        if s["i_drop"] is None:
            how = (f"the largest LR tested, accuracy never falling below {_fmt_pct(1 - tolerance)} of its "
                   f"peak {_fmt_acc(peak)} (LR {_fmt(peak_lr)})")
        else:
            how = (f"the largest LR before accuracy first falls below {_fmt_pct(1 - tolerance)} of its "
                   f"peak {_fmt_acc(peak)} (LR {_fmt(peak_lr)})")
    if max_lr <= 0:
        raise ValueError(f"rule {rule!r} gives max_lr {max_lr} <= 0 (peak at LR 0): no usable bound")
    min_lr = max_lr / min_div
    if 3.0 <= min_div <= 4.0:
        guide = "CLR-paper guidance 3-4"
    elif 10.0 <= min_div <= 20.0:
        guide = "1cycle guidance 10-20"
    else:
        guide = "outside the usual 3-4 (CLR) / 10-20 (1cycle) guidance"
    text = (f"max_lr {_fmt(max_lr)} is {how} (rule '{rule}'); min_lr = max_lr / {min_div:g} = "
            f"{_fmt(min_lr)} ({guide})")
    return {"max_lr": max_lr, "min_lr": float(min_lr), "rule": rule, "min_div": float(min_div), "text": text}



# ---------------------------------------------------------------------------------------------------
# the analyses a range test reports (the CLI's summary.json and the Python API share them)
# ---------------------------------------------------------------------------------------------------


class LossStop:
    """fastai's stop rule (:func:`stop_index`) applied loss by loss: called with each training loss in order,
    True at the first whose debiased smoothed value (:func:`smooth_losses`, ``beta``) exceeds ``factor`` x the
    smallest so far. ``losses``: those of an earlier attempt of the same run (resumed from its checkpoint)."""

    def __init__(self, factor: float, beta: float, losses: Sequence[float] = ()):
        self.factor, self.beta, self.losses = factor, beta, list(losses)

    def __call__(self, loss: float) -> bool:
        self.losses.append(loss)
        smoothed = smooth_losses(self.losses, self.beta)
        return stop_index(smoothed, self.factor) == len(smoothed) - 1


def analyze_accuracy_curve(lrs: Sequence[float], accs: Sequence[float], *, diverged_lr: float | None,
                           tolerance: float, bounds_rule: str, min_div: float, chance: float | None) -> dict:
    """The verdict and suggested bounds of an accuracy-mode range test, as its summary reports them.

    ``lrs``/``accs``: the LR of the update after which each test evaluation was made, and its accuracy.
    Returns ``{"mode": "accuracy", "diverged_lr", "verdict", "bounds"[, "note"]}``: no verdict without an
    evaluation, no bounds for a network that never learns (:func:`verdict`'s ``never_learns``) or when
    :func:`suggest_bounds` has none to give (peak at LR 0); ``note`` says why.
    """
    result = {"mode": "accuracy", "diverged_lr": diverged_lr, "verdict": None, "bounds": None}
    if not len(lrs):
        result["note"] = "no test evaluation before the run ended: no verdict"
        return result
    result["verdict"] = verdict(lrs, accs, diverged_lr=diverged_lr, tolerance=tolerance, chance=chance)
    if result["verdict"]["label"] == "never_learns":
        result["note"] = "no bounds: the network never learned in this range"
    else:
        try:
            result["bounds"] = suggest_bounds(lrs, accs, rule=bounds_rule, min_div=min_div, tolerance=tolerance)
        except ValueError as e:  # e.g. the peak is at LR 0: there is no bound to suggest
            result["note"] = f"no bounds: {e}"
    return result


def analyze_loss_curve(lrs: Sequence[float], losses: Sequence[float], *, num_it: int,
                       beta: float) -> tuple[dict[str, float] | None, str]:
    """fastai's lr_find suggestions from the raw training losses of a loss-mode range test, as ``lr_find``
    makes them: smoothed (:func:`smooth_losses`, ``beta``), the first ``num_it // 10`` and the last 5 points
    dropped, cut at the first NaN (a non-finite loss belongs in ``losses`` as NaN). Returns
    ``(suggestions, "")`` or ``(None, note)`` when too few points remain."""
    smoothed = smooth_losses(losses, beta)
    try:
        return lr_find_suggestions(lrs, smoothed, skip_start=num_it // 10, skip_end=5), ""
    except ValueError as e:
        return None, f"no suggestion: {e}"
