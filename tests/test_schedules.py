"""superconv.schedules against the paper's log values and torch's / fastai's schedulers, step by step."""

import math
import pickle
import warnings

import pytest
import torch

from superconv.schedules import NAMES, build_schedule

REL = 1e-12


def torch_trace(make_scheduler, total, momentum=0.9, key="momentum"):
    """(lr, momentum) that torch shows before each of `total` optimizer steps."""
    p = torch.nn.Parameter(torch.zeros(1))
    if key == "betas":
        opt = torch.optim.Adam([p], lr=0.1, betas=(momentum, 0.999))
    else:
        opt = torch.optim.SGD([p], lr=0.1, momentum=momentum)
    sched = make_scheduler(opt)
    lrs, moms = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(total):
            g = opt.param_groups[0]
            lrs.append(g["lr"])
            moms.append(g["betas"][0] if key == "betas" else g["momentum"])
            opt.step()  # no grad: a no-op, but keeps torch's "step order" check quiet
            sched.step()
    return lrs, moms


def ours(s, total):
    return [s.lr(i) for i in range(total)], [s.momentum(i) for i in range(total)]


def assert_close(a, b, rel=REL, abs_=1e-15):
    assert len(a) == len(b)
    bad = [(i, x, y) for i, (x, y) in enumerate(zip(a, b)) if not math.isclose(x, y, rel_tol=rel, abs_tol=abs_)]
    assert not bad, f"{len(bad)} steps differ, first: {bad[:3]}"


CLR = {"name": "clr", "min_lr": 0.1, "max_lr": 3.0, "peak_at": 0.5, "cycle_momentum": False}


# ------------------------------------------------------------------------------------------- clr
def test_clr_paper_log_values():
    s = build_schedule(CLR, 10000, 0.9)
    assert s.lr(0) == pytest.approx(0.1)
    assert s.lr(5000) == pytest.approx(3.0)
    assert s.lr(9900) == pytest.approx(0.158)  # author's log: lr 0.158 at 9900
    assert s.lr(2500) == pytest.approx(1.55)
    assert s.momentum(0) == s.momentum(9999) == 0.9  # constant momentum 0.9 (PAPER.md §1)


def test_clr_equals_torch_cycliclr_every_step():
    total = 10000
    t_lr, _ = torch_trace(
        lambda o: torch.optim.lr_scheduler.CyclicLR(o, base_lr=0.1, max_lr=3.0, step_size_up=5000, cycle_momentum=False),
        total,
    )
    s_lr, _ = ours(build_schedule(CLR, total, 0.9), total)
    assert_close(s_lr, t_lr)


def test_clr_cyclic_momentum_equals_torch_cycliclr():
    total = 2000
    cfg = {**CLR, "cycle_momentum": True, "max_momentum": 0.95, "base_momentum": 0.85}
    t_lr, t_m = torch_trace(
        lambda o: torch.optim.lr_scheduler.CyclicLR(
            o, base_lr=0.1, max_lr=3.0, step_size_up=1000, base_momentum=0.85, max_momentum=0.95
        ),
        total,
    )
    s_lr, s_m = ours(build_schedule(cfg, total, 0.9), total)
    assert_close(s_lr, t_lr)
    assert_close(s_m, t_m)


def test_clr_scales_with_total():
    s = build_schedule(CLR, 1000, 0.9)
    lrs = [s.lr(i) for i in range(1000)]
    assert max(range(1000), key=lrs.__getitem__) == 500
    assert s.lr(500) == pytest.approx(3.0)
    assert s.lr(0) == pytest.approx(0.1)
    assert s.lr(990) == pytest.approx(0.158)


def test_cyclic_momentum_inverse_to_lr():
    for name, extra in [("clr", {}), ("one_cycle", {"max_lr": 3.0, "three_phase": True, "anneal": "linear"}),
                        ("fastai", {"max_lr": 1.0})]:
        cfg = {**CLR, "name": name, **extra, "cycle_momentum": True, "max_momentum": 0.95, "base_momentum": 0.85}
        if name != "clr":
            cfg.pop("min_lr"), cfg.pop("peak_at")
        total = 1000
        s = build_schedule(cfg, total, 0.9)
        lrs, moms = ours(s, total)
        peak = max(range(total), key=lrs.__getitem__)
        assert moms[0] == pytest.approx(0.95), name
        assert moms[peak] == pytest.approx(0.85), name
        assert min(moms) == pytest.approx(0.85) and max(moms) == pytest.approx(0.95)
        # inverse: momentum goes down while the LR goes up, and up while it comes down
        for i in range(1, total):
            if lrs[i] > lrs[i - 1] + 1e-12:
                assert moms[i] <= moms[i - 1] + 1e-12, (name, i)
            if lrs[i] < lrs[i - 1] - 1e-12 and i <= 2 * peak:
                assert moms[i] >= moms[i - 1] - 1e-12, (name, i)


