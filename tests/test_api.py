"""The Python API (superconv.api, superconv.schedulers, models by `_target_`) on a tiny CNN and synthetic batches:
curve lengths in both modes, bit-exact restore, divergence, the CLI's analyses and LR estimate, bad input, the
example script, and a `_target_` model through the CLI."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import superconv
from conftest import ROOT, cli_env
from superconv.range_analysis import analyze_accuracy_curve, analyze_loss_curve, smooth_losses, stop_index


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tensors this small run ~10x faster on one thread than on two when the CPU is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_cnn(bn: bool = True, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), *([nn.BatchNorm2d(8)] if bn else []), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(8, 4))


def dataset(n: int, seed: int) -> TensorDataset:
    """4 classes told apart by the mean of the image: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    return TensorDataset(torch.randn(n, 3, 8, 8, generator=g) * 0.5 + y.view(-1, 1, 1, 1) * 0.3, y)


@pytest.fixture
def loaders():
    return (DataLoader(dataset(128, 0), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0)),
            DataLoader(dataset(64, 1), batch_size=32))


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


# ------------------------------------------------------------------------------------------- both modes
def test_accuracy_mode_curve_verdict_and_bounds_are_the_clis(loaders):
    train, val = loaders
    r = superconv.range_test(m := tiny_cnn(), sgd(m), train, val_loader=val, end_lr=2.0, num_iter=24, eval_every=4)
    c = r.curve
    assert r.status == "completed" and r.stopped_at is None and "completed 24 iterations" in r.stop_reason
    assert list(c["iteration"]) == list(range(1, 25)) and len(r.evaluations) == 6  # after steps 4, 8, ..., 24
    assert c["lr"].iloc[0] == 0.0 and c["lr"].iloc[-1] == pytest.approx(2.0)  # Smith's linear 0 -> end_lr
    assert c["smoothed_loss"].tolist() == smooth_losses(c["train_loss"].tolist(), 0.98)
    ev = r.evaluations
    same = analyze_accuracy_curve(ev["lr"].tolist(), ev["test_acc"].tolist(), diverged_lr=None, tolerance=0.2,
                                  bounds_rule="peak", min_div=4.0, chance=0.25)  # chance: 1 / the 4 outputs
    assert (r.verdict, r.bounds) == (same["verdict"], same["bounds"])
    assert r.verdict["label"] in ("stays_high", "collapses") and r.verdict["peak_acc"] > 0.5  # it learned
    assert r.bounds["min_lr"] == pytest.approx(r.bounds["max_lr"] / 4) and r.bounds["max_lr"] in set(ev["lr"])
    assert r.verdict["text"] in str(r)


def test_loss_mode_curve_and_suggestions_are_fastais(loaders):
    train, _ = loaders
    r = superconv.range_test(m := tiny_cnn(), sgd(m), train, mode="loss", end_lr=0.5, num_iter=30)
    c = r.curve
    assert r.status == "completed" and len(c) == 30
    assert c["lr"].iloc[0] == pytest.approx(1e-7) and c["lr"].iloc[-1] == pytest.approx(0.5)  # fastai's exp rise
    assert (c["lr"].iloc[1:].to_numpy() / c["lr"].iloc[:-1].to_numpy()) == pytest.approx((0.5 / 1e-7) ** (1 / 29))
    assert r.suggestions == analyze_loss_curve(c["lr"].tolist(), c["train_loss"].tolist(), num_it=30, beta=0.98)[0]
    assert set(r.suggestions) >= {"valley", "steep", "minimum"} and r.verdict is None
    assert c["test_acc"].isna().all()  # no test set given: the finder reads training losses only


def test_accumulation_and_batch_fn(loaders):
    """Dict batches through batch_fn; 2 batches per step: 10 steps read 20 batches, re-iterating the loader."""
    seen = []

    def batch_fn(b):
        seen.append(len(b["y"]))
        return b["x"], b["y"]

    data = [{"x": x, "y": y} for x, y in DataLoader(dataset(48, 0), batch_size=16)]  # 3 batches
    r = superconv.range_test(m := tiny_cnn(), sgd(m), data, mode="loss", end_lr=0.1, num_iter=10,
                             accumulation_steps=2, batch_fn=batch_fn)
    assert len(r.curve) == 10 and len(seen) == 20


