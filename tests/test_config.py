"""Config composition, validation and run identity, in-process (no training)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments.suites import SMOKE_OVERRIDES, Job, job_runs
from superconv.config import CONF_DIR, ConfigError, check_group_overrides, group_options, identity, validate
from superconv.session import differences


def composed(*overrides: str, config_name: str = "config") -> dict:
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return OmegaConf.to_container(compose(config_name, overrides=list(overrides)), resolve=True)


def test_defaults_are_the_papers_fig1a_clr_run():
    c = composed()
    assert (c["model"]["depth"], c["model"]["variant"], c["model"]["bn_momentum"]) == (56, "paper", 0.05)
    assert (c["train"]["batch_size"], c["train"]["iterations"]) == (1000, 10000)
    assert (c["schedule"]["name"], c["schedule"]["min_lr"], c["schedule"]["max_lr"]) == ("clr", 0.1, 3.0)
    assert (c["optim"]["momentum"], c["optim"]["weight_decay"]) == (0.9, 1e-4)
    assert c["data"]["augment"] == "paper"
    validate(c)


def test_scale_smoke_shrinks_but_the_command_line_wins():
    c = composed("scale=smoke")
    assert c["data"]["name"] == "synthetic" and c["train"]["iterations"] == 20  # 10k x 0.002
    assert composed("scale=smoke", "protocol=pclr")["train"]["iterations"] == 160
    assert composed("scale=mini", "protocol=pclr")["train"]["iterations"] == 4000  # 80k x 0.05
    c = composed("scale=smoke", "train.iterations=7", "data=cifar10")
    assert c["data"]["name"] == "cifar10" and c["train"]["iterations"] == 7


def test_every_override_name_users_rely_on_exists():
    c = composed("model=resnet110", "model.variant=standard", "model.dropout=0.2", "model.bn_momentum=0.1",
                 "data=cifar100", "data.fraction=0.5", "data.augment=standard", "train.batch_size=256",
                 "train.iterations=5", "train.eval_every=1", "schedule=one_cycle", "schedule.max_lr=1",
                 "schedule.min_lr=0.1", "optim.momentum=0.95", "optim.weight_decay=0", "optim.nesterov=true",
                 "seed=3", "paths.data_dir=/x", "paths.results_dir=/y", "logger=wandb", "scale=mini")
    validate(c)
    assert c["model"]["depth"] == 110  # a model chosen on the command line beats scale=mini's ResNet-20


def test_mini_picks_resnet20_but_keeps_a_depth_an_experiment_pins():
    assert composed("scale=mini")["model"]["depth"] == 20
    assert composed("experiment=fig1a", "scale=mini")["model"]["depth"] == 20
    for scale, depth, batch in (("paper", 110, 800), ("mini", 110, 256), ("smoke", 20, 32)):  # smoke: plumbing
        c = composed("experiment=fig6b_depth", "net=resnet110", f"scale={scale}")
        assert (c["model"]["depth"], c["train"]["batch_size"]) == (depth, batch)
        c = composed("experiment=range_fig4b_resnet110", f"scale={scale}")
        assert (c["model"]["depth"], c["train"]["batch_size"]) == (depth, batch)
    assert composed("experiment=fig6b_depth", "net=resnet20")["train"]["batch_size"] == 1000


@pytest.mark.parametrize("override,message", [
    ("data.fraction=0", "data.fraction=0: must be in (0, 1]"),
    ("train.eval_every=0", "train.eval_every=0: must be an integer >= 1"),
    ("model.depth=21", "model.depth must be an integer 6n+2"),
    ("schedule.min_lr=4", "schedule.min_lr must be in [0, schedule.max_lr=3]"),
    ("optim.momentum=1.0", "optim.momentum must be in [0, 1) (got 1.0)"),
])
def test_validate_names_the_key_and_the_allowed_range(override, message):
    with pytest.raises(ConfigError) as err:
        validate(composed(override))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_group_options_are_refused_one_by_one():
    check_group_overrides(["model=resnet20,resnet56", "experiment=glob(*)", "seed=1"])
    with pytest.raises(ConfigError, match=r"schedule=cosine: unknown option; allowed: clr, constant"):
        check_group_overrides(["schedule=clr,cosine"])
    assert "range_fig2b_5k" in group_options("experiment")


def test_identity_ignores_volatile_keys_and_keys_added_later():
    a = composed()
    b = composed("paths.results_dir=/elsewhere", "logger=wandb", "train.checkpoint_every=7",
                 "range_test.tolerance=0.3")
    assert differences(identity(a), identity(b)) == []
    c = composed("train.iterations=5")
    assert differences(identity(a), identity(c)) == ["train.iterations"]
    newer = identity(a) | {"train": identity(a)["train"] | {"new_option": 1}}
    assert differences(identity(a), newer) == []  # a stored run predating new_option still matches


def test_range_test_config_defaults_to_the_linear_0_to_3_schedule():
    c = composed(config_name="range_test")
    assert c["schedule"] == {"name": "range_test", "min_lr": 0.0, "max_lr": 3.0, "mode": "linear",
                             "cycle_momentum": False}
    assert c["range_test"]["mode"] == "accuracy"


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_every_experiment_composes_and_validates_at_every_scale(experiment):
    for scale in ("smoke", "mini", "paper"):
        c = composed(f"experiment={experiment}", f"scale={scale}")
        validate(c)
        expected_dir = "outputs/smoke" if scale == "smoke" else "results"  # smoke never writes results/
        assert c["experiment_name"] == experiment and c["paths"]["results_dir"] == expected_dir
        if scale == "smoke":  # what session.prepare checks against the data: the synthetic set's 40 / 20 per class
            assert c["train"]["eval_subset"] is None or c["train"]["eval_subset"] <= 200, "eval_subset"
            assert c["train"]["batch_size"] <= 400 or experiment in SMOKE_OVERRIDES, "batch_size"
            for pinned in job_runs(Job(experiment, SMOKE_OVERRIDES.get(experiment, ()))):  # every swept value
                run = composed(f"experiment={experiment}", "scale=smoke", *pinned)
                assert run["train"]["batch_size"] <= 400, pinned
    assert c["job"] == ("range_test" if experiment.startswith("range_") else "train")


def test_protocols_set_the_papers_lengths_and_bn_and_scale_with_length_factor():
    clr, pclr = composed("protocol=clr"), composed("protocol=pclr")
    assert (clr["schedule"]["name"], clr["train"]["iterations"], clr["model"]["bn_momentum"]) == ("clr", 10000, 0.05)
    assert (pclr["schedule"]["name"], pclr["train"]["iterations"], pclr["model"]["bn_momentum"]) == (
        "multistep", 80000, 0.001)
    assert composed("protocol=pclr", "length_factor=0.01")["train"]["iterations"] == 800
    ss = composed("+stepsize=2k")
    assert (ss["train"]["iterations"], ss["model"]["bn_momentum"]) == (4000, 0.15)  # Caffe MAF 0.85


# ------------------------------------------------------------------------------ unknown keys (typed configs)
@pytest.mark.parametrize("argv, key, hint", [
    (["+model.dropuot=0.2"], "model.dropuot", "did you mean model.dropout?"),
    (["+schedule.max_lrr=3"], "schedule.max_lrr", "did you mean schedule.max_lr?"),
    (["-m", "+schedule.max_lrr=3,4"], "schedule.max_lrr", "did you mean schedule.max_lr?"),  # a sweep too
    (["+trian.iterations=3"], "trian.iterations", "known keys here"),
])
def test_an_unknown_key_on_the_command_line_is_one_line_exit_2_and_writes_nothing(run_cli, tmp_path, argv, key,
                                                                                   hint):
    proc = run_cli(*argv)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and hint in lines[0], proc.stderr
    assert not (tmp_path / "results").exists()


def test_a_typo_in_an_experiment_file_is_refused_before_and_after_composition(tmp_path):
    import shutil

    from superconv.config import check_known_keys, check_override_keys, known_keys

    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "experiment" / "typo.yaml").write_text("# @package _global_\nexperiment_name: typo\n"
                                                   "model:\n  dropuot: 0.2\n")
    with pytest.raises(ConfigError, match=r"model.dropuot: unknown configuration key \(set in conf/experiment/"
                                          r"typo.yaml\); did you mean model.dropout\?"):
        check_override_keys(["experiment=typo", "scale=mini"], conf)
    with initialize_config_dir(version_base="1.3", config_dir=str(conf)):
        c = OmegaConf.to_container(compose("config", overrides=["experiment=typo"]), resolve=True)
    with pytest.raises(ConfigError, match="model.dropuot: unknown configuration key; did you mean model.dropout"):
        check_known_keys(c, conf)
    assert "model.dropuot" not in known_keys(conf)  # a _global_ file cannot declare a key for itself


def test_every_shipped_option_sets_only_known_keys():
    from superconv.config import GROUPS, check_known_keys, check_override_keys

    for group in GROUPS:
        for option in group_options(group):
            check_override_keys([f"{group}={option}"])  # its file's keys, statically
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        for extra in (["protocol=pclr"], ["protocol=one_cycle"], ["+recipe=one_cycle"], ["+recipe=step"],
                      ["+net=resnet110"], ["+stepsize=1k"], ["logger=wandb"], ["launcher=slurm"]):
            c = OmegaConf.to_container(compose("config", overrides=extra), resolve=True)
            c.pop("hydra", None)
            check_known_keys(c)


def test_the_fixed_epoch_batch_sweep_trains_the_fig1a_runs_images_at_every_batch():
    """fig9a_batch_epochs: iterations x batch = 10k x 1000 (to within one batch) at paper scale, and the same
    ratio at a smaller length_factor; the CLR peak stays at half the run; a bad batch is named in one line."""
    from superconv.config import same_images

    for batch, iterations in ((1536, 6510), (512, 19531), (256, 39062)):
        c = composed("experiment=fig9a_batch_epochs", f"train.batch_size={batch}")
        assert (c["train"]["iterations"], c["schedule"]["peak_at"], c["model"]["bn_momentum"]) == (iterations, 0.5, 0.05)
        assert abs(iterations * batch - 10_000_000) < batch
    c = composed("experiment=fig9a_batch_epochs", "scale=frontier", "train.batch_size=512", "length_factor=0.04")
    assert c["train"]["iterations"] == 781  # 40 epochs of a 10k-image subset
    assert same_images(10_000, 1000) == 10_000
    with pytest.raises(ValueError, match=r"^train.batch_size=0 must be a positive integer$"):
        same_images(10_000, 0)