# ------------------------------------------------------------------------------------- one_cycle
ONE = {"name": "one_cycle", "max_lr": 3.0, "min_lr": None, "div": 25, "final_div": 1e4, "pct_start": 0.3,
       "three_phase": False, "anneal": "cos", "cycle_momentum": True, "max_momentum": 0.95, "base_momentum": 0.85}


@pytest.mark.parametrize(
    "total,three_phase,anneal,pct,div,final_div",
    [
        (10000, False, "cos", 0.3, 25.0, 1e4),  # torch default
        (10000, True, "linear", 0.3, 25.0, 1e4),  # v3 1cycle
        (997, True, "linear", 0.45, 10.0, 100.0),  # odd total, fractional phase ends
        (997, False, "linear", 0.25, 25.0, 4000.0),
        (998, True, "cos", 0.2, 20.0, 1e3),
    ],
)
def test_one_cycle_equals_torch_onecyclelr(total, three_phase, anneal, pct, div, final_div):
    for key in ("momentum", "betas"):  # SGD momentum and Adam beta1
        t_lr, t_m = torch_trace(
            lambda o: torch.optim.lr_scheduler.OneCycleLR(
                o, max_lr=3.0, total_steps=total, pct_start=pct, anneal_strategy=anneal,
                div_factor=div, final_div_factor=final_div, three_phase=three_phase,
            ),
            total, key=key,
        )
        cfg = {**ONE, "three_phase": three_phase, "anneal": anneal, "pct_start": pct, "div": div,
               "final_div": final_div}
        s_lr, s_m = ours(build_schedule(cfg, total, 0.9), total)
        assert_close(s_lr, t_lr)
        assert_close(s_m, t_m)


def test_one_cycle_min_lr_overrides_div_and_no_cycle_momentum():
    total = 1000
    cfg = {**ONE, "min_lr": 0.1, "final_div": 1.0, "pct_start": 0.5, "anneal": "linear", "cycle_momentum": False}
    s = build_schedule(cfg, total, 0.9)
    t_lr, _ = torch_trace(
        lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o, max_lr=3.0, total_steps=total, pct_start=0.5, anneal_strategy="linear", div_factor=30.0,
            final_div_factor=1.0, cycle_momentum=False,
        ),
        total,
    )
    assert_close([s.lr(i) for i in range(total)], t_lr)
    assert s.lr(0) == pytest.approx(0.1) and s.lr(total - 1) == pytest.approx(0.1)
    assert {s.momentum(i) for i in range(total)} == {0.9}


def test_one_cycle_three_phase_shape():
    s = build_schedule({**ONE, "three_phase": True, "anneal": "linear"}, 10000, 0.9)
    assert s.lr(0) == pytest.approx(0.12)
    assert s.lr(2999) == pytest.approx(3.0)  # torch: phase 1 ends at pct*total - 1
    assert s.lr(5998) == pytest.approx(0.12)  # phase 2 ends at 2*pct*total - 2
    assert s.lr(9999) == pytest.approx(0.12 / 1e4)  # final = start / final_div
    assert s.momentum(7000) == pytest.approx(0.95)


# ---------------------------------------------------------------------------------------- fastai
def fastai_combined_cos(pos, pct, start, middle, end):
    """fastai v2 `combined_cos(pct, start, middle, end)` evaluated at `pos` in [0, 1] (fastai/callback/schedule.py)."""

    def sched_cos(s, e, p):
        return s + (1 + math.cos(math.pi * (1 - p))) * (e - s) / 2

    if pos >= 1:
        return sched_cos(middle, end, 1.0)
    if pos < pct:
        return sched_cos(start, middle, pos / pct)
    return sched_cos(middle, end, (pos - pct) / (1 - pct))


