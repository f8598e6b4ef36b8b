"""The paper's Hessian-free estimate of the optimal learning rate (Smith & Topin, Fig 5), as a run metric.

The exact reading implemented here
----------------------------------
Three consecutive iterates theta_i, theta_{i+1}, theta_{i+2} (the weights after i, i+1 and i+2 completed
updates) and the LR eps of the first of the two updates (theta_i -> theta_{i+1}) give

    eps* = eps * N / D,   N = sum_j |theta_{i+1,j} - theta_{i,j}|,
                          D = sum_j |2 theta_{i+1,j} - theta_{i,j} - theta_{i+2,j}|,

the sums running over every weight j of the network (every parameter: convolution and FC weights and
biases, BatchNorm scales and shifts; not BN running statistics, which are buffers, not weights). That is the
paper's per-weight formula eps (theta_{i+1} - theta_i) / (2 theta_{i+1} - theta_i - theta_{i+2}) aggregated
"summing the absolute values of numerator and denominator separately": one ratio of two sums, not a sum or
mean of per-weight ratios. Each window's value x is then smoothed by an exponential moving average with factor
EMA_FACTOR = 0.1: ema <- 0.9 ema + 0.1 x, started at the first defined x (no bias towards 0). The metric
column `lr_estimate` holds the EMA.

Why this is an optimal-LR estimate: for plain SGD, theta_{k+1} = theta_k - eps g_k, so the numerator is
eps |g_i| and the denominator eps |g_{i+1} - g_i|: eps* = |theta_{i+1} - theta_i| / |g_{i+1} - g_i| is the
secant estimate of 1 / curvature along the step, the Newton step size. On a quadratic with curvature h it is
exactly 1/h (tests/test_lr_estimate.py). With momentum or weight decay the update is not -eps g; the paper
applies the same formula to the weights anyway, and so do we. One consequence to read its values by: where
minibatch noise dominates the gradients (independent from one step to the next, curvature negligible), SGD with
momentum mu gives N / D -> 1 / sqrt(2 (1 - mu)), so eps* ~ 2.24 eps at mu = 0.9 whatever the curvature (0.71 eps
without momentum; tests/test_lr_estimate.py checks it). Values near 2.2x the LR in use say "noise", not
"the optimal LR is twice this one". The two updates of a window use LRs that differ
under a cyclical schedule (by 2.9/5000 = 0.06% per iteration in Fig 1a's CLR); the formula takes the first.

Undefined cases: D = 0 (the two updates are equal weight by weight: no curvature seen, eps* would be
infinite; also when the weights did not move at all, N = D = 0) and a non-finite N or D. Such a window gives
no value: the EMA keeps its previous value, and before the first defined window the column stays empty. N = 0
with D > 0 (the first update moved nothing) is defined and gives 0. In floating point two updates equal up to
rounding give a rounding-sized D and a huge value instead of none; training updates differ far more than that.

Cost (`train.lr_estimate_every: k`; null = off): a window starts every k iterations (at the iterates whose
number of completed updates is a multiple of k) and closes two updates later, so k = 1 computes a value at
every iteration from overlapping windows and k >= 2 one value per k iterations. Memory: one extra copy of the
parameters (two when k = 1, whose windows overlap). Time: a copy and six elementwise passes over the
parameters per window (torch._foreach ops), all on the device; values stay on the device until the loop
flushes its rows, so the loop still never waits for the device at a step.

Measured cost (MEASURED_COST), ResNet-20 paper variant (224,042 parameters), batch 128, real CIFAR-10, k = 1,
on this project's 2-core Intel Xeon with AVX512-BF16 and AMX-BF16 (bf16 autocast), 1 thread, while other
training shared the machine: `python -m superconv.bench --depths 20 --batches 128 --paths project --set
train.threads=1 [--set train.lr_estimate_every=1]` (with the estimate attached as superconv.train attaches it:
bench's own set-up did not pass the key on then) gave 363 and 380 img/s off, 386 and 530 img/s
on: the background load moves a 20 s measurement by far more than the estimate costs. Timed alone in the same
process, the estimate takes 2.4 ms per iteration against a 330 ms training step: 0.7%. Interleaved A/B steps
in one process: median 387 img/s off, 373 on (-4%, within the noise of those rounds, 363-589 img/s).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

__all__ = ["EMA_FACTOR", "MEASURED_COST", "estimate", "elementwise", "ema", "ema_series", "LREstimate",
           "check_every", "landmarks"]

EMA_FACTOR = 0.1  # the paper's smoothing: ema <- (1 - 0.1) ema + 0.1 x
# see the module docstring for how it was measured
MEASURED_COST = ("k=1, ResNet-20 batch 128, 2-core Intel Xeon (AVX512-BF16, AMX-BF16), 1 thread, bf16: 2.4 ms per "
                 "iteration against a 330 ms step (0.7%); bench off 363/380 img/s, on 386/530 img/s (background "
                 "load dominates)")


# ------------------------------------------------------------------------------ pure functions
def _flat(ts) -> torch.Tensor:
    if isinstance(ts, torch.Tensor):
        return ts.detach().reshape(-1).double()
    return torch.cat([t.detach().reshape(-1).double() for t in ts])


def estimate(lr: float, theta0, theta1, theta2) -> float:
    """eps* of one window, aggregated over all weights: lr * sum|theta1 - theta0| / sum|2 theta1 - theta0 -
    theta2| (each theta a tensor or a list of tensors, e.g. a model's parameters). NaN when undefined (a zero
    denominator, or non-finite sums); computed in float64."""
    t0, t1, t2 = _flat(theta0), _flat(theta1), _flat(theta2)
    num = float((t1 - t0).abs().sum())
    den = float((2 * t1 - t0 - t2).abs().sum())
    return _ratio(lr, num, den)


def _ratio(lr: float, num: float, den: float) -> float:
    if not (math.isfinite(num) and math.isfinite(den)) or den == 0.0:
        return math.nan
    return lr * num / den


def elementwise(lr: float, theta0: torch.Tensor, theta1: torch.Tensor, theta2: torch.Tensor) -> torch.Tensor:
    """The paper's per-weight formula, lr (theta1 - theta0) / (2 theta1 - theta0 - theta2), weight by weight
    (NaN or inf where a denominator is 0). Not what the metric reports (see `estimate`); for checking."""
    return lr * (theta1 - theta0) / (2 * theta1 - theta0 - theta2)


def ema(previous: float | None, x: float, factor: float = EMA_FACTOR) -> float | None:
    """One EMA step: (1 - factor) previous + factor x; x itself when there is no previous value; the previous
    value unchanged when x is undefined (NaN or infinite)."""
    if not math.isfinite(x):
        return previous
    return x if previous is None else (1.0 - factor) * previous + factor * x


def ema_series(xs: Iterable[float], factor: float = EMA_FACTOR) -> list[float | None]:
    """The EMA after each raw value of `xs` (None until the first defined one)."""
    out, cur = [], None
    for x in xs:
        cur = ema(cur, x, factor)
        out.append(cur)
    return out


def check_every(value) -> int | None:
    """`train.lr_estimate_every`: None (off) or an integer >= 1; ValueError (one line) otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"train.lr_estimate_every={value!r}: must be null (off) or an integer >= 1")
    return value