@pytest.mark.parametrize("amp", ["bf16", "fp16"])  # fp16: with a GradScaler (CPU autocast has both)
def test_autocast_runs(loaders, amp):
    train, val = loaders
    r = superconv.range_test(m := tiny_cnn(), sgd(m), train, val_loader=val, end_lr=1.0, num_iter=6, eval_every=3,
                             amp=amp)
    assert len(r.curve) == 6 and r.curve["train_loss"].map(math.isfinite).all()


# ---------------------------------------------------------------------------------------------- restore
def _state(model, opt):
    return ({k: v.clone() for k, v in model.state_dict().items()}, copy.deepcopy(opt.state_dict()), model.training,
            torch.get_rng_state().clone(), [None if p.grad is None else p.grad.clone() for p in model.parameters()])


def _equal(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("make_opt", [sgd, lambda m: torch.optim.Adam(m.parameters(), lr=1e-3)])
def test_state_is_restored_bit_for_bit(loaders, make_opt):
    train, val = loaders
    model = tiny_cnn(dropout=0.3)
    opt = make_opt(model)
    for x, y in list(train)[:2]:  # momentum buffers / Adam moments and BN statistics that are not fresh
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    before = _state(model, opt)
    superconv.range_test(model, opt, train, val_loader=val, end_lr=3.0, num_iter=8, eval_every=4)
    after = _state(model, opt)
    assert _equal(before[0], after[0])  # parameters and BN buffers (running mean, var, num_batches_tracked)
    assert _equal(before[1], after[1])  # optimizer state and param groups (lr, momentum, betas)
    assert before[2] == after[2] is False  # eval mode, as before
    assert _equal(before[3], after[3]) and _equal(before[4], after[4])  # torch's RNG (dropout drew), gradients
    superconv.range_test(model, opt, train, val_loader=val, end_lr=3.0, num_iter=8, eval_every=4, restore=False)
    assert not _equal(before[0], _state(model, opt)[0])  # restore=False keeps what the test trained


# ------------------------------------------------------------------------------------------- divergence
def test_a_huge_end_lr_stops_at_divergence_and_says_where(loaders):
    train, val = loaders
    model = tiny_cnn(bn=False)  # without BN nothing rescales the exploding weights: the loss becomes inf/NaN
    r = superconv.range_test(model, sgd(model), train, val_loader=val, end_lr=1e30, num_iter=20, eval_every=1)
    assert r.status == "diverged" and 1 < r.stopped_at < 20
    assert r.stop_lr == pytest.approx(1e30 * (r.stopped_at - 1) / 19)  # the LR of the step whose loss was not finite
    assert f"diverged at LR {r.stop_lr:.3g} (iteration {r.stopped_at} of 20)" in r.stop_reason
    assert len(r.curve) == r.stopped_at - 1 and r.curve["train_loss"].map(math.isfinite).all()
    assert r.verdict["label"] in ("diverged", "never_learns") and r.verdict["diverged_lr"] == r.stop_lr


def test_loss_mode_stops_by_fastais_rule(loaders):
    train, _ = loaders
    r = superconv.range_test(m := tiny_cnn(), sgd(m), train, mode="loss", start_lr=1e-4, end_lr=1e4, num_iter=60)
    assert r.status in ("stopped", "diverged") and r.stopped_at < 60
    assert f"at LR {r.stop_lr:.3g} (iteration {r.stopped_at} of 60)" in r.stop_reason
    if r.status == "stopped":  # the last row is the one fastai's rule stops at
        assert len(r.curve) == r.stopped_at
        assert stop_index(r.curve["smoothed_loss"].tolist(), 4.0) == len(r.curve) - 1
        assert "exceeded 4x its minimum" in r.stop_reason


# ------------------------------------------------------------------------------------------- bad input
BAD = [
    (dict(start_lr=-0.1), "start_lr=-0.1: must be a number >= 0"),
    (dict(step="exp", start_lr=0.0), "start_lr=0.0: must be a number > 0 with step='exp'"),
    (dict(end_lr=0.0), "end_lr=0.0: must be a number > 0"),
    (dict(start_lr=2.0, end_lr=1.0), "start_lr=2.0: must be < end_lr=1.0"),
    (dict(num_iter=1), "num_iter=1: must be an integer >= 2"),
    (dict(num_iter=10, eval_every=11), "eval_every=11: must be an integer in [1, num_iter=10]"),
    (dict(val_loader=None), "mode='accuracy' needs eval_fn or val_loader"),
    (dict(mode="grid"), "mode='grid': must be 'accuracy'"),
    (dict(step="cubic"), "step='cubic': must be 'linear' or 'exp'"),
    (dict(amp="fp8"), "amp='fp8': must be None, 'bf16' or 'fp16'"),
    (dict(accumulation_steps=0), "accumulation_steps=0: must be an integer >= 1"),
    (dict(train_loader=[]), "train_loader is empty: it yielded no batch"),
    (dict(val_loader=[]), "val_loader is empty: it yielded no batch"),
    (dict(eval_fn=lambda m: 0.5), "eval_fn and val_loader: pass one of them"),
    (dict(train_loader=[torch.zeros(2, 3, 8, 8)] * 2), "not an (x, y) pair: pass batch_fn"),
]


@pytest.mark.parametrize("kwargs,message", BAD, ids=[b[1].split(":")[0].split("=")[0] for b in BAD])
def test_bad_input_names_the_argument(loaders, kwargs, message):
    train, val = loaders
    model = tiny_cnn()
    opt = sgd(model)
    before = _state(model, opt)
    args = {"train_loader": train, "val_loader": val, "num_iter": 4, "eval_every": 2, **kwargs}
    with pytest.raises(ValueError) as e:
        superconv.range_test(model, opt, args.pop("train_loader"), **args)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert _equal(before[0], _state(model, opt)[0]) and _equal(before[1], _state(model, opt)[1])


def test_the_name_is_the_function_also_after_the_cli_module_is_imported(loaders):
    import superconv.range_test  # noqa: F401  (the CLI entry: binds superconv.range_test to the module)

    with pytest.raises(ValueError, match="num_iter=1"):
        superconv.range_test(tiny_cnn(), sgd(tiny_cnn()), loaders[0], val_loader=loaders[1], num_iter=1)


# -------------------------------------------------------------------------------- the LR estimate
def test_lr_estimate_equals_the_cli_runs_column(synthetic_data_dir, tmp_path):
    """A smoke-scale CLI run (in-process) with train.lr_estimate_every=1, then the same run driven step by step
    with the API's estimator updated after each step: the same values on the same steps, bit for bit."""
    from superconv.bench import _compose
    from superconv.loop import augmentation_generator, train_iteration
    from superconv.modes import run
    from superconv.results import read_metrics
    from superconv.session import prepare

    overrides = [f"paths.data_dir={synthetic_data_dir}", f"paths.results_dir={tmp_path}", "scale=smoke",
                 "model.depth=8", "train.iterations=8", "train.eval_every=8", "train.batch_size=16",
                 "train.replicas=1", "train.lr_estimate_every=1", "train.device=cpu",
                 "train.precision=fp32", "train.deterministic=true", "train.progress=false", "train.threads=1"]
    c, _ = _compose(overrides)
    run(c)
    (metrics,) = tmp_path.glob("*/*/metrics.csv")
    cli = [(r["iteration"], r["lr_estimate"]) for r in read_metrics(metrics) if r["lr_estimate"] is not None]
    assert len(cli) == 7  # every step from the second on

    p = prepare(*_compose(overrides))
    p.lr_estimate = None  # the loop's own estimator off: the API's observes the same steps
    est = superconv.LREstimate(p.model.parameters())
    gen = augmentation_generator(p.seed, p.device)
    api = []
    for it in range(8):
        lr = train_iteration(p, it, gen)[0]
        value = est.update(lr)
        if value is not None:
            api.append((it + 1, value))
    assert api == cli and est.history == cli and est.current == cli[-1][1]


def test_lr_estimate_every_k_and_its_checks():
    p = [nn.Parameter(torch.zeros(3))]
    est = superconv.LREstimate(p, every=3)
    closed = []
    for i in range(10):
        with torch.no_grad():
            p[0].add_(torch.tensor([1.0, -2.0, 0.5]) * 0.9 ** i)
        if est.update(0.1) is not None:
            closed.append(i + 1)
    assert closed == [2, 5, 8] and est.steps == 10  # windows open at steps 0, 3, 6, 9 and close two later
    with pytest.raises(ValueError, match="lr=nan"):
        est.update(math.nan)


# ---------------------------------------------------------------------------------------- schedulers
def test_schedulers_are_exported_and_drive_any_optimizer():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1.0)
    sched = superconv.OneCycle(opt, max_lr=0.01, total_steps=20)
    seen = []
    for _ in range(20):
        seen.append((opt.param_groups[0]["lr"], opt.param_groups[0]["betas"][0]))
        opt.step()
        sched.step()
    assert seen == [(sched.schedule.lr(i), sched.schedule.momentum(i)) for i in range(20)]
    assert seen[0][1] == pytest.approx(0.95) and min(b for _, b in seen) == pytest.approx(0.85)


