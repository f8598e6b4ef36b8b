"""superconv.range_analysis on synthetic range-test curves (accuracy mode and fastai's loss mode)."""

import json
import math

import numpy as np
import pytest

from superconv.range_analysis import (
    lr_find_suggestions,
    smooth_losses,
    stop_index,
    suggest_bounds,
    verdict,
)

# ---------------------------------------------------------------------------------------------------
# synthetic accuracy-mode curves (linear LR, test accuracy every 0.05 / 0.1 of LR)
# ---------------------------------------------------------------------------------------------------


def fig2b_curve():
    """Like Fig 2b (ResNet-56): rises to ~0.8 by LR 0.3, then wobbles in 0.72-0.81 up to LR 3."""
    lrs = [round(0.05 * i, 10) for i in range(61)]  # 0 .. 3.0
    accs = []
    for lr in lrs:
        if lr <= 0.3:
            accs.append(0.1 + 0.7 * lr / 0.3)
        else:
            accs.append(0.80 - 0.06 * (lr - 0.3) / 2.7 + 0.01 * math.sin(7 * lr))
    return lrs, accs


def fig11_curve():
    """Like Fig 2a / Fig 11 (wd 1e-3): peaks 0.6 at LR 0.5, falls linearly to 0.1 at LR 1.5, stays there."""
    lrs = [round(0.1 * i, 10) for i in range(31)]  # 0 .. 3.0
    accs = []
    for lr in lrs:
        if lr <= 0.5:
            accs.append(0.1 + lr)
        else:
            accs.append(max(0.1, 0.6 - 0.5 * (lr - 0.5)))
    return lrs, accs


def test_fig2b_like_curve_stays_high():
    lrs, accs = fig2b_curve()
    v = verdict(lrs, accs)
    assert v["label"] == "stays_high"
    assert v["super_convergence_possible"] is True
    assert 0.8 <= v["peak_acc"] <= 0.82
    assert 0.3 <= v["peak_lr"] <= 0.6
    assert v["plateau_end_lr"] == 3.0 and v["max_lr_tested"] == 3.0
    assert v["first_drop_lr"] is None
    assert v["final_acc"] == accs[-1] and 0.7 <= v["final_acc"] <= 0.8
    assert v["tolerance"] == 0.2 and v["diverged_lr"] is None
    assert "super-convergence is possible" in v["text"] and "3" in v["text"]
    json.dumps(v)  # JSON-serialisable
    assert all(isinstance(x, (float, int, str, bool, type(None))) for x in v.values())


def test_fig11_like_curve_collapses():
    lrs, accs = fig11_curve()
    v = verdict(lrs, accs, window=1)
    assert v["label"] == "collapses"
    assert v["super_convergence_possible"] is False
    assert v["peak_acc"] == pytest.approx(0.6) and v["peak_lr"] == 0.5
    # threshold 0.48: LR 0.7 -> 0.50 (within), LR 0.8 -> 0.45 (first drop)
    assert v["plateau_end_lr"] == pytest.approx(0.7)
    assert v["first_drop_lr"] == pytest.approx(0.8)
    assert v["peak_lr"] <= v["plateau_end_lr"] < v["first_drop_lr"]
    assert v["final_acc"] == pytest.approx(0.1) and v["max_lr_tested"] == 3.0
    assert "collapses" in v["text"] and "not" in v["text"]
    json.dumps(v)


def test_diverging_curve():
    lrs = [round(0.1 * i, 10) for i in range(13)]  # rows stop at LR 1.2
    accs = [0.1, 0.5, 0.7, 0.78, 0.8, 0.79, 0.78, 0.77, 0.76, 0.76, 0.75, 0.74, 0.74]
    # without the divergence flag this curve would stay high ...
    assert verdict(lrs, accs, window=1)["label"] == "stays_high"
    # ... but divergence before the end of the range counts as a collapse
    v = verdict(lrs, accs, diverged_lr=1.2, window=1)
    assert v["label"] == "diverged"
    assert v["super_convergence_possible"] is False
    assert v["diverged_lr"] == 1.2 and v["max_lr_tested"] == 1.2
    assert "diverged at LR 1.2" in v["text"]
    json.dumps(v)


