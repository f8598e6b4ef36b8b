"""superconv.optim: the paper's weight-decay split, optimizer construction, per-step hyperparameters."""

import pytest
import torch
from torch import nn

from superconv.config import validate
from superconv.optim import build_optimizer, param_groups, set_hparams

from test_config import composed  # the in-process Hydra compose helper


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=True)
        self.bn = nn.BatchNorm2d(4)
        self.body = nn.Sequential(nn.Conv2d(4, 4, 1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(self.body(torch.relu(self.bn(self.conv(x)))))


def ids(params):
    return {id(p) for p in params}


def by_name(groups):
    return {g["name"]: g for g in groups}


def test_paper_decay_split():
    m = Tiny()
    g = by_name(param_groups(m, 1e-4, "paper"))
    assert g["decay"]["weight_decay"] == 1e-4 and g["no_decay"]["weight_decay"] == 0.0
    want_decay = [m.conv.weight, m.body[0].weight, m.fc.weight, m.fc.bias, m.bn.weight, m.bn.bias]
    assert len(g["decay"]["params"]) == 6 and ids(g["decay"]["params"]) == ids(want_decay)
    assert len(g["no_decay"]["params"]) == 1 and ids(g["no_decay"]["params"]) == {id(m.conv.bias)}


def test_weights_only_decay_split():
    m = Tiny()
    g = by_name(param_groups(m, 5e-4, "weights_only"))
    assert g["decay"]["weight_decay"] == 5e-4
    assert ids(g["decay"]["params"]) == ids([m.conv.weight, m.body[0].weight, m.fc.weight])
    assert len(g["no_decay"]["params"]) == 4
    assert ids(g["no_decay"]["params"]) == ids([m.conv.bias, m.fc.bias, m.bn.weight, m.bn.bias])


@pytest.mark.parametrize("decay", ["paper", "weights_only"])
def test_every_parameter_in_exactly_one_group(decay):
    m = Tiny()
    groups = param_groups(m, 1e-4, decay)
    flat = [id(p) for g in groups for p in g["params"]]
    assert len(flat) == len(set(flat)) == len(list(m.parameters()))
    assert set(flat) == ids(m.parameters())


def test_shared_parameter_counted_once_and_unknown_module_raises():
    m = Tiny()
    m.fc2 = nn.Linear(4, 10)
    m.fc2.weight = m.fc.weight  # tied
    flat = [p for g in param_groups(m, 1e-4) for p in g["params"]]
    assert len(flat) == len(list(m.parameters()))

    m.scale = nn.Parameter(torch.ones(1))  # owned by Tiny itself: no rule for it
    with pytest.raises(ValueError, match="scale"):
        param_groups(m, 1e-4)
    with pytest.raises(ValueError, match="LayerNorm"):
        param_groups(nn.Sequential(nn.LayerNorm(4)), 1e-4)


def test_bad_decay_and_hparams_name_the_key():
    with pytest.raises(ValueError, match="optim.decay"):
        param_groups(Tiny(), 1e-4, "all")
    for cfg, key in [
        ({"name": "sgd", "momentum": 0.0, "nesterov": True}, "optim.nesterov"),
        ({"name": "sgd", "weight_decay": -1e-4}, "optim.weight_decay"),
        ({"name": "sgd", "momentum": 1.0}, "optim.momentum"),
        ({"name": "sgd", "momentum": -0.1}, "optim.momentum"),
        ({"name": "rmsprop"}, "optim.name"),
        ({"name": "sgd", "decay": "bn"}, "optim.decay"),
    ]:
        with pytest.raises(ValueError, match=key.replace(".", r"\.")):
            build_optimizer(Tiny(), cfg, 0.1)


def test_build_optimizer_types_and_settings():
    m = Tiny()
    sgd = build_optimizer(m, {"name": "sgd", "momentum": 0.9, "weight_decay": 1e-4, "nesterov": True, "decay": "paper"}, 0.1)
    assert isinstance(sgd, torch.optim.SGD)
    assert all(g["lr"] == 0.1 and g["momentum"] == 0.9 and g["nesterov"] for g in sgd.param_groups)
    assert sorted(g["weight_decay"] for g in sgd.param_groups) == [0.0, 1e-4]
    adam = build_optimizer(m, {"name": "adam", "momentum": 0.85}, 1e-3)
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["betas"] == (0.85, 0.999)
    assert isinstance(build_optimizer(m, {"name": "adagrad"}, 0.1), torch.optim.Adagrad)
    assert isinstance(build_optimizer(m, {"name": "adadelta"}, 1.0), torch.optim.Adadelta)


def test_set_hparams_all_groups():
    m = Tiny()
    sgd = build_optimizer(m, {"name": "sgd"}, 0.1)
    set_hparams(sgd, 2.5, 0.85)
    assert len(sgd.param_groups) == 2
    assert all(g["lr"] == 2.5 and g["momentum"] == 0.85 for g in sgd.param_groups)
    adam = build_optimizer(m, {"name": "adam", "momentum": 0.9}, 1e-3)
    set_hparams(adam, 3e-3, 0.95)
    assert all(g["lr"] == 3e-3 and g["betas"] == (0.95, 0.999) for g in adam.param_groups)
    for name in ("adagrad", "adadelta"):
        opt = build_optimizer(m, {"name": name}, 0.1)
        set_hparams(opt, 0.5, 0.8)
        assert all(g["lr"] == 0.5 and "momentum" not in g for g in opt.param_groups)


def test_sgd_step_decays_weights_not_conv_bias():
    m = Tiny()
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(1.0)
    opt = build_optimizer(m, {"name": "sgd", "momentum": 0.9, "weight_decay": 1e-2, "decay": "paper"}, 0.5)
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    # SGD: p -= lr * (grad + wd * p) = 1 - 0.5 * 0.01 = 0.995 for decayed parameters
    for p in (m.conv.weight, m.fc.weight, m.fc.bias, m.bn.weight, m.bn.bias):
        assert torch.allclose(p, torch.full_like(p, 0.995))
    assert torch.equal(m.conv.bias, torch.ones_like(m.conv.bias))


def test_lr_scale_applied_at_build_and_by_set_hparams():
    m = Tiny()
    adam = build_optimizer(m, {"name": "adam", "momentum": 0.9, "lr_scale": 0.01}, 0.35)
    assert len(adam.param_groups) == 2
    assert all(g["lr"] == pytest.approx(0.0035) and g["lr_scale"] == 0.01 for g in adam.param_groups)
    set_hparams(adam, 3.0, 0.9)  # the CLR peak, in SGD units
    assert all(g["lr"] == pytest.approx(0.03) for g in adam.param_groups)
    sgd = build_optimizer(m, {"name": "sgd"}, 0.1)  # default: unscaled
    set_hparams(sgd, 2.5, 0.9)
    assert all(g["lr_scale"] == 1.0 and g["lr"] == 2.5 for g in sgd.param_groups)
    # a group without the key (a checkpoint written before lr_scale existed) is unscaled
    del sgd.param_groups[0]["lr_scale"]
    set_hparams(sgd, 0.7, 0.9)
    assert [g["lr"] for g in sgd.param_groups] == [0.7, 0.7]


def test_lr_scale_survives_a_state_dict_round_trip():
    m = Tiny()
    saved = build_optimizer(m, {"name": "adam", "lr_scale": 0.01}, 0.1).state_dict()
    restored = build_optimizer(m, {"name": "adam", "lr_scale": 0.01}, 0.1)
    restored.load_state_dict(saved)
    set_hparams(restored, 1.0, 0.9)
    assert all(g["lr"] == pytest.approx(0.01) for g in restored.param_groups)


@pytest.mark.parametrize("bad", [0, 0.0, -1, "x", True, None])
def test_bad_lr_scale_names_the_key(bad):
    with pytest.raises(ValueError, match=r"optim\.lr_scale"):
        build_optimizer(Tiny(), {"name": "adam", "lr_scale": bad}, 0.1)


@pytest.mark.parametrize("group, cls, settings", [
    ("sgd", torch.optim.SGD, {"momentum": 0.9, "nesterov": False, "lr_scale": 1.0}),
    ("nesterov", torch.optim.SGD, {"momentum": 0.9, "nesterov": True, "lr_scale": 1.0}),
    ("adagrad", torch.optim.Adagrad, {"lr_scale": 1.0}),
    ("adadelta", torch.optim.Adadelta, {"lr_scale": 1.0}),
    ("adam", torch.optim.Adam, {"betas": (0.9, 0.999), "lr_scale": 0.01}),
])
def test_each_optim_group_composes_and_builds_its_optimizer(group, cls, settings):
    for protocol, schedule_lr in (("clr", 0.1), ("pclr", 0.35)):  # the schedules' initial LRs, SGD units
        c = composed(f"optim={group}", f"protocol={protocol}")
        validate(c)
        assert c["optim"]["weight_decay"] == 1e-4 and c["optim"]["decay"] == "paper"  # every Fig 8 log
        opt = build_optimizer(Tiny(), c["optim"], schedule_lr)
        assert type(opt) is cls
        for g in opt.param_groups:
            assert g["lr"] == pytest.approx(schedule_lr * settings["lr_scale"])
            assert {k: g[k] for k in settings} == settings
    # the columns paper_figures/report.py selects Fig 8's runs by (optimizer, nesterov)
    want = {"nesterov": ("sgd", True), "sgd": ("sgd", False)}.get(group, (group, False))
    assert (c["optim"]["name"], c["optim"]["nesterov"]) == want