# ------------------------------------------------------------------------------------- models by config
def _composed(*overrides: str) -> dict:
    from superconv.bench import _compose

    return _compose(list(overrides))[0]


def test_the_builtin_resnet_as_a_target_config_is_the_same_network():
    from superconv.models.factory import build_model

    c = _composed("model=resnet20", "+model._target_=superconv.models.resnet.build_resnet")
    plain = {k: v for k, v in c["model"].items() if k != "_target_"}
    torch.manual_seed(0)
    a = build_model(plain, 10)
    torch.manual_seed(0)
    b = build_model(c["model"], 10)  # depth, variant, bn_group, ... passed: build_resnet names them
    assert type(a) is type(b) and _equal(a.state_dict(), b.state_dict())


def test_builtin_model_configs_are_unchanged():
    """No built-in model option gained a key: the runs under results/ keep their identity and directories."""
    keys = {"name", "depth", "variant", "dropout", "dropout_at", "bn_momentum", "bn_stats", "bn_group"}
    for name in ("resnet20", "resnet56", "resnet110"):
        assert set(_composed(f"model={name}")["model"]) == keys


@pytest.mark.parametrize("overrides,message", [
    (["model=torchvision_resnet18", "+model.zero_init_residul=true"], "model.zero_init_residul: not a parameter of "
                                                                    "superconv.models.zoo.torchvision_resnet18; did you "
                                                                    "mean model.zero_init_residual?"),
    (["model=resnet20", "+model.zero_init_residual=true"], "model.zero_init_residual: unknown configuration key"),
    (["model=resnet20", "+model.dropuot=0.1"], "did you mean model.dropout?"),
    (["+model._target_=superconv.models.nowhere.net"], "model._target_=superconv.models.nowhere.net: cannot import"),
    (["+model._target_=torch.nn.Linear"], "must take a num_classes argument"),
])
def test_model_config_errors(overrides, message):
    from superconv.config import ConfigError

    with pytest.raises(ConfigError) as e:
        _composed(*overrides)
    assert message in str(e.value)