def test_never_learns():
    lrs = [round(0.1 * i, 10) for i in range(31)]
    accs = [0.1 + 0.02 * ((i * 7) % 3) / 2 for i in range(31)]  # 0.10 .. 0.12
    v = verdict(lrs, accs, chance=0.1, window=1)
    assert v["label"] == "never_learns" and v["super_convergence_possible"] is False
    assert v["chance"] == 0.1 and "never learns" in v["text"]
    # a real curve with chance given is unaffected
    assert verdict(*fig2b_curve(), chance=0.1, window=1)["label"] == "stays_high"
    # never_learns wins over diverged
    assert verdict(lrs, accs, chance=0.1, diverged_lr=3.0, window=1)["label"] == "never_learns"


def test_tolerance_boundary_is_inclusive():
    lrs = [0.0, 0.5, 1.0, 1.5, 2.0]
    # (1 - 0.2) * 0.8 = 0.6400000000000001 in floats; 0.64 exactly on the boundary counts as within
    v = verdict(lrs, [0.1, 0.8, 0.64, 0.7, 0.64], window=1)
    assert v["label"] == "stays_high" and v["plateau_end_lr"] == 2.0
    v = verdict(lrs, [0.1, 0.8, 0.64, 0.6399, 0.7], window=1)
    assert v["label"] == "collapses"
    assert v["plateau_end_lr"] == 1.0 and v["first_drop_lr"] == 1.5
    # a looser tolerance accepts the same curve; percent units behave the same
    assert verdict(lrs, [0.1, 0.8, 0.64, 0.6399, 0.7], tolerance=0.25, window=1)["label"] == "stays_high"
    assert verdict(lrs, [10.0, 80.0, 64.0, 70.0, 64.0], window=1)["label"] == "stays_high"
    # values before the peak never count as a drop
    assert verdict(lrs, [0.1, 0.2, 0.3, 0.8, 0.79], window=1)["label"] == "stays_high"


def test_verdict_input_errors():
    for bad in [([], []), ([0.1, 0.2], [0.5]), ([0.2, 0.1], [0.5, 0.6]), ([0.1, 0.2], [0.5, float("nan")])]:
        with pytest.raises(ValueError) as e:
            verdict(*bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError):
        verdict([0.1], [0.5], tolerance=1.0, window=1)


def test_suggest_bounds_rules_and_min_div():
    lrs, accs = fig11_curve()
    b = suggest_bounds(lrs, accs, window=1)
    assert b["rule"] == "peak" and b["max_lr"] == 0.5 and b["min_lr"] == 0.125 and b["min_div"] == 4.0
    assert "peak" in b["text"] and "CLR" in b["text"]
    b = suggest_bounds(lrs, accs, rule="plateau_end", min_div=10, window=1)
    assert b["max_lr"] == pytest.approx(0.7) and b["min_lr"] == pytest.approx(0.07)
    assert b["max_lr"] == verdict(lrs, accs, window=1)["plateau_end_lr"]
    assert "plateau_end" in b["text"] and "falls below" in b["text"] and "1cycle" in b["text"]
    # the Fig-2b-like curve: plateau runs to the end of the range
    b = suggest_bounds(*fig2b_curve(), rule="plateau_end", min_div=3, window=1)
    assert b["max_lr"] == 3.0 and b["min_lr"] == 1.0
    json.dumps(b)
    assert set(b) == {"max_lr", "min_lr", "rule", "min_div", "text"}
    with pytest.raises(ValueError):
        suggest_bounds(lrs, accs, rule="steep", window=1)
    with pytest.raises(ValueError):
        suggest_bounds(lrs, accs, min_div=0, window=1)
    with pytest.raises(ValueError):
        suggest_bounds([0.0, 1.0], [0.8, 0.2], window=1)  # peak at LR 0


# ---------------------------------------------------------------------------------------------------
# loss mode: fastai lr_find
# ---------------------------------------------------------------------------------------------------