def test_fastai_matches_fit_one_cycle():
    total, lr_max = 100_000, 1.0
    cfg = {"name": "fastai", "max_lr": lr_max, "cycle_momentum": True}
    s = build_schedule(cfg, total, 0.9)
    # exact endpoints: start lr_max/div, peak lr_max, final lr_max/div_final (fastai div=25, div_final=1e5)
    assert s.lr(0) == pytest.approx(lr_max / 25, rel=REL)
    assert max(s.lr(i) for i in range(24_990, 25_010)) == pytest.approx(lr_max, rel=REL)
    assert s.lr(total - 1) == pytest.approx(lr_max / 1e5, rel=REL)
    assert s.params["pct_start"] == 0.25 and s.params["final_div"] == pytest.approx(4000.0)
    # fastai evaluates at pos = it/total with the boundary at pct*total; torch's indexing is one step
    # earlier, so values agree to within one step's worth of change (~pi/2 * range / 25k here).
    for it in [0, 1, 1000, 12_500, 24_000, 25_000, 26_000, 50_000, 75_000, 99_000, 99_999]:
        want_lr = fastai_combined_cos(it / total, 0.25, lr_max / 25, lr_max, lr_max / 1e5)
        want_m = fastai_combined_cos(it / total, 0.25, 0.95, 0.85, 0.95)
        assert s.lr(it) == pytest.approx(want_lr, abs=1e-4 * lr_max), it
        assert s.momentum(it) == pytest.approx(want_m, abs=1e-5), it


def test_fastai_is_one_cycle_with_fastai_defaults():
    total = 777
    a = build_schedule({"name": "fastai", "max_lr": 2.0}, total, 0.9)
    b = build_schedule({**ONE, "max_lr": 2.0, "pct_start": 0.25, "final_div": 4000.0, "cycle_momentum": False}, total, 0.9)
    assert [a.lr(i) for i in range(total)] == [b.lr(i) for i in range(total)]


# ------------------------------------------------------------------------------------- multistep
MS = {"name": "multistep", "max_lr": 0.35, "milestones": [0.625, 0.875], "gamma": 0.1}


@pytest.mark.parametrize("total,milestones", [(80000, [50000, 70000]), (800, [500, 700])])
def test_multistep_equals_torch_multisteplr(total, milestones):
    t_lr, _ = torch_trace(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=milestones, gamma=0.1), total)
    s = build_schedule(MS, total, 0.9)
    assert s.params["milestone_iterations"] == tuple(milestones)
    # torch_trace starts the optimizer at lr 0.1: rescale to the base LR 0.35
    t_lr = [x / 0.1 * 0.35 for x in t_lr]
    assert_close([s.lr(i) for i in range(total)], t_lr)
    m1, m2 = milestones
    assert s.lr(m1 - 1) == pytest.approx(0.35) and s.lr(m1) == pytest.approx(0.035)  # drops AT the milestone
    assert s.lr(m2 - 1) == pytest.approx(0.035) and s.lr(m2) == pytest.approx(0.0035)
    assert s.lr(total - 1) == pytest.approx(0.0035)


def test_multistep_rounds_half_up():
    s = build_schedule({**MS, "milestones": [0.5]}, 5, 0.9)  # 2.5 -> 3 (Python round() would give 2)
    assert s.params["milestone_iterations"] == (3,)
    assert [s.lr(i) for i in range(5)] == pytest.approx([0.35, 0.35, 0.35, 0.035, 0.035])


# ---------------------------------------------------------------------------- constant, range_test
def test_constant():
    s = build_schedule({"name": "constant", "max_lr": 0.35}, 10, 0.8)
    assert {s.lr(i) for i in range(10)} == {0.35} and {s.momentum(i) for i in range(10)} == {0.8}


def test_range_test_linear_and_exp_endpoints():
    s = build_schedule({"name": "range_test", "min_lr": 0.0, "max_lr": 3.0, "mode": "linear"}, 5000, 0.9)
    assert s.lr(0) == 0.0 and s.lr(4999) == pytest.approx(3.0, rel=REL)
    assert s.lr(2499) == pytest.approx(1.5 * 2499 / 2499.5)
    e = build_schedule({"name": "range_test", "min_lr": 1e-7, "max_lr": 10.0, "mode": "exp"}, 100, 0.9)
    assert e.lr(0) == pytest.approx(1e-7, rel=REL) and e.lr(99) == pytest.approx(10.0, rel=REL)
    ratios = [e.lr(i + 1) / e.lr(i) for i in range(99)]
    assert ratios == pytest.approx([ratios[0]] * 99)


# ------------------------------------------------------------------------------------ conventions
def test_iteration_outside_run_raises_and_pickles():
    s = build_schedule(CLR, 10, 0.9)
    with pytest.raises(ValueError):
        s.lr(10)
    with pytest.raises(ValueError):
        s.momentum(-1)
    assert (s.lr(0), s.momentum(0)) == (pytest.approx(0.1), 0.9)
    assert pickle.loads(pickle.dumps(s)).lr(5) == s.lr(5)