def test_a_target_model_ignores_the_builtin_keys():
    from superconv.models.factory import target_kwargs

    c = _composed("model=torchvision_resnet18", "scale=smoke", "protocol=clr")
    assert c["model"]["bn_momentum"] and c["model"]["depth"] == 20  # set by protocol and scale files...
    assert target_kwargs(c["model"]) == {"zero_init_residual": False}  # ...and not passed to torchvision's net


@pytest.mark.slow  # torchvision's ResNet-18 on a CPU: ~15 s
def test_a_target_model_runs_a_smoke_experiment(tmp_path, synthetic_data_dir):
    proc = subprocess.run([sys.executable, "-m", "superconv.train", "model=torchvision_resnet18", "scale=smoke",
                           "train.iterations=4", "train.eval_every=2", "train.progress=false",
                           f"paths.data_dir={synthetic_data_dir}", f"paths.results_dir={tmp_path}"],
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = tmp_path.glob("adhoc/*")
    assert run_dir.name == "model=torchvision_resnet18,scale=smoke,train.eval_every=2,train.iterations=4"
    assert (run_dir / "DONE").exists() and "superconv.models.zoo.torchvision_resnet18" in \
        (run_dir / "config.yaml").read_text()


# ------------------------------------------------------------------------------------------- the example
@pytest.mark.slow  # ResNet-18 on a CPU: under 2 minutes
def test_the_example_runs_on_synthetic_data(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "range_test_your_model.py"), "--synthetic",
                           "--out", str(tmp_path)], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "LR range test (accuracy mode" in proc.stdout and "verdict: " in proc.stdout
    assert "test accuracy" in proc.stdout.splitlines()[-1]
    assert (tmp_path / "range_test.png").stat().st_size > 10_000
    assert Path(ROOT / "examples" / "range_test_your_model.py").read_text().count("\n") < 90