def test_smooth_losses_debiased_ema():
    losses = [2.3, 2.1, 1.7, 1.9, 1.2]
    sm = smooth_losses(losses)
    assert sm[0] == pytest.approx(2.3, abs=1e-15)  # debiasing: first value = first loss
    # second by hand: avg = 0.98 * (0.02 * 2.3) + 0.02 * 2.1, debias by 1 - 0.98**2
    assert sm[1] == pytest.approx((0.98 * 0.02 * 2.3 + 0.02 * 2.1) / (1 - 0.98**2), rel=1e-14)
    assert all(isinstance(x, float) for x in sm) and len(sm) == len(losses)
    assert smooth_losses([1.5] * 50) == pytest.approx([1.5] * 50, rel=1e-12)  # constant stays constant
    assert smooth_losses(losses, beta=0.0) == pytest.approx(losses)
    assert smooth_losses([]) == []


def test_stop_index():
    assert stop_index([3.0, 2.0, 1.0, 2.0, 3.0, 4.5, 9.0]) == 5  # 4.5 > 4 * 1.0
    assert stop_index([3.0, 2.0, 1.0, 4.0]) is None  # exactly 4x is not "greater"
    assert stop_index([3.0, 2.0, 1.0, 2.5], factor=2.0) == 3
    assert stop_index([2.0, 1.0, float("nan"), 1.0]) == 2
    assert stop_index([2.0, 1.0, float("inf")]) == 2
    assert stop_index([]) is None


def u_shaped_lr_find():
    """fastai-style run: 100 iterations, LR 1e-7 -> 10 exponentially; loss flat at 2.3, falls to 0.3 around
    LR 1e-4..1e-2, explodes past LR 1. Returns (lrs, smoothed losses) up to and including the stop."""
    lrs = np.logspace(-7, 1, 100)
    x = np.log10(lrs)
    raw = 0.3 + 2.0 / (1 + np.exp(3 * (x + 3.5))) + 0.01 * 10 ** (3 * (x + 0.5))
    sm = smooth_losses(raw.tolist())
    k = stop_index(sm)
    assert k is not None and 90 < k < 99
    return lrs[: k + 1].tolist(), sm[: k + 1]


def test_lr_find_suggestions_u_shape():
    lrs, losses = u_shaped_lr_find()
    s = lr_find_suggestions(lrs, losses)
    assert set(s) == {"valley", "steep", "minimum", "slide"}
    lr_at_min = lrs[int(np.argmin(losses))]
    assert 1e-2 < lr_at_min < 10  # the EMA lags, so the smoothed minimum sits late
    assert s["minimum"] == lr_at_min / 10  # exactly
    assert 1e-5 < s["steep"] < 1e-1 and s["steep"] in lrs
    assert 1e-5 < s["valley"] < lr_at_min and s["valley"] in lrs
    assert 1e-5 < s["slide"] < lr_at_min and s["slide"] in lrs
    assert all(isinstance(v, float) for v in s.values())
    json.dumps(s)
    # fastai's own trimming (first num_it//10, last 5) still lands in the falling region
    t = lr_find_suggestions(lrs, losses, skip_start=10, skip_end=5)
    assert 1e-5 < t["valley"] < lr_at_min and t["steep"] == s["steep"]


def test_lr_find_suggestions_deterministic():
    lrs, losses = u_shaped_lr_find()
    a = lr_find_suggestions(lrs, losses)
    b = lr_find_suggestions(list(lrs), list(losses))
    c = lr_find_suggestions(np.array(lrs), np.array(losses))
    assert a == b == c


def test_lr_find_suggestions_errors_and_nan_cut():
    lrs = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    with pytest.raises(ValueError):
        lr_find_suggestions(lrs[:4], [2.0, 1.5, 1.0, 3.0])  # too few points
    with pytest.raises(ValueError):
        lr_find_suggestions([0.0] + lrs[1:], [2.0, 1.8, 1.5, 1.0, 0.9, 3.0])  # non-positive LR
    with pytest.raises(ValueError):
        lr_find_suggestions(lrs, [2.0, 1.8, 1.5])  # length mismatch
    with pytest.raises(ValueError) as e:
        lr_find_suggestions(lrs, [2.0, 1.8, 1.5, float("nan"), 0.9, 3.0])  # NaN cut leaves 3 points
    assert "\n" not in str(e.value)
    # fastai cuts at the first NaN: the tail after it is ignored
    s = lr_find_suggestions(lrs + [10.0], [2.0, 1.9, 1.5, 1.0, 0.9, float("nan"), 0.1])
    assert s["minimum"] == pytest.approx(1e-1 / 10)
    assert "slide" not in s  # fastai's slide needs more than 15 points


