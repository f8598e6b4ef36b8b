"""The Hessian-free LR estimate (superconv.lr_estimate): the known optimal step of a quadratic, the aggregation
and the EMA by hand, the undefined cases, the windows of `every`, checkpoints, and the metric in a real run
(written when on, empty when off, training unchanged, resume equality)."""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path

import pytest
import torch

from superconv.lr_estimate import EMA_FACTOR, LREstimate, check_every, elementwise, ema, ema_series, estimate, landmarks
from superconv.results import METRIC_COLUMNS, read_metrics


# ------------------------------------------------------------------------------ the quadratic
def sgd_iterates(theta0: torch.Tensor, h: torch.Tensor, lr: float, n: int) -> list[torch.Tensor]:
    """Plain gradient descent on f = 0.5 sum h_j theta_j^2 (gradient h * theta)."""
    out = [theta0.double()]
    for _ in range(n - 1):
        out.append(out[-1] - lr * h * out[-1])
    return out


@pytest.mark.parametrize("h,lr", [(4.0, 0.1), (0.5, 0.3), (10.0, 0.01)])
def test_quadratic_recovers_the_optimal_step(h, lr):
    """Curvature h: the optimal (Newton) step is 1/h, and one step of it from anywhere lands on the minimum."""
    theta0 = torch.randn(1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t0, t1, t2 = sgd_iterates(theta0, torch.full_like(theta0, h), lr, 3)
    est = estimate(lr, t0, t1, t2)
    assert est == pytest.approx(1 / h, rel=1e-9)
    assert (t2 - est * h * t2).abs().max() < 1e-9  # a step of eps* reaches the minimum theta = 0
    # the paper's per-weight formula gives 1/h at every weight too
    assert torch.allclose(elementwise(lr, t0, t1, t2), torch.full_like(t0, 1 / h))


def test_quadratic_through_the_loop_helper_and_a_torch_optimizer():
    """The stateful helper, fed by torch.optim.SGD on a quadratic split over several parameter tensors of
    different shapes: every closed window gives 1/h, so the EMA is 1/h throughout."""
    h, lr = 2.5, 0.05
    g = torch.Generator().manual_seed(1)
    params = [torch.nn.Parameter(torch.randn(s, generator=g, dtype=torch.float64)) for s in ((3, 4), (7,), (2, 2, 2))]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.0)
    est = LREstimate(params, every=1)
    values = []
    for it in range(12):
        est.before_step(it)
        opt.zero_grad()
        (0.5 * h * sum((p ** 2).sum() for p in params)).backward()
        opt.step()
        v = est.after_step(it + 1, lr)
        values.append(None if v is None else float(v))
    assert values[0] is None  # the first window closes after the second update
    assert values[1:] == pytest.approx([1 / h] * 11, rel=1e-6)


def test_aggregation_over_weights_of_different_curvature():
    """The reported value is one ratio of summed absolute values, not a mean of per-weight ratios."""
    h = torch.tensor([1.0, 4.0, 10.0], dtype=torch.float64)
    theta0, lr = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), 0.05
    t0, t1, t2 = sgd_iterates(theta0, h, lr, 3)
    expected = lr * float((lr * h * theta0).abs().sum()) / float(((lr * h) ** 2 * theta0).abs().sum())
    assert estimate(lr, t0, t1, t2) == pytest.approx(expected, rel=1e-12)
    assert estimate(lr, t0, t1, t2) != pytest.approx(float(elementwise(lr, t0, t1, t2).mean()), rel=1e-3)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_pure_gradient_noise_gives_a_fixed_multiple_of_the_lr(momentum):
    """Gradients that are pure noise (no curvature): with momentum mu the estimate tends to lr / sqrt(2 (1 - mu)),
    2.24 lr at mu = 0.9: the value a noise-dominated run shows (docstring)."""
    g = torch.Generator().manual_seed(2)
    p = [torch.nn.Parameter(torch.zeros(20_000))]
    opt = torch.optim.SGD(p, lr=0.1, momentum=momentum)
    est = LREstimate(p, every=1)
    for it in range(300):
        est.before_step(it)
        p[0].grad = torch.randn(20_000, generator=g)
        opt.step()
        v = est.after_step(it + 1, 0.1)
    assert float(v) == pytest.approx(0.1 / math.sqrt(2 * (1 - momentum)), rel=0.03)


# ------------------------------------------------------------------------------ by hand
THETA = ([1.0, 2.0, -1.0], [0.5, 2.5, -1.0], [0.25, 2.0, -0.5])  # three iterates of three weights


