"""The report's verdict rules (paper_figures.judging) on small constructed numbers: evidence needs n >= 2 per
side, the noise is the larger of the groups' pooled sd and the scale's seed sd, a still-rising range test is
inconclusive unless it was high over the stated share, a too-short run makes a claim not testable, and runs of
different protocols are never one group."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from paper_figures.judging import (HIGH_SHARE, INCONCLUSIVE, INDICATIVE, MIN_N, NOT_REPRODUCED,
                                   NOT_RUN, NOT_TESTABLE, PARTLY, REPRODUCED, STILL_RISING, Protocol, Regime, SeedSd,
                                   Side, combine, compare, comparison_noise, epochs, high_share, pooled_sd,
                                   protocol_of, range_case, range_run, regime_gap, seed_sd)

SD = SeedSd("paper", 0.5, 1, 1)  # a small scale seed sd: the groups' own sd decides unless said otherwise


# ------------------------------------------------------------------------------ evidence: n >= 2 per side
def test_one_run_on_a_side_is_indicative_never_reproduced():
    assert MIN_N == 2
    label, detail = compare(Side("CLR", (95.0,)), Side("PC-LR", (90.0, 90.4)), better=True, scale_sd=SD)
    assert label == INDICATIVE and "right direction, beyond the noise" in detail and "1 CLR run" in detail
    label, detail = compare(Side("CLR", (85.0,)), Side("PC-LR", (90.0,)), better=True, scale_sd=SD)
    assert label == INDICATIVE and "opposite direction, beyond the noise" in detail
    # the same gaps with two runs on each side are verdicts
    assert compare(Side("CLR", (95.0, 95.2)), Side("PC-LR", (90.0, 90.4)), better=True, scale_sd=SD)[0] == REPRODUCED
    label, detail = compare(Side("CLR", (85.0, 85.2)), Side("PC-LR", (90.0, 90.4)), better=True, scale_sd=SD)
    assert label == NOT_REPRODUCED and "beyond the noise" in detail
    # "A does not beat B" (Adam) follows the same rule
    assert compare(Side("A", (90.0,)), Side("B", (90.0,)), better=False, scale_sd=SD)[0] == INDICATIVE
    assert compare(Side("A", (90.0, 90.2)), Side("B", (90.1, 89.9)), better=False, scale_sd=SD)[0] == REPRODUCED
    assert compare(Side("A", (95.0, 95.2)), Side("B", (90.1, 89.9)), better=False, scale_sd=SD)[0] == NOT_REPRODUCED


def test_diverged_runs_are_results_that_count_toward_n():
    # B: one accuracy and one diverged run = 2 results; the diverged one is no accuracy
    label, detail = compare(Side("A", (92.0, 92.2)), Side("B", (90.0,), diverged=1), better=True, scale_sd=SD)
    assert label == REPRODUCED and "n = 2 vs 1" in detail and "1 B run(s) diverged" in detail
    # every run of one side diverged: that side fails, with n >= 2 a verdict, else indicative
    assert compare(Side("A", (), 2), Side("B", (90.0, 90.5)), better=True, scale_sd=SD)[0] == NOT_REPRODUCED
    assert compare(Side("A", (), 1), Side("B", (90.0, 90.5)), better=True, scale_sd=SD)[0] == INDICATIVE
    assert compare(Side("A", (), 2), Side("B", (), 2), better=True, scale_sd=SD)[0] == INCONCLUSIVE
    assert compare(Side("A", (92.0,)), Side("B", ()), better=True, scale_sd=SD) == (NOT_RUN, "no finished run of B")
    # a diverged run on the favoured side caps the verdict at partly
    label, detail = compare(Side("A", (95.0, 95.1), 1), Side("B", (90.0, 90.2)), better=True, scale_sd=SD)
    assert label == PARTLY and "caps the verdict at partly" in detail


# ------------------------------------------------------------------------------ noise
def test_pooled_sd_is_the_within_group_sd():
    sd, df = pooled_sd([[1.0, 3.0], [10.0, 11.0, 12.0], [100.0]])  # variances 2 (df 1) and 1 (df 2); n=1 ignored
    assert df == 3 and sd == pytest.approx(math.sqrt((2 + 2 * 1) / 3))
    assert pooled_sd([[1.0], [2.0]]) == (None, 0)


def test_noise_is_the_larger_of_the_pooled_sd_and_the_scale_seed_sd():
    a, b = (92.0, 94.0), (90.0, 92.0)  # d = +2 pp, pooled sd 1.41 pp
    value, how = comparison_noise(a, b, SeedSd("mini", 3.0, 4, 5))
    assert value == 3.0 and "pooled sd 1.41 pp" in how and "mini seed sd 3.00 pp (4 groups)" in how
    assert comparison_noise(a, b, SeedSd("mini", 0.2, 1, 1))[0] == pytest.approx(math.sqrt(2))
    assert comparison_noise(a, b, None)[0] == pytest.approx(math.sqrt(2))
    # the same gap: beyond the groups' own sd, within the scale's seed sd
    assert compare(Side("A", a), Side("B", b), better=True, scale_sd=SeedSd("mini", 0.2, 1, 1))[0] == REPRODUCED
    label, detail = compare(Side("A", a), Side("B", b), better=True, scale_sd=SeedSd("mini", 3.0, 4, 5))
    assert label == PARTLY and "within the noise" in detail and "noise 3.00 pp" in detail
    # one run per side: the scale's seed sd is the only noise
    detail = compare(Side("A", (95.0,)), Side("B", (90.0,)), better=True, scale_sd=SeedSd("mini", 3.0, 4, 5))[1]
    assert "noise 3.00 pp = mini seed sd 3.00 pp" in detail and "beyond the noise" in detail


def test_without_a_measurable_noise_the_verdict_is_indicative():
    value, how = comparison_noise((95.0,), (90.0,), None)
    assert value is None and "no seed sd measurable" in how
    label, detail = compare(Side("A", (95.0,), 1), Side("B", (90.0,), 1), better=True, scale_sd=None)
    assert label == INDICATIVE and "no seed sd measurable" in detail  # n = 2 per side, but no noise to judge by


def _row(acc, seed, status="completed", experiment="fig1a", **kw) -> dict:
    row = dict(experiment=experiment, run=f"{experiment}-{seed}-{acc}-{len(kw)}", status=status, job_type="train",
               seed=seed, depth=20, variant="paper", dropout=0.0, dataset="cifar10", fraction=1.0, augment="paper",
               batch_size=256, iterations=150, optimizer="sgd", momentum=0.9, nesterov=False, weight_decay=1e-4,
               schedule="clr", max_lr=3.0, min_lr=0.1, scale="mini", final_test_acc=acc, precision="fp32")
    row.update(kw)
    return row


def test_seed_sd_pools_every_group_of_seeds_at_a_scale():
    rows = [_row(0.30, 0), _row(0.35, 1),  # CLR: variance 12.5 pp^2, df 1
            _row(0.70, 0, schedule="multistep"), _row(0.71, 1, schedule="multistep"),
            _row(0.72, 2, schedule="multistep"),  # PC-LR: variance 1, df 2
            _row(0.30, 0, experiment="fig9a_batch"),  # the same configuration and seed again: a copy, not a seed
            _row(0.50, 0, batch_size=512),  # one seed only: no variance
            _row(0.99, 1, batch_size=512, status="unfinished"),  # never counted
            _row(0.10, 1, batch_size=512, job_type="range_test")]  # range tests are not seeds of a training run
    sd = seed_sd(pd.DataFrame(rows), "mini")
    assert (sd.scale, sd.groups, sd.df) == ("mini", 2, 3)
    assert sd.sd == pytest.approx(math.sqrt((12.5 + 2 * 1.0) / 3))
    assert seed_sd(pd.DataFrame([_row(0.3, 0), _row(0.4, 0, schedule="multistep")]), "mini") is None


def test_seed_groups_never_mix_protocols():
    legacy, caffe = _row(0.30, 0), _row(0.35, 1, bn_stats="caffe", bn_group=125, protocol_version=2)
    assert seed_sd(pd.DataFrame([legacy, caffe]), "mini") is None  # two protocols: two groups of one seed
    assert seed_sd(pd.DataFrame([legacy, _row(0.35, 1, precision="bf16")]), "mini") is None
    # explicit legacy keys are the same protocol as absent ones
    explicit = _row(0.35, 1, bn_stats="torch", bn_group=None, protocol_version=1, dropout_at="fc")
    assert seed_sd(pd.DataFrame([legacy, explicit]), "mini").groups == 1


def test_protocol_of_reads_legacy_runs_as_pytorch_batchnorm():
    legacy = protocol_of({"precision": "fp32"})
    assert legacy == Protocol("fp32", "torch", None, 1, "fc")
    assert legacy == protocol_of({"precision": "fp32", "bn_stats": None, "bn_group": float("nan")})
    assert legacy.text() == "fp32, BN torch over the whole batch, protocol v1"
    caffe = protocol_of({"precision": "bf16", "bn_stats": "caffe", "bn_group": 125.0, "protocol_version": 2})
    assert caffe != legacy and caffe.text() == "bf16, BN caffe over groups of 125, protocol v2"
    assert protocol_of({}).precision == "unknown"


def test_protocol_keys_bn_groups_by_the_per_replica_rule():
    def proto(batch, group):
        return protocol_of({"precision": "fp32", "bn_stats": "caffe", "bn_group": group, "protocol_version": 2,
                            "batch_size": batch})

    assert proto(1000, 125) == proto(256, 32.0) and proto(1000, 125).bn_replicas == 8
    assert proto(1000, 125).text() == "fp32, BN caffe over groups of batch/8, protocol v2"
    assert proto(250, 125) != proto(1000, 125)  # 2 replicas vs 8: computed differently
    assert proto(512, 100).bn_group == 100 and proto(512, 100).bn_replicas is None  # not the rule: set by hand
    assert proto(512, None).text() == "fp32, BN caffe over the whole batch, protocol v2"


# ------------------------------------------------------------------------------ convergence
def test_epochs_from_the_config():
    assert epochs(150, 256, "cifar10", 1.0) == pytest.approx(0.768)
    assert epochs(150, 256, "cifar10", 0.2) == pytest.approx(3.84)  # epochs of the subset, not of CIFAR-10
    assert epochs(10000, 1000, "cifar100", None) == pytest.approx(200.0)
    assert epochs(20, 32, "synthetic", 1.0) is None and epochs(None, 32, "cifar10", 1.0) is None


def test_an_underfit_reference_arm_is_not_testable_with_its_training_accuracy():
    why = regime_gap("CLR", [(0.7531, "last 5% of batches"), (0.7473, "last 5% of batches")])
    assert why == ("underfit (CLR training accuracy 75.02%, last 5% of batches, n=2; a converged run reaches 97%)")
    assert regime_gap("CLR", [(0.99, "full pass"), (0.96, "full pass")]) is None  # the arm's mean: 97.5%
    assert regime_gap("CLR", [(0.97, "full pass")]) is None  # the threshold itself converged
    assert "96.99%, full pass;" in regime_gap("CLR", [(0.9699, "full pass")])
    assert regime_gap("CLR", [(0.99, "full pass"), (None, None)]) is None  # the runs that measured it
    assert regime_gap("CLR", [(None, None)]) is None  # nothing measured: no evidence of underfitting
    assert regime_gap("CLR", []) is None  # no finished run: "not run yet" or a diverged side is for the caller


# ------------------------------------------------------------------------------ range tests
def test_high_share_counts_the_unbroken_high_stretch_down_from_the_largest_lr():
    lrs = np.linspace(0.0, 3.0, 16)  # LR 0, 0.2, ..., 3; 16 evaluations: the verdict judges raw points
    rising = 0.10 + 0.03 * np.arange(16)  # peak 0.55 at LR 3; >= 0.8 x 0.55 = 0.44 from the 13th point (LR 2.4)
    assert high_share(lrs, rising, 0.2) == (pytest.approx(0.6 / 3), pytest.approx(2.4))
    assert high_share(lrs, rising, 0.5) == (pytest.approx(1.8 / 3), pytest.approx(1.2))  # 0.275: from LR 1.2
    flat = np.full(16, 0.5)
    flat[-1] = 0.55
    assert high_share(lrs, flat, 0.2) == (pytest.approx(1.0), 0.0)
    dip = flat.copy()
    dip[12] = 0.1  # one low evaluation at LR 2.4 breaks the stretch: high from LR 2.6 only
    assert high_share(lrs, dip, 0.2) == (pytest.approx(0.4 / 3), pytest.approx(2.6))
    low_end = flat.copy()
    low_end[-1] = 0.1
    low_end[-2] = 0.9  # the last evaluation itself below 0.8 x peak: nothing counts
    assert high_share(lrs, low_end, 0.2) == (0.0, 3.0)
    with pytest.raises(ValueError, match="empty"):
        high_share([], [], 0.2)


def test_a_range_test_still_rising_is_inconclusive_unless_high_over_the_stated_share():
    assert HIGH_SHARE == pytest.approx(1 / 3)
    assert range_run("stays_high", 1.2, 3.0) == ("high", "stays_high")  # peak before the end: stays high
    outcome, text = range_run("stays_high", 3.0, 3.0, share=0.2, from_lr=2.4)
    assert outcome == "rising" and "still rising" in text and "20% of the tested LR range (< 33%)" in text
    outcome, text = range_run("stays_high", 3.0, 3.0, share=0.64, from_lr=1.19)
    assert outcome == "high" and "from LR 1.19 on: 64%" in text and "counts as staying high" in text
    assert range_run("stays_high", 3.0, 3.0)[0] == "rising"  # curve not read: no exception granted
    assert range_run("collapses", 0.5, 3.0)[0] == "low" and range_run("diverged", 0.5, 3.0)[0] == "low"
    assert range_run("never_learns", 0.5, 3.0)[0] == "none"


def test_range_case_needs_two_judged_runs():
    high, low, rising = ("high", "stays_high"), ("low", "collapses"), ("rising", "still rising")
    assert range_case([high, high])[0] == REPRODUCED
    assert range_case([low, low])[0] == NOT_REPRODUCED
    assert range_case([high])[0] == INDICATIVE and range_case([high, rising])[0] == INDICATIVE
    assert range_case([high, low])[0] == PARTLY
    assert range_case([rising, rising])[0] == STILL_RISING
    assert range_case([("none", "never_learns")])[0] == INCONCLUSIVE
    assert range_case([])[0] == NOT_RUN


def test_combine_prefers_evidence_then_says_what_the_parts_say():
    assert combine([REPRODUCED, NOT_RUN, INDICATIVE]) == REPRODUCED
    assert combine([REPRODUCED, NOT_REPRODUCED]) == PARTLY
    assert combine([NOT_TESTABLE, INDICATIVE, NOT_RUN]) == INDICATIVE
    assert combine([NOT_TESTABLE, NOT_RUN]) == NOT_TESTABLE
    assert combine([STILL_RISING, NOT_RUN]) == STILL_RISING
    assert combine([NOT_RUN]) == NOT_RUN and combine([]) == NOT_RUN