@pytest.mark.parametrize(
    "cfg,total,key",
    [
        ({**CLR, "min_lr": -0.1}, 100, "schedule.min_lr"),
        ({**CLR, "min_lr": 4.0}, 100, "schedule.min_lr"),
        ({**CLR, "max_lr": -1.0}, 100, "schedule.max_lr"),
        ({**CLR, "peak_at": 1.0}, 100, "schedule.peak_at"),
        ({**CLR, "peak_at": 0.0}, 100, "schedule.peak_at"),
        ({**CLR, "name": "triangle"}, 100, "schedule.name"),
        ({**CLR}, 0, "train.iterations"),
        ({**CLR}, 10.5, "train.iterations"),
        ({**ONE, "pct_start": 1.2}, 100, "schedule.pct_start"),
        ({**ONE, "three_phase": True, "pct_start": 0.6}, 100, "schedule.pct_start"),
        ({**ONE, "anneal": "exp"}, 100, "schedule.anneal"),
        ({**ONE, "min_lr": 5.0}, 100, "schedule.min_lr"),
        ({**ONE, "div": 0.5}, 100, "schedule.div"),
        ({**ONE, "final_div": 0}, 100, "schedule.final_div"),
        ({**ONE, "three_phase": "yes"}, 100, "schedule.three_phase"),
        ({**ONE, "base_momentum": 0.99}, 100, "schedule.base_momentum"),
        ({**ONE, "max_momentum": 1.0}, 100, "schedule.max_momentum"),
        ({**ONE, "base_momentum": -0.1}, 100, "schedule.base_momentum"),
        ({"name": "fastai", "max_lr": 1.0, "anneal": "linear"}, 100, "schedule.anneal"),
        ({"name": "one_cycle"}, 100, "schedule.max_lr"),
        ({**MS, "milestones": [0.875, 0.625]}, 100, "schedule.milestones"),
        ({**MS, "milestones": [0.5, 1.5]}, 100, "schedule.milestones"),
        ({**MS, "milestones": 0.5}, 100, "schedule.milestones"),
        ({**MS, "gamma": 0.0}, 100, "schedule.gamma"),
        ({**MS, "cycle_momentum": True}, 100, "schedule.cycle_momentum"),
        ({"name": "constant", "max_lr": "0.1"}, 100, "schedule.max_lr"),
        ({"name": "range_test", "min_lr": 0.0, "max_lr": 3.0, "mode": "exp"}, 100, "schedule.min_lr"),
        ({"name": "range_test", "min_lr": 0.0, "max_lr": 3.0, "mode": "cubic"}, 100, "schedule.mode"),
        ({"name": "range_test", "min_lr": 0.0, "max_lr": 3.0}, 1, "train.iterations"),
        ({**CLR}, 100, "optim.momentum"),  # momentum argument 1.0 below
    ],
)
def test_validation_errors_name_the_key(cfg, total, key):
    momentum = 1.0 if key == "optim.momentum" else 0.9
    with pytest.raises(ValueError) as e:
        build_schedule(cfg, total, momentum)
    msg = str(e.value)
    assert key in msg and "\n" not in msg, msg


def test_unknown_name_lists_allowed():
    with pytest.raises(ValueError, match="schedule.name") as e:
        build_schedule({"name": "cosine"}, 10, 0.9)
    assert all(n in str(e.value) for n in NAMES)


# ------------------------------------------------------------------- the schedules as torch schedulers
from superconv import schedulers  # noqa: E402


def run_trace(make_scheduler, total, key="momentum"):
    """(lr, momentum) before each of `total` steps, with the scheduler stepped after each (torch_trace's loop)."""
    return torch_trace(make_scheduler, total, key=key)