def landmarks(iterations: Sequence[int], values: Sequence[float | None]) -> dict | None:
    """Where a run's estimate curve starts, peaks, sits at mid-run and ends: {start, start_it, middle,
    middle_it, end, end_it, peak, peak_it}; None when no value is defined. `middle` is the value at the defined
    iteration nearest half the last iteration."""
    pts = [(int(i), float(v)) for i, v in zip(iterations, values) if v is not None and math.isfinite(float(v))]
    if not pts:
        return None
    pts.sort()
    last = pts[-1][0]
    mid = min(pts, key=lambda p: (abs(p[0] - last / 2), p[0]))
    peak = max(pts, key=lambda p: (p[1], -p[0]))
    return {"start": pts[0][1], "start_it": pts[0][0], "middle": mid[1], "middle_it": mid[0],
            "end": pts[-1][1], "end_it": last, "peak": peak[1], "peak_it": peak[0]}


# ------------------------------------------------------------------------------ the loop's helper
class _Window:
    """One open window: started at iterate `start`; stage 0 holds theta_start in `buf`, stage 1 holds
    2 theta_{start+1} - theta_start and the numerator `num` and LR of its first update."""

    __slots__ = ("start", "stage", "buf", "num", "lr")

    def __init__(self, start: int, buf: list[torch.Tensor]):
        self.start, self.stage, self.buf, self.num, self.lr = start, 0, buf, None, 0.0