def test_steep_by_hand():
    # equal log-steps, so the forward differences of the loss rank the slopes: -0.1, -0.9, -0.1, +0.6
    lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    s = lr_find_suggestions(lrs, [2.0, 1.9, 1.0, 0.9, 1.5])
    assert s["steep"] == 1e-3  # fastai v2: LR at the LEFT end of the steepest segment
    assert s["minimum"] == 1e-1 / 10


def fastai_valley_index(losses):
    """The index fastai v2 `valley` (fastai/callback/schedule.py) reads its LR at, transcribed loop for loop."""
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


def fastai_valley_reference(lrs, losses):
    """fastai v2 `valley`: `float(lrs[idx])` (a negative idx wraps around, as in fastai)."""
    return float(lrs[fastai_valley_index(losses)])


def test_valley_by_hand():
    losses = [5.0, 4.0, 6.0, 3.0, 2.0, 7.0, 1.0, 8.0]
    lrs = [10.0 ** k for k in range(-8, 0)]
    # By hand: lds (longest strictly decreasing subsequence ending at i) = [1, 2, 1, 3, 4, 1, 5, 1]
    # (5>4>3>2>1 ends at i=6). max_end = 6, max_start = 6 - 5 = 1, sections = 5/3 = 1.67,
    # idx = 1 + int(1.67) + int(0.83) = 2 -> lrs[2] = 1e-6 (fastai lands on the bump at 6.0: faithful).
    assert lr_find_suggestions(lrs, losses)["valley"] == 1e-6
    assert fastai_valley_reference(lrs, losses) == 1e-6


def test_valley_matches_fastai_on_random_curves():
    rng = np.random.default_rng(0)
    for n in (5, 8, 20, 60):
        for _ in range(10):
            lrs = np.logspace(-7, 1, n)
            losses = rng.normal(size=n).round(1)  # rounding makes ties, which never extend a valley
            mine = lr_find_suggestions(lrs, losses)["valley"]
            idx = fastai_valley_index(losses.tolist())
            if idx >= 0:
                assert mine == fastai_valley_reference(lrs, losses.tolist())
            else:  # fastai's idx == -1 would read lrs[-1], the LARGEST LR; clamped to lrs[0] here
                assert idx == -1 and mine == float(lrs[0])
    # the clamp case: the longest valley is the first two points -> fastai idx -1
    lrs, losses = [1e-4, 1e-3, 1e-2, 1e-1, 1.0], [2.0, 1.0, 3.0, 4.0, 5.0]
    assert fastai_valley_index(losses) == -1
    assert fastai_valley_reference(lrs, losses) == 1.0  # fastai: the largest LR
    assert lr_find_suggestions(lrs, losses)["valley"] == 1e-4


def test_one_noisy_evaluation_neither_collapses_nor_peaks():
    """The author's 5k range test dips once below 80% of its peak; the paper reads it as staying high."""
    lrs = [0.3 * i for i in range(1, 11)]
    accs = [0.5, 0.7, 0.78, 0.8, 0.79, 0.55, 0.77, 0.76, 0.75, 0.74]  # one dip at LR 1.8
    assert verdict(lrs, accs, window=1)["label"] == "collapses"
    assert verdict(lrs, accs, window=3)["label"] == "stays_high"  # running median of 3
    spike = [0.5, 0.6, 0.95, 0.62, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]  # one lucky evaluation
    assert verdict(lrs, spike, window=1)["label"] == "collapses"
    assert verdict(lrs, spike, window=3)["peak_acc"] == pytest.approx(0.62)
    collapse = [0.5, 0.7, 0.8, 0.78, 0.6, 0.4, 0.3, 0.2, 0.1, 0.1]  # sustained: a real collapse
    assert verdict(lrs, collapse, window=3)["label"] == "collapses"
    from superconv.range_analysis import default_window
    assert [default_window(n) for n in (10, 20, 50, 200, 1000)] == [1, 1, 3, 11, 51]