SCHEDULER_CASES = [
    # (our scheduler, the project's schedule config, torch's equivalent or None)
    (lambda o, n: schedulers.CLR(o, 0.1, 3.0, n),
     {**CLR}, lambda o, n: torch.optim.lr_scheduler.CyclicLR(o, 0.1, 3.0, step_size_up=n // 2, cycle_momentum=False)),
    (lambda o, n: schedulers.CLR(o, 0.1, 3.0, n, cycle_momentum=True),
     {**CLR, "cycle_momentum": True, "max_momentum": 0.95, "base_momentum": 0.85},
     lambda o, n: torch.optim.lr_scheduler.CyclicLR(o, 0.1, 3.0, step_size_up=n // 2, base_momentum=0.85,
                                                    max_momentum=0.95)),
    (lambda o, n: schedulers.OneCycle(o, 3.0, n),  # 1cycle with annihilation: conf/schedule/one_cycle.yaml
     {**ONE, "three_phase": True, "anneal": "linear"},
     lambda o, n: torch.optim.lr_scheduler.OneCycleLR(o, 3.0, total_steps=n, three_phase=True,
                                                      anneal_strategy="linear")),
    (lambda o, n: schedulers.OneCycle(o, 3.0, n, min_lr=0.1, pct_start=0.45, final_div=100),  # protocol=one_cycle
     {**ONE, "three_phase": True, "anneal": "linear", "min_lr": 0.1, "pct_start": 0.45, "final_div": 100},
     lambda o, n: torch.optim.lr_scheduler.OneCycleLR(o, 3.0, total_steps=n, three_phase=True, pct_start=0.45,
                                                      anneal_strategy="linear", div_factor=30, final_div_factor=100)),
    (lambda o, n: schedulers.OneCycle(o, 2.0, n, three_phase=False, anneal="cos"),  # torch's default
     {**ONE, "max_lr": 2.0}, lambda o, n: torch.optim.lr_scheduler.OneCycleLR(o, 2.0, total_steps=n)),
    (lambda o, n: schedulers.FastaiOneCycle(o, 1.0, n),
     {"name": "fastai", "max_lr": 1.0, "cycle_momentum": True},
     lambda o, n: torch.optim.lr_scheduler.OneCycleLR(o, 1.0, total_steps=n, pct_start=0.25, div_factor=25,
                                                      final_div_factor=4000)),
    (lambda o, n: schedulers.RangeTestLR(o, 1e-7, 10.0, n, mode="exp"),
     {"name": "range_test", "min_lr": 1e-7, "max_lr": 10.0, "mode": "exp"}, None),
    (lambda o, n: schedulers.RangeTestLR(o, 0.0, 3.0, n),
     {"name": "range_test", "min_lr": 0.0, "max_lr": 3.0, "mode": "linear"}, None),
]


@pytest.mark.parametrize("case", range(len(SCHEDULER_CASES)))
@pytest.mark.parametrize("key", ["momentum", "betas"])
def test_schedulers_equal_the_schedules_and_torch_over_a_run(case, key):
    ours_sched, cfg, torch_sched = SCHEDULER_CASES[case]
    total = 1000
    s = build_schedule(cfg, total, 0.9)
    lrs, moms = run_trace(lambda o: ours_sched(o, total), total, key=key)
    assert lrs == [s.lr(i) for i in range(total)]  # the function the training loop evaluates, bit for bit
    if cfg.get("cycle_momentum"):
        assert moms == [s.momentum(i) for i in range(total)]
    else:
        assert set(moms) == {0.9}  # the optimizer's own momentum, untouched
    if torch_sched is not None:
        t_lr, t_m = torch_trace(lambda o: torch_sched(o, total), total, key=key)
        assert_close(lrs, t_lr)
        assert_close(moms, t_m)


def test_scheduler_steps_once_past_the_run_then_refuses():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0, momentum=0.9)
    sched = schedulers.OneCycle(opt, 3.0, 10)
    for _ in range(10):  # one scheduler step after each of the 10 optimizer steps
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == sched.schedule.lr(9)
    opt.step()
    with pytest.raises(ValueError, match="total_steps=10"):
        sched.step()


def test_scheduler_scales_groups_and_checks_its_arguments():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b], "lr_scale": 0.01}], lr=1.0, momentum=0.9)
    schedulers.CLR(opt, 0.1, 3.0, 100)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1 * 0.01]
    with pytest.raises(ValueError, match="momentum or betas"):
        schedulers.OneCycle(torch.optim.Adagrad([a], lr=0.1), 1.0, 100)
    schedulers.OneCycle(torch.optim.Adagrad([a], lr=0.1), 1.0, 100, cycle_momentum=False)
    for make, word in [(lambda o: schedulers.CLR(o, 0.1, -3.0, 100), "max_lr"),
                       (lambda o: schedulers.OneCycle(o, 3.0, 0), "total_steps"),
                       (lambda o: schedulers.RangeTestLR(o, 0.0, 1.0, 100, mode="exp"), "start_lr must be in")]:
        with pytest.raises(ValueError, match=word) as e:
            make(torch.optim.SGD([a], lr=0.1, momentum=0.9))
        assert "schedule." not in str(e.value) and "train." not in str(e.value)