def test_three_iterate_example_by_hand():
    # N = |0.5 - 1| + |2.5 - 2| + |-1 + 1| = 1.0
    # D = |1 - 1 - 0.25| + |5 - 2 - 2| + |-2 + 1 + 0.5| = 0.25 + 1 + 0.5 = 1.75
    lr = 0.2
    t = [torch.tensor(x) for x in THETA]
    assert estimate(lr, *t) == pytest.approx(0.2 * 1.0 / 1.75)
    # split over two tensors (a model's parameters) it is the same sum
    assert estimate(lr, *[[x[:2], x[2:]] for x in t]) == pytest.approx(0.2 / 1.75)
    # the per-weight ratios would be 0.2 * (-0.5 / -0.25), 0.2 * (0.5 / 1), 0.2 * 0 / -0.5: another number
    assert elementwise(lr, *t).tolist() == pytest.approx([0.4, 0.1, 0.0])


def test_the_helper_reproduces_the_hand_example():
    p = [torch.tensor(THETA[0][:2]), torch.tensor(THETA[0][2:])]
    est = LREstimate(p, every=1)
    est.before_step(0)
    for t, x in zip(p, (THETA[1][:2], THETA[1][2:])):
        t.copy_(torch.tensor(x))
    assert est.after_step(1, 0.2) is None
    for t, x in zip(p, (THETA[2][:2], THETA[2][2:])):
        t.copy_(torch.tensor(x))
    assert float(est.after_step(2, 0.2)) == pytest.approx(0.2 / 1.75)  # the first value starts the EMA


def test_ema_by_hand():
    assert EMA_FACTOR == 0.1
    # 0.8 starts it; an undefined value (NaN) leaves it; 0.4 moves it a tenth of the way: 0.9*0.8 + 0.1*0.4
    assert ema_series([math.nan, 0.8, math.nan, 0.4, 1.0]) == pytest.approx([None, 0.8, 0.8, 0.76, 0.784])
    assert ema(None, math.inf) is None and ema(0.5, math.inf) == 0.5


def test_undefined_windows_leave_the_ema():
    # equal updates (no curvature seen: D = 0) and no movement at all (N = D = 0) are undefined
    line = [torch.tensor([0.0, 1.0]), torch.tensor([0.5, 1.25]), torch.tensor([1.0, 1.5])]
    still = [torch.tensor([1.0, 1.0])] * 3
    assert math.isnan(estimate(0.1, *[x.double() for x in line])) and math.isnan(estimate(0.1, *still))
    # N = 0 with D > 0 is defined: 0
    assert estimate(0.1, torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([0.5])) == 0.0
    # in the helper (values exact in float32): NaN until a defined window, then the EMA stays where it was
    p = [torch.tensor([0.0, 1.0])]
    est = LREstimate(p, every=2)
    vals = []
    for it, theta in enumerate([[0.5, 1.25], [1.0, 1.5], [1.25, 1.75], [1.25, 1.75], [1.25, 1.75], [1.25, 1.75]]):
        est.before_step(it)
        p[0].copy_(torch.tensor(theta))
        v = est.after_step(it + 1, 0.1)
        vals.append(None if v is None else float(v))
    # window (0,1,2) is a straight line: undefined; (2,3,4): N = 0.5, D = 0.25 + 0.25, value 0.1 * 0.5 / 0.5;
    # (4,5,6): no movement, undefined
    assert vals[0] is None and math.isnan(vals[1]) and vals[2] is None and vals[4] is None
    assert vals[3] == pytest.approx(0.1) and vals[5] == pytest.approx(0.1)


@pytest.mark.parametrize("every,buffers", [(1, 2), (2, 1), (5, 1)])
def test_windows_every_k_iterations(every, buffers):
    p = [torch.zeros(3)]
    est = LREstimate(p, every=every)
    closed, most = [], 0
    for it in range(20):
        est.before_step(it)
        p[0].add_(torch.tensor([1.0, -2.0, 0.5]) * (0.9 ** it))
        if est.after_step(it + 1, 0.1) is not None:
            closed.append(it + 1)
        most = max(most, len(est.windows) + len(est._free))
    # a window opens at every iterate that is a multiple of k and closes two updates later
    assert closed == [s + 2 for s in range(0, 19, every) if s + 2 <= 20]
    assert most == buffers  # parameter copies held: one, two when windows overlap (k = 1)


def test_state_dict_round_trip_mid_window():
    g = torch.Generator().manual_seed(3)
    steps = [torch.randn(4, generator=g) * (0.8 ** i) for i in range(10)]

    def run(p, est, its):
        out = []
        for it in its:
            est.before_step(it)
            p[0].add_(steps[it])
            v = est.after_step(it + 1, 0.1)
            out.append(None if v is None else float(v))
        return out

    p = [torch.zeros(4)]
    whole = run(p, LREstimate(p, every=1), range(10))
    p = [torch.zeros(4)]
    first = LREstimate(p, every=1)
    head = run(p, first, range(5))
    state = first.state_dict()
    again = LREstimate(p, every=1)
    again.load_state_dict(state)
    assert head + run(p, again, range(5, 10)) == whole


def test_check_every_and_landmarks():
    assert check_every(None) is None and check_every(3) == 3
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="lr_estimate_every"):
            check_every(bad)
    lm = landmarks([1, 2, 3, 4, 5, 6], [None, 3.0, 5.0, 2.0, 1.0, 0.5])
    assert lm == {"start": 3.0, "start_it": 2, "middle": 5.0, "middle_it": 3, "end": 0.5, "end_it": 6,
                  "peak": 5.0, "peak_it": 3}
    assert landmarks([1, 2], [None, math.nan]) is None