class LREstimate:
    """The running estimate of one training run, on the device of its parameters.

    `superconv.loop.train_iteration` calls `before_step(it)` before update `it` (0-based) and
    `after_step(it + 1, lr)` after it; the latter returns the EMA as a 0-dim device tensor (NaN while
    undefined) on the iterations that closed a window, else None. Nothing here synchronizes with the host.
    `state_dict` / `load_state_dict` carry the open windows and the EMA through a checkpoint, so a resumed run
    logs the same values as an uninterrupted one.
    """

    def __init__(self, params: Iterable[torch.Tensor], every: int, factor: float = EMA_FACTOR):
        self.params = [p for p in params]
        if not self.params:
            raise ValueError("LREstimate: no parameters")
        self.every = check_every(every)
        self.factor = float(factor)
        dev = self.params[0].device
        self.value = torch.full((), math.nan, device=dev)  # the EMA; NaN until a window was defined
        self.windows: list[_Window] = []
        self._free: list[list[torch.Tensor]] = []

    # -- per step
    def _copy(self) -> list[torch.Tensor]:
        if self._free:
            buf = self._free.pop()
            torch._foreach_copy_(buf, [p.detach() for p in self.params])
            return buf
        return [p.detach().clone() for p in self.params]

    def _l1(self, ts: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(torch._foreach_norm(ts, 1)).float().sum()

    @torch.no_grad()
    def before_step(self, it: int) -> None:
        """Open a window at iterate `it` (the weights before update `it`) when `it` is a multiple of `every`."""
        if it % self.every == 0 and not any(w.start == it for w in self.windows):
            self.windows.append(_Window(it, self._copy()))

    @torch.no_grad()
    def after_step(self, done: int, lr: float) -> torch.Tensor | None:
        """Advance the open windows with the weights after `done` updates (`lr`: the LR of that update);
        return the EMA when a window closed."""
        if not self.windows:  # most steps with every > 2: nothing to do
            return None
        params = [p.detach() for p in self.params]
        out = None
        for w in list(self.windows):
            if done == w.start + 1:  # theta_{i+1}: numerator, then buf <- 2 theta_{i+1} - theta_i, in place
                torch._foreach_sub_(w.buf, params)  # theta_i - theta_{i+1}
                w.num = self._l1(w.buf)
                torch._foreach_mul_(w.buf, -1.0)
                torch._foreach_add_(w.buf, params)  # theta_{i+1} + (theta_{i+1} - theta_i)
                w.stage, w.lr = 1, float(lr)
            elif done == w.start + 2:  # theta_{i+2}: denominator, value, EMA
                torch._foreach_sub_(w.buf, params)  # 2 theta_{i+1} - theta_i - theta_{i+2}
                den = self._l1(w.buf)
                x = w.lr * w.num / den
                ok = torch.isfinite(x)  # den = 0 gives inf (num > 0) or NaN (num = 0): undefined
                prev = self.value
                smoothed = torch.where(torch.isnan(prev), x, (1.0 - self.factor) * prev + self.factor * x)
                self.value = torch.where(ok, smoothed, prev)
                self.windows.remove(w)
                self._free.append(w.buf)
                out = self.value.clone()
        return out

    # -- checkpoints
    def state_dict(self) -> dict:
        return {"every": self.every, "factor": self.factor, "value": self.value.detach().cpu(),
                "windows": [{"start": w.start, "stage": w.stage, "lr": w.lr,
                             "num": None if w.num is None else w.num.detach().cpu(),
                             "buf": [t.detach().cpu() for t in w.buf]} for w in self.windows]}

    def load_state_dict(self, state: dict) -> None:
        dev = self.params[0].device
        self.factor = float(state["factor"])  # `every` is the config's (part of the run's identity)
        self.value = state["value"].to(dev)
        self.windows = []
        for s in state["windows"]:
            w = _Window(int(s["start"]), [t.to(dev) for t in s["buf"]])
            w.stage, w.lr = int(s["stage"]), float(s["lr"])
            w.num = None if s["num"] is None else s["num"].to(dev)
            self.windows.append(w)