# ------------------------------------------------------------------------------ in a run
def _run_dir(results: Path) -> Path:
    (d,) = [p for p in (results / "adhoc").iterdir() if p.is_dir()]
    return d


def test_metric_column_on_and_off_and_training_unchanged(run_cli, tmp_path):
    base = ("train.threads=1", "train.deterministic=true", "train.device=cpu")
    # four independent runs started together (1 thread each; mostly interpreter start-up): 22 s -> ~11 s
    procs = {name: run_cli(*base, *extra, results=tmp_path / name, wait=False)
             for name, extra in (("on", ["train.lr_estimate_every=1"]), ("off", []),
                                 ("k3", ["train.lr_estimate_every=3"]), ("bad", ["train.lr_estimate_every=0"]))}
    done = {name: (p, *p.communicate(timeout=300)) for name, p in procs.items()}
    (on, _, on_err), (off, _, off_err), (k3, _, k3_err) = done["on"], done["off"], done["k3"]
    assert on.returncode == off.returncode == k3.returncode == 0, (on_err, off_err, k3_err)
    d_on, d_off, d_k3 = (_run_dir(tmp_path / x) for x in ("on", "off", "k3"))
    assert "train.lr_estimate_every=1" in d_on.name
    for d in (d_on, d_off):
        assert (d / "metrics.csv").read_text().splitlines()[0].split(",") == list(METRIC_COLUMNS)
    r_on, r_off, r_k3 = (read_metrics(d / "metrics.csv") for d in (d_on, d_off, d_k3))
    assert all(r["lr_estimate"] is None for r in r_off)  # off: the column is there, empty
    assert r_on[0]["lr_estimate"] is None and all(r["lr_estimate"] is not None for r in r_on[1:])
    assert all(r["lr_estimate"] > 0 for r in r_on[1:])
    assert [r["iteration"] for r in r_k3 if r["lr_estimate"] is not None] == [2, 5, 8, 11, 14, 17, 20]
    # the metric only observes: the training is the same
    strip = [{k: v for k, v in r.items() if k != "lr_estimate"} for r in r_on]
    assert strip == [{k: v for k, v in r.items() if k != "lr_estimate"} for r in r_off]
    bad, _, bad_err = done["bad"]
    assert bad.returncode == 2 and "train.lr_estimate_every=0" in bad_err
    assert not (tmp_path / "bad").exists()


def test_resume_with_the_metric_on_gives_the_same_metrics(run_cli, tmp_path):
    args = ("train.iterations=40", "train.checkpoint_every=3", "train.log_every=1", "train.eval_every=10",
            "train.deterministic=true", "train.device=cpu", "train.lr_estimate_every=1", "train.threads=1")
    ref = run_cli(*args, results=tmp_path / "ref", wait=False)  # the uninterrupted run, alongside
    proc = run_cli(*args, results=tmp_path / "res", wait=False)
    deadline = time.monotonic() + 120
    metrics = None
    while time.monotonic() < deadline:  # stop it mid-way, inside a window (iteration 17: windows 15, 16 open)
        assert proc.poll() is None, proc.communicate()
        adhoc = tmp_path / "res" / "adhoc"
        dirs = list(adhoc.iterdir()) if adhoc.exists() else []
        metrics = dirs[0] / "metrics.csv" if dirs else None
        try:
            rows = read_metrics(metrics) if metrics is not None else []
        except Exception:
            rows = []
        if rows and rows[-1]["iteration"] >= 17:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    resumed = run_cli(*args, results=tmp_path / "res")
    assert resumed.returncode == 0 and "resuming" in resumed.stderr, resumed.stderr
    _, ref_err = ref.communicate(timeout=300)
    assert ref.returncode == 0, ref_err
    ref_dir = _run_dir(tmp_path / "ref")
    assert metrics.read_text() == (ref_dir / "metrics.csv").read_text()
    assert sum(r["lr_estimate"] is not None for r in read_metrics(metrics)) == 39
    summary = json.loads((metrics.parent / "summary.json").read_text())
    assert "health" in summary and "flags" in summary["health"]


def test_every_path_that_builds_a_run_gets_the_estimate(synthetic_data_dir, tmp_path):
    """session.prepare attaches it, so superconv.train and `bench --set train.lr_estimate_every=k` (which
    times what training runs) both carry it; off by default."""
    from superconv.bench import _compose
    from superconv.session import prepare

    base = [f"paths.data_dir={synthetic_data_dir}", f"paths.results_dir={tmp_path}", "data=synthetic",
            "scale=smoke", "train.device=cpu"]
    for extra, on in (([], False), (["train.lr_estimate_every=4"], True)):
        parts = prepare(*_compose(base + extra))
        assert (parts.lr_estimate is not None) == on
