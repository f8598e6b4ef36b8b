"""The reproduction report: verdict logic on constructed summaries, the author column read from a log the
test writes, byte-identical rewrites, and the committed fixture results. The rules themselves, on bare numbers,
are in test_judging.py; here they are checked through the claims, the run selection and the rendered text."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from paper_figures import registry
from paper_figures.caffe_log import read_reference_dir
from paper_figures.load import SUMMARY_COLUMNS, load_runs, load_summaries
from paper_figures.claims import CLAIMS, KINDS
from paper_figures.judging import VERDICTS
from paper_figures.report import build_report, render_report
from paper_figures.verdicts import judge, judge_all

FIXTURES = Path(__file__).parent / "fixtures" / "results"
BY_ID = {c.id: c for c in CLAIMS}
JUDGED = ("reproduced", "partly", "not reproduced")


def run(experiment="fig1a", acc=None, status="completed", **factors) -> dict:
    """One summaries row (the columns load_summaries gives), paper-like defaults."""
    row = {c: None for c in SUMMARY_COLUMNS}
    row.update(experiment=experiment, run=f"r{len(factors)}-{acc}-{status}", status=status, job_type="train",
               seed=0, depth=56, variant="paper", dropout=0.0, dataset="cifar10", fraction=1.0, augment="paper",
               batch_size=1000, iterations=10000, optimizer="sgd", momentum=0.9, nesterov=False,
               weight_decay=1e-4, schedule="clr", max_lr=3.0, min_lr=0.1, scale="paper", final_test_acc=acc,
               best_test_acc=acc, device="cuda: NVIDIA H200", precision="fp32")
    row.update(factors)
    return row


def frame(*rows: dict) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    df = pd.DataFrame(list(rows))
    for i, name in enumerate(df["run"]):
        df.loc[i, "run"] = f"{i:03d}-{name}"
    df["final_test_acc"] = pd.to_numeric(df["final_test_acc"]).astype("float64")
    return df


def fig1a(clr, pc, **extra) -> pd.DataFrame:
    rows = [run(acc=a, schedule="clr", seed=i) for i, a in enumerate(clr)]
    rows += [run(acc=a, schedule="multistep", max_lr=0.35, seed=i) for i, a in enumerate(pc)]
    return frame(*rows, *extra.get("more", []))


# ------------------------------------------------------------------------------ claims
def test_claims_are_well_formed():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    known = registry.known_experiments() | {e for s in registry.SWEEPS for e in s.experiments}
    for c in CLAIMS:
        assert c.kind in KINDS and c.text and c.paper
        assert set(c.experiments) <= known, c.id  # the experiment names the figures use
        if c.kind in ("better", "not_better"):
            assert c.a is not None and c.b is not None
    assert BY_ID["fig5a_lr_estimate"].kind == "qualitative" and BY_ID["fig5a_lr_estimate"].metric == "lr_estimate"
    assert judge(BY_ID["fig5a_lr_estimate"], fig1a([0.9], [0.9])).label == "not run yet"


# ------------------------------------------------------------------------------ "A beats B"
def test_clear_win_is_reproduced():
    v = judge(BY_ID["fig1a_clr_vs_pclr"], fig1a([0.920, 0.925, 0.930], [0.900, 0.905, 0.910]))
    assert v.label == "reproduced"
    assert "+2.00 pp" in v.detail and "pooled sd 0.50 pp" in v.detail and "n = 3 vs 3" in v.detail


def test_within_noise_is_partly():
    # +1.00 pp against a pooled sd of 1.41 pp
    v = judge(BY_ID["fig1a_clr_vs_pclr"], fig1a([0.91, 0.93], [0.90, 0.92]))
    assert v.label == "partly" and "within the noise" in v.detail


def test_single_runs_are_indicative():
    claim = BY_ID["fig1a_clr_vs_pclr"]
    for clr, pc in (([0.920], [0.910]), ([0.912], [0.910]), ([0.920, 0.921], [0.910]), ([0.85], [0.90, 0.91])):
        v = judge(claim, fig1a(clr, pc))
        assert v.label == "indicative (n=1)" and "a verdict needs >= 2 per side" in v.detail, (clr, pc)
    # the direction stays in the detail; without any group of seeds there is no noise to compare with
    v = judge(claim, fig1a([0.920], [0.910]))
    assert "+1.00 pp" in v.detail and "no seed sd measurable" in v.detail
    assert "0.50 pp" not in v.detail  # no fixed floor any more


def test_opposite_sign_is_not_reproduced():
    v = judge(BY_ID["fig1a_clr_vs_pclr"], fig1a([0.85, 0.86], [0.90, 0.91]))
    assert v.label == "not reproduced" and "beyond the noise" in v.detail
    v = judge(BY_ID["fig1a_clr_vs_pclr"], fig1a([0.90, 0.91], [0.90, 0.91]))
    assert v.label == "not reproduced" and "no difference" in v.detail


def test_missing_group_is_not_run_yet():
    claim = BY_ID["fig1a_clr_vs_pclr"]
    assert judge(claim, fig1a([0.92], [])).label == "not run yet"
    assert judge(claim, fig1a([], [])).label == "not run yet"
    assert judge(claim, pd.DataFrame(columns=SUMMARY_COLUMNS)).label == "not run yet"
    other = frame(run(experiment="fig7b_cifar100", acc=0.6), run(experiment="fig7b_cifar100", acc=0.5,
                                                                   schedule="multistep"))
    assert judge(claim, other).label == "not run yet"  # another experiment's runs do not count


def test_unfinished_and_diverged_runs_are_not_accuracies():
    claim = BY_ID["fig1a_clr_vs_pclr"]
    unfinished = run(acc=0.99, status="unfinished", schedule="multistep")
    diverged = run(acc=0.10, status="diverged", schedule="multistep")
    # an unfinished run never counts, not even to make a group exist
    assert judge(claim, fig1a([0.92], [], more=[unfinished])).label == "not run yet"
    # the unfinished 0.99 does not enter PC-LR's mean, and the diverged 0.10 does not either; the diverged run
    # is PC-LR's second result (n = 2 per side)
    v = judge(claim, fig1a([0.92, 0.921], [0.90], more=[unfinished, diverged]))
    assert v.label == "reproduced" and "+2.05 pp" in v.detail and "1 PC-LR run(s) diverged" in v.detail
    # every baseline run diverged: the favoured side wins by default; every CLR run diverged: it loses
    assert judge(claim, fig1a([0.92, 0.93], [], more=[diverged, diverged])).label == "reproduced"
    assert judge(claim, fig1a([0.92, 0.93], [], more=[diverged])).label == "indicative (n=1)"
    clr_div = run(acc=None, status="diverged", schedule="clr")
    assert judge(claim, fig1a([], [0.90, 0.91], more=[clr_div, clr_div])).label == "not reproduced"
    # a diverged run on the favoured side caps the verdict at partly
    v = judge(claim, fig1a([0.95, 0.951], [0.90, 0.901], more=[clr_div]))
    assert v.label == "partly" and "caps" in v.detail
    assert judge(claim, frame(clr_div, run(status="diverged", schedule="multistep"))).label == "inconclusive"


def test_sub_cases_combine():
    claim = BY_ID["table1_fraction"]

    def runs(fraction, clr, pc):  # two seeds each, 0.2 pp apart
        return [run("fig6a_fraction", a + 0.002 * s, schedule=sched, fraction=fraction, seed=s)
                for sched, a in (("clr", clr), ("multistep", pc)) for s in (0, 1)]

    v = judge(claim, frame(*runs(0.8, 0.91, 0.89), *runs(0.2, 0.80, 0.71)))
    assert v.label == "reproduced" and "2 of 4 sub-cases judged" in v.detail
    assert dict((c[0], c[1]) for c in v.cases)["fraction 0.6"] == "not run yet"
    v = judge(claim, frame(*runs(0.8, 0.91, 0.89), *runs(0.2, 0.70, 0.71)))
    assert v.label == "partly"
    assert "reproduced: fraction 0.8" in v.detail and "not reproduced: fraction 0.2" in v.detail
    assert judge(claim, frame(*runs(0.4, 0.70, 0.80))).label == "not reproduced"
    assert judge(claim, pd.DataFrame(columns=SUMMARY_COLUMNS)).label == "not run yet"


def seeds(*rows: dict) -> list[dict]:
    """Each row as two seeds, the second 0.1 pp higher (a seed sd of 0.07 pp)."""
    return [dict(r, seed=s, final_test_acc=r["final_test_acc"] + 0.001 * s) for r in rows for s in (0, 1)]


def test_a_batch_sweep_under_the_per_replica_rule_is_one_setting(tmp_path):
    """model.bn_group follows the batch (batch / train.replicas): groups of 16/32/64 at batch 128/256/512 are one
    protocol, so the sweep is judged as one setting; a group set by hand (not dividing the batch) stays apart."""
    batch = BY_ID["fig9a_batch"]
    caffe = dict(bn_stats="caffe", protocol_version=2, scale="mini")
    rows = seeds(*(run("fig9a_batch", acc, batch_size=b, bn_group=b // 8, **caffe)
                   for acc, b in ((0.52, 128), (0.71, 256), (0.75, 512))))
    v = judge(batch, frame(*rows))
    assert not v.scales and v.label == "reproduced" and "largest batch - smallest batch = +23.00 pp" in v.detail
    text = render_report(frame(*rows), None, [], tmp_path, "make figures")
    assert "fewer than two values" not in text and "fp32, BN caffe over groups of batch/8, protocol v2" in text
    # batch 512 normalised over groups of 100 (by hand) computed differently: its own setting, never compared
    odd = [dict(r, bn_group=100) if r["batch_size"] == 512 else r for r in rows]
    per = dict(judge(batch, frame(*odd)).scales)
    assert list(per) == ["mini (fp32, BN caffe over groups of batch/8, protocol v2)",
                         "mini (fp32, BN caffe over groups of 100, protocol v2)"]
    rule = per["mini (fp32, BN caffe over groups of batch/8, protocol v2)"]
    assert rule.label == "reproduced" and "largest batch - smallest batch = +19.00 pp" in rule.detail  # 256 vs 128
    assert per["mini (fp32, BN caffe over groups of 100, protocol v2)"].label == "not run yet"


def test_sweep_extremes_and_bool_filters():
    batch = BY_ID["fig9a_batch"]
    rows = seeds(run("fig9a_batch", 0.921, batch_size=1000), run("fig9a_batch", 0.895, batch_size=256),
                 run("fig9a_batch", 0.917, batch_size=512))
    v = judge(batch, frame(*rows))
    assert v.label == "reproduced" and "largest batch - smallest batch = +2.60 pp" in v.detail
    assert judge(batch, frame(*rows[:2])).label == "not run yet"  # one batch size only: nothing to compare
    # the multistep runs of the sweep are not part of this CLR claim
    assert judge(batch, frame(*rows, run("fig9a_batch", 0.99, schedule="multistep", batch_size=128))).label \
        == "reproduced"
    nest = BY_ID["fig8_nesterov"]
    plain = seeds(run("fig8b_optimizers", 0.92, schedule="clr"), run("fig8b_optimizers", 0.90, schedule="multistep"))
    assert judge(nest, frame(*plain)).label == "not run yet"
    with_nesterov = [dict(r, nesterov=True) for r in plain]
    assert judge(nest, frame(*plain, *with_nesterov)).label == "reproduced"
    # AdaDelta/AdaGrad sub-cases only: the SGD and Adam runs of the same experiment are other claims
    adaptive = BY_ID["fig8_adaptive"]
    v = judge(adaptive, frame(*plain, *(dict(p, optimizer="adagrad") for p in plain)))
    assert v.label == "reproduced" and [c[0] for c in v.cases] == ["optimizer adadelta", "optimizer adagrad"]


def test_weight_decay_and_adam_rules():
    wd = BY_ID["fig10b_weight_decay"]
    ok = seeds(run("fig10b_weight_decay", 0.92, weight_decay=1e-4))
    div = run("fig10b_weight_decay", None, "diverged", weight_decay=1e-3)
    assert judge(wd, frame(*ok, div, div)).label == "reproduced"
    assert judge(wd, frame(*ok, *seeds(run("fig10b_weight_decay", 0.93, weight_decay=1e-3)))).label == "not reproduced"
    adam = BY_ID["fig8_adam"]
    a = seeds(run("fig8b_optimizers", 0.87, schedule="multistep", optimizer="adam"))
    # +0.05 pp against a pooled sd of 0.07 pp: no gain beyond the noise
    assert judge(adam, frame(*a, *seeds(run("fig8b_optimizers", 0.8705, optimizer="adam")))).label == "reproduced"
    assert judge(adam, frame(*a, *seeds(run("fig8b_optimizers", 0.91, optimizer="adam")))).label == "not reproduced"
    assert judge(adam, frame(*a)).label == "not run yet"


def test_range_claims_use_the_stored_verdict():
    claim = BY_ID["fig7a_cifar100_range"]

    def rt(label, status="completed", n=2, peak_lr=1.2, **extra):
        return frame(*(run("range_fig7a_cifar100", 0.4, status, job_type="range_test", seed=s,
                           **{"range_test/verdict/label": label, "range_test/verdict/peak_acc": 0.5,
                              "range_test/verdict/peak_lr": peak_lr, "range_test/verdict/max_lr_tested": 3.0},
                           **extra) for s in range(n)))

    assert judge(claim, rt("stays_high")).label == "reproduced"
    assert judge(claim, rt("collapses")).label == "not reproduced"
    assert judge(claim, rt("diverged", "diverged")).label == "not reproduced"
    assert judge(claim, rt("stays_high", n=1)).label == "indicative (n=1)"  # one range test is one curve
    assert judge(claim, rt("never_learns")).label == "inconclusive"
    assert judge(claim, rt("stays_high", "unfinished")).label == "not run yet"
    assert judge(claim, frame(run("range_fig7a_cifar100", 0.4))).label == "not run yet"  # no verdict column
    both = pd.concat([rt("stays_high", n=1), rt("collapses", n=1)], ignore_index=True)
    assert judge(claim, both).label == "partly"
    # peak at the last LR tested: still rising, unless the curve was high over the top third of the range
    v = judge(claim, rt("stays_high", peak_lr=3.0))
    assert v.label == "inconclusive: still rising" and "its curve was not read" in v.detail
    assert judge(claim, rt("stays_high", peak_lr=3.0, **{"curve/high_share": 0.2,
                                                          "curve/high_from_lr": 2.4})).label \
        == "inconclusive: still rising"
    assert judge(claim, rt("stays_high", peak_lr=3.0, **{"curve/high_share": 0.5,
                                                          "curve/high_from_lr": 1.5})).label == "reproduced"
    fig2b = BY_ID["fig2b_range_test"]
    v = judge(fig2b, rt("stays_high").assign(experiment="range_fig2b_5k"))
    assert v.label == "reproduced" and "1 of 3 sub-cases judged" in v.detail


def test_verdict_labels_are_known():
    df = fig1a([0.92, 0.93], [0.90, 0.91])
    for c in CLAIMS:
        assert judge(c, df).label in VERDICTS


# ------------------------------------------------------------------------------ the report file
CAFFE_LOG = """\
I0817 15:00:00.000000 17550 solver.cpp:48] Initializing solver from parameters:
base_lr: 0.1
max_lr: 3
lr_policy: "triangular"
I0817 21:50:00.000000 17550 solver.cpp:337] Iteration 9900, Testing net (#0)
I0817 21:50:00.000000 17550 solver.cpp:404]     Test net output #0: accuracy = 0.91
I0817 21:58:33.145417 17550 solver.cpp:337] Iteration 10000, Testing net (#0)
I0817 21:58:33.145417 17550 solver.cpp:404]     Test net output #0: accuracy = 0.92476
I0817 21:58:33.145417 17550 solver.cpp:404]     Test net output #1: loss = 0.306059 (* 1 = 0.306059 loss)
"""


def _row(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def test_author_column_is_read_from_the_log(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "clr3SS5kFig1a.log").write_text(CAFFE_LOG)
    reference = read_reference_dir(tmp_path / "logs")
    df = fig1a([0.92], [0.90])
    text = build_report(df, reference, [], tmp_path / "REPORT.md", "make figures")
    clr = _row(text, "| CLR | 92.4 |")
    assert "92.48 (clr3SS5kFig1a)" in clr  # 0.92476, from the log, as a percentage with 2 decimals
    assert "92.00% (n=1)" in clr and "paper; ResNet-56 paper, cifar10" in clr and "cuda: NVIDIA H200" in clr
    assert _row(text, "| PC-LR | 91.2 |").split(" | ")[2] == "-"  # lr35Fig1a is not in the folder
    none = render_report(df, None, [], tmp_path, "make figures")
    assert _row(none, "| CLR | 92.4 |").split(" | ")[2] == "-" and "No reference folder" in none


def test_report_is_deterministic_and_not_rewritten(tmp_path):
    out = tmp_path / "paper_figures" / "REPORT.md"
    figs = tmp_path / "paper_figures" / "figures"
    figs.mkdir(parents=True)
    for name in ("b_fig.png", "a_fig.png", "a_fig.pdf"):
        (figs / name).write_bytes(b"x")
    df = fig1a([0.92, 0.93], [0.90, 0.91])
    text = build_report(df, None, [figs / "b_fig.png", figs / "a_fig.pdf", figs / "a_fig.png"], out, "make figures")
    assert out.read_text(encoding="utf-8") == text
    assert "![a_fig](figures/a_fig.png)" in text and "![b_fig](figures/b_fig.png)" in text
    assert text.index("figures/a_fig.png") < text.index("figures/b_fig.png") and ".pdf" not in text
    old = 1_000_000_000
    os.utime(out, (old, old))
    before = out.read_bytes()
    again = build_report(df.iloc[::-1].reset_index(drop=True), None, [figs / "a_fig.png", figs / "b_fig.png"],
                         out, "make figures")
    assert again == text and out.read_bytes() == before and out.stat().st_mtime == old
    # a changed input rewrites it
    build_report(fig1a([0.92], [0.90]), None, [], out, "make figures")
    assert out.read_bytes() != before
    for word in ("make figures", "## Verdict rules", "pooled sd", "## Figures", "## Caveats", "JPEG"):
        assert word in text


def test_report_on_the_fixture_results(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summaries = load_summaries(FIXTURES)
    assert not summaries.empty
    summaries, judged = judge_all(summaries, load_runs(FIXTURES))
    verdicts = {c.id: v for c, v in judged}
    # two seeds per schedule, stored before the full training pass existed: their training accuracy is the
    # per-batch one of their last 5% of iterations, far from converged, so the 8x-budget claim is not testable;
    # the table1_maxlr sweep's reference arm has no finished run with a training accuracy and its diverged run
    # is a result
    v = verdicts["fig1a_clr_vs_pclr"]
    assert v.label == "not testable" and "underfit (CLR training accuracy" in v.detail
    assert "last 5% of batches, n=2" in v.detail
    assert verdicts["table1_maxlr"].label == "indicative (n=1)"
    for cid in ("fig6b_depth", "fig7b_cifar100", "fig8_nesterov", "fig9a_batch", "fig10a_momentum",
                "fig7a_cifar100_range", "table1_stepsize"):
        assert verdicts[cid].label == "not run yet", cid
    text = build_report(summaries, None, [], tmp_path / "REPORT.md", "make figures")
    clr = _row(text, "| CLR | 92.4 |")
    assert "(n=2)" in clr and "1 unfinished, not counted" in clr and "smoke" in clr
    assert _row(text, "| CLR | 68.6 |").split(" | ")[3] == "not run yet"
    # the diverged max-LR run is reported as a failure, not as an accuracy
    assert "no finished run, 1 diverged" in _row(text, "| max_lr 1e+30 |")


# ------------------------------------------------------------------------------ two scales
MINI = dict(scale="mini", depth=20, batch_size=128, device="cpu: AMD EPYC, 2 threads")


def two_scales(paper_clr, paper_pc, mini_clr, mini_pc) -> pd.DataFrame:
    """fig1a at paper scale (ResNet-56, 10k / 80k it) and at a smaller scale (ResNet-20, 2k / 16k it at batch 128:
    5.12 epochs of CLR, just enough for the 8x-budget claim to be testable)."""
    rows = [run(acc=a, schedule="clr", seed=i) for i, a in enumerate(paper_clr)]
    rows += [run(acc=a, schedule="multistep", max_lr=0.35, iterations=80000, seed=i) for i, a in enumerate(paper_pc)]
    rows += [run(acc=a, schedule="clr", seed=i, iterations=2000, **MINI) for i, a in enumerate(mini_clr)]
    rows += [run(acc=a, schedule="multistep", max_lr=0.35, seed=i, iterations=16000, **MINI)
             for i, a in enumerate(mini_pc)]
    return frame(*rows)


def test_each_scale_is_judged_alone():
    claim = BY_ID["fig1a_clr_vs_pclr"]
    # paper: CLR loses (-2 pp); mini: CLR wins (+5 pp). Pooled, CLR 61.55 vs PC-LR 60.05 would pass as a win.
    v = judge(claim, two_scales([0.88, 0.881], [0.90, 0.901], [0.35, 0.351], [0.30, 0.301]))
    per = dict(v.scales)
    assert list(per) == ["paper", "mini"] and v.cases == ()
    assert per["paper"].label == "not reproduced" and "-2.00 pp" in per["paper"].detail
    assert per["mini"].label == "reproduced" and "+5.00 pp" in per["mini"].detail
    assert "n = 2 vs 2" in per["mini"].detail and "+1.50 pp" not in v.detail  # no pooled difference anywhere
    # each scale's noise is its own seed sd: mini's 0.07 pp, not a mix with paper's
    assert "mini seed sd 0.07 pp" in per["mini"].detail and "paper seed sd" not in per["mini"].detail
    assert v.label == "partly" and v.label in VERDICTS  # the sum-up: the scales disagree
    # the brief's case: one paper-scale CLR run, two mini seeds of each schedule
    v = judge(claim, two_scales([0.8824], [], [0.33, 0.35], [0.30, 0.31]))
    per = dict(v.scales)
    assert per["paper"].label == "not run yet" and "no finished run of PC-LR" in per["paper"].detail
    assert per["mini"].label == "reproduced" and "n = 2 vs 2" in per["mini"].detail
    assert "+3.50 pp" in per["mini"].detail  # (34.0 - 30.5), not the pooled (52.08 - 30.5)
    assert v.label == "reproduced" and "paper: not run yet" in v.detail and "mini: reproduced" in v.detail
    # per scale, the verdict is the one its runs alone give
    alone = judge(claim, two_scales([], [], [0.33, 0.35], [0.30, 0.31]))
    assert alone.scales == () and (alone.label, alone.detail) == (per["mini"].label, per["mini"].detail)


def test_sweep_extremes_are_taken_within_a_scale():
    batch = BY_ID["fig9a_batch"]
    # paper: 1000 beats 256; mini: 512 loses to 128. Across scales the largest (1000) vs smallest (128)
    # would mix a paper run with a mini one.
    df = frame(*seeds(run("fig9a_batch", 0.92, batch_size=1000), run("fig9a_batch", 0.89, batch_size=256),
                      run("fig9a_batch", 0.30, **{**MINI, "batch_size": 512}), run("fig9a_batch", 0.35, **MINI)))
    per = dict(judge(batch, df).scales)
    assert per["paper"].label == "reproduced" and "+3.00 pp" in per["paper"].detail
    assert per["mini"].label == "not reproduced" and "-5.00 pp" in per["mini"].detail


def test_report_shows_one_table_and_verdict_per_scale(tmp_path):
    df = two_scales([0.8824], [], [0.33, 0.35], [0.30, 0.31])
    df = pd.concat([df, frame(run("fig7b_cifar100", 0.40, **MINI))], ignore_index=True)
    text = render_report(df, None, [], tmp_path, "make figures")
    assert _row(text, "| [fig1a_clr_vs_pclr]") == \
        "| [fig1a_clr_vs_pclr](#fig1a_clr_vs_pclr) | Fig 1a | paper: not run yet; mini: reproduced |"
    assert _row(text, "| [fig1a_curve]").endswith("| paper: not judged automatically; mini: not judged automatically |")
    assert _row(text, "| [fig7b_cifar100]").endswith("| mini: not run yet |")  # one scale, named: the store has two
    assert _row(text, "| [fig6b_depth]").endswith("| not run yet |")  # no runs at all
    assert "Scales: paper 1, mini 5, judged separately." in text and "**Scales and protocols are judged" in text
    section = text[text.index("### fig1a_clr_vs_pclr"):text.index("### fig1a_curve")]
    paper = section[section.index("#### fig1a_clr_vs_pclr at paper scale"):section.index("at mini scale")]
    mini = section[section.index("#### fig1a_clr_vs_pclr at mini scale"):]
    assert "88.24% (n=1); paper; ResNet-56" in _row(paper, "| CLR |") and "| not run yet |" in _row(paper, "| PC-LR |")
    assert "**not run yet**: no finished run of PC-LR" in paper
    assert "34.00 ± 1.41% (n=2); mini; ResNet-20" in _row(mini, "| CLR |")
    assert "30.50 ± 0.71% (n=2); mini" in _row(mini, "| PC-LR |") and "**reproduced**: CLR - PC-LR = +3.50 pp" in mini
    assert "(n=3)" not in text and "paper/mini" not in text and "mini/paper" not in text  # nothing pooled
    # deterministic: the same text from shuffled rows
    assert render_report(df.iloc[::-1].reset_index(drop=True), None, [], tmp_path, "make figures") == text


def test_one_scale_report_has_no_scale_sections(tmp_path):
    text = render_report(fig1a([0.92, 0.93], [0.90, 0.91]), None, [], tmp_path, "make figures")
    assert "#### " not in text and "Scales:" not in text and "Scales are judged separately" not in text
    assert _row(text, "| [fig1a_clr_vs_pclr]").endswith("| Fig 1a | reproduced |")


def test_report_on_a_two_scale_fixture(tmp_path):
    """The committed smoke runs of fig1a plus copies relabelled mini (config scale_name): two verdicts."""
    import json
    import shutil

    store = tmp_path / "results"
    shutil.copytree(FIXTURES / "fig1a", store / "fig1a")
    for i, src in enumerate(sorted(p for p in (FIXTURES / "fig1a").iterdir() if (p / "DONE").exists())):
        dst = store / "fig1a" / src.name.replace("scale=smoke", "scale=mini")
        shutil.copytree(src, dst)
        # mini, and on CIFAR-10 for 20k iterations: epochs the 8x-budget claim can be tested at
        (dst / "config.yaml").write_text((dst / "config.yaml").read_text()
                                         .replace("scale_name: smoke", "scale_name: mini")
                                         .replace("name: synthetic", "name: cifar10")
                                         .replace("  iterations: 20\n", "  iterations: 20000\n"))
        summary = json.loads((dst / "summary.json").read_text())
        summary["final_test_acc"] = 0.5 if "schedule=clr" in src.name else 0.1 + 0.01 * i
        (dst / "summary.json").write_text(json.dumps(summary))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summaries = load_summaries(store)
    assert set(summaries["scale"]) == {"smoke", "mini"}
    per = dict(judge(BY_ID["fig1a_clr_vs_pclr"], summaries).scales)
    assert list(per) == ["mini", "smoke"]
    assert per["mini"].label == "reproduced" and "n = 2 vs 2" in per["mini"].detail
    smoke_alone = judge(BY_ID["fig1a_clr_vs_pclr"], load_summaries(FIXTURES))
    assert (per["smoke"].label, per["smoke"].detail) == (smoke_alone.label, smoke_alone.detail)
    text = build_report(summaries, None, [], tmp_path / "REPORT.md", "make figures")
    assert f"| mini: reproduced; smoke: {smoke_alone.label} |" in _row(text, "| [fig1a_clr_vs_pclr]")
    assert "#### fig1a_clr_vs_pclr at mini scale" in text and "#### fig1a_clr_vs_pclr at smoke scale" in text
    assert "(n=4)" not in text


# ------------------------------------------------------------------------------ verdicts that need evidence
def test_underfit_clr_runs_make_the_budget_claims_not_testable():
    claim = BY_ID["fig1a_clr_vs_pclr"]
    underfit = [dict(r, final_train_acc=0.75 if r["schedule"] == "clr" else 0.999)
                for r in fig1a([0.33, 0.35], [0.74, 0.75]).to_dict("records")]
    v = judge(claim, frame(*underfit))
    assert v.label == "not testable"
    assert v.detail == "underfit (CLR training accuracy 75.00%, full pass, n=2; a converged run reaches 97%)"
    # the same accuracies from converged CLR runs are a verdict: convergence, not the numbers, made it untestable
    converged = [dict(r, final_train_acc=0.99) for r in underfit]
    assert judge(claim, frame(*converged)).label == "not reproduced"
    # only the reference arm gates: an underfit PC-LR (or a collapsed sweep arm) is data
    assert judge(claim, frame(*[dict(r, final_train_acc=0.99 if r["schedule"] == "clr" else 0.5)
                                for r in underfit])).label == "not reproduced"
    # per sub-case: the 10k-image row is gated by its own CLR runs
    fraction = BY_ID["table1_fraction"]
    rows = [run("fig6a_fraction", a, schedule=sch, fraction=0.2, seed=s, batch_size=256, iterations=it,
                final_train_acc=fit)
            for sch, a, it, fit in (("clr", 0.34, 150, 0.74), ("multistep", 0.71, 1200, 0.999))
            for s, a in ((0, a), (1, a + 0.01))]
    v = judge(fraction, frame(*rows))
    assert v.label == "not testable" and "CLR training accuracy 74.00%" in dict((c[0], c[2]) for c in v.cases)[
        "fraction 0.2"]
    assert judge(fraction, frame(*[dict(r, final_train_acc=0.98) for r in rows])).label == "not reproduced"
    # the sweeps on the CLR run are gated by their reference arm: dropout's is side B (no dropout)
    assert BY_ID["fig9a_batch"].regime.side == "a" and BY_ID["fig9b_dropout"].regime.side == "b"
    assert BY_ID["fig10b_weight_decay"].regime.side == "a"
    wd = BY_ID["fig10b_weight_decay"]
    sweep = [run("fig10b_weight_decay", a, weight_decay=w, seed=s, final_train_acc=fit)
             for w, a, fit in ((1e-4, 0.90, 0.99), (1e-3, 0.10, 0.10)) for s, a in ((0, a), (1, a + 0.01))]
    assert judge(wd, frame(*sweep)).label == "reproduced"  # the collapsed 1e-3 arm is the claim's point


def test_runs_of_different_protocols_are_never_pooled(tmp_path):
    claim = BY_ID["fig1a_clr_vs_pclr"]
    caffe = dict(bn_stats="caffe", bn_group=125, protocol_version=2)
    df = frame(run(acc=0.92, schedule="clr", seed=0), run(acc=0.93, schedule="clr", seed=1),
               run(acc=0.90, schedule="multistep", seed=0, **caffe),
               run(acc=0.91, schedule="multistep", seed=1, **caffe))
    v = judge(claim, df)
    per = dict(v.scales)
    assert list(per) == ["paper (fp32, BN torch over the whole batch, protocol v1)",
                         "paper (fp32, BN caffe over groups of batch/8, protocol v2)"]
    assert all(sv.label == "not run yet" for sv in per.values())  # CLR (v1) is never compared with PC-LR (v2)
    # precision alone separates too: a bf16 CLR seed does not join the fp32 ones
    mixed = frame(run(acc=0.92, schedule="clr", seed=0), run(acc=0.80, schedule="clr", seed=1, precision="bf16"),
                  run(acc=0.90, schedule="multistep", seed=0), run(acc=0.91, schedule="multistep", seed=1))
    per = dict(judge(claim, mixed.assign(precision=mixed["precision"].fillna("fp32"))).scales)
    fp32 = per["paper (fp32, BN torch over the whole batch, protocol v1)"]
    assert fp32.label == "indicative (n=1)" and "n = 1 vs 2" in fp32.detail and "92.00" not in fp32.detail
    assert per["paper (bf16, BN torch over the whole batch, protocol v1)"].label == "not run yet"
    # the report names the protocol of every group and gives each setting its own table
    text = render_report(df, None, [], tmp_path, "make figures")
    assert "#### fig1a_clr_vs_pclr at paper scale (fp32, BN caffe over groups of batch/8, protocol v2)" in text
    assert "fp32, BN caffe over groups of batch/8, protocol v2; cuda: NVIDIA H200" in text
    assert "(n=4)" not in text


def test_the_scale_seed_sd_sets_the_noise():
    claim = BY_ID["fig1a_clr_vs_pclr"]
    base = fig1a([0.920, 0.921], [0.910, 0.911])  # +1.00 pp against a pooled sd of 0.07 pp
    v = judge(claim, base)
    assert v.label == "reproduced" and "paper seed sd 0.07 pp (2 groups)" in v.detail
    # another experiment at the same scale whose seeds differ by 4 pp: the scale's seed sd is the noise,
    # sqrt((0.005 + 0.005 + 8) / 3) = 1.63 pp
    noisy = frame(*base.to_dict("records"), run("fig9a_batch", 0.80, seed=0, batch_size=512),
                  run("fig9a_batch", 0.84, seed=1, batch_size=512))
    v = judge(claim, noisy)
    assert v.label == "partly" and "noise 1.63 pp" in v.detail and "paper seed sd 1.63 pp (3 groups)" in v.detail
    # the same noisy pair at another scale changes nothing here
    other = frame(*base.to_dict("records"), run("fig9a_batch", 0.80, seed=0, **MINI),
                  run("fig9a_batch", 0.84, seed=1, **MINI))
    assert dict(judge(claim, other).scales or [("paper", judge(claim, other))])["paper"].label == "reproduced"
    # ... and so does a check outside the study (an experiment no claim judges) at the same scale
    check = frame(*base.to_dict("records"), run("precision_check", 0.80, seed=0, batch_size=250),
                  run("precision_check", 0.84, seed=1, batch_size=250))
    v = judge(claim, check)
    assert v.label == "reproduced" and "paper seed sd 0.07 pp (2 groups)" in v.detail


def test_scale_descriptions_are_read_from_the_runs(tmp_path):
    rows = [{**r, **MINI, "batch_size": 256, "iterations": it, "images_seen": 256 * it, "wall_s": 600.0 + it}
            for r in fig1a([0.33, 0.35], [0.74, 0.75]).to_dict("records")
            for it in [150 if r["schedule"] == "clr" else 1200]]
    text = render_report(frame(*rows), None, [], tmp_path, "make figures")
    scales = text[text.index("## Scales"):text.index("## Verdict rules")]
    # cost: 256 x (150 + 150 + 1200 + 1200) = 691,200 images; (750 + 750 + 1800 + 1800) s = 1.4 h
    assert ("- **mini**: 4 runs on cpu: AMD EPYC, 2 threads; 691,200 training images in 1.4 h of run time (the runs' "
            "wall times summed); ResNet-20 paper;") in scales
    assert "clr: batch 256, 150 it = 0.768 epochs; multistep: batch 256, 1.2k it = 6.14 epochs" in scales
    from paper_figures.report import _cost_text
    assert _cost_text(pd.DataFrame({"images_seen": [2.5e6, 1e6], "wall_s": [3600.0, None]})) == \
        "; 3.50M training images in 1.0 h of run time (the runs' wall times summed)"
    assert _cost_text(pd.DataFrame({"seed": [0]})) == ""  # summaries without either: nothing claimed
    assert "Protocols: fp32, BN torch over the whole batch, protocol v1 (4 runs)" in scales
    assert "Seed sd: 1.12 pp, from 2 configurations" in scales  # (33, 35) and (74, 75): sqrt((2 + 0.5) / 2)
    assert "batch 128" not in text and "~1k" not in text and "noise 0.50 pp" not in text


def _range_run(root: Path, name: str, lrs, accs, *, peak_lr: float, bn_stats: str | None = None) -> None:
    """A finished accuracy-mode range test on disk: config, metrics (LR and test accuracy), summary, DONE."""
    from superconv.results import MetricsWriter, RunDir

    rd = RunDir(root / "range_fig7a_cifar100" / name)
    rd.path.mkdir(parents=True)
    model = {"depth": 20, "variant": "paper", "dropout": 0.0} | ({"bn_stats": bn_stats} if bn_stats else {})
    rd.write_config({"seed": int(name[-1]), "experiment_name": "range_fig7a_cifar100", "scale_name": "mini",
                     "model": model, "data": {"name": "cifar100", "fraction": 1.0, "augment": "paper"},
                     "optim": {"name": "sgd", "momentum": 0.9, "weight_decay": 1e-4, "nesterov": False},
                     "schedule": {"name": "range_test", "max_lr": 3.0, "min_lr": 0.0},
                     "train": {"batch_size": 256, "iterations": 20 * len(lrs)}})
    w = MetricsWriter(rd.metrics)
    w.write([{"iteration": 20 * (i + 1), "epoch": 0.1 * (i + 1), "lr": lr, "momentum": 0.9, "train/loss": 2.0,
              "train/acc": 0.3, "test/loss": 2.0, "test/acc": acc} for i, (lr, acc) in enumerate(zip(lrs, accs))])
    w.close()
    rd.write_summary({"status": "completed", "job_type": "range_test", "final_test_acc": accs[-1],
                      "best_test_acc": max(accs), "iterations": 20 * len(lrs), "precision": "fp32", "device": "cpu",
                      "range_test": {"mode": "accuracy", "verdict": {
                          "label": "stays_high", "peak_acc": max(accs), "peak_lr": peak_lr,
                          "max_lr_tested": lrs[-1], "tolerance": 0.2}}})
    rd.mark_done()


def test_still_rising_range_tests_end_to_end(tmp_path):
    """Range tests written to a results folder, read back with their curves: the verdict depends on the curve."""
    from paper_figures.load import load_runs

    lrs = [0.2 * (i + 1) for i in range(15)]  # LR 0.2 .. 3
    high_late = [0.10 + 0.03 * i for i in range(15)]  # still rising; >= 0.8 x 0.52 only from LR 2.4: 21% of it
    high_long = [0.30 + 0.01 * i for i in range(15)]  # still rising, but >= 0.8 x 0.44 from LR 1.4: 57%
    claim = BY_ID["fig7a_cifar100_range"]
    for name, accs, want in (("late", high_late, "inconclusive: still rising"), ("long", high_long, "reproduced")):
        root = tmp_path / name
        for seed in (0, 1):
            _range_run(root, f"seed={seed}", lrs, accs, peak_lr=3.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summaries, runs = load_summaries(root), load_runs(root)
        text = build_report(summaries, None, [], root / "REPORT.md", "make figures", runs=runs)
        assert f"| [fig7a_cifar100_range](#fig7a_cifar100_range) | Fig 7a | {want} |" in text, name
        assert judge(claim, summaries).label == "inconclusive: still rising"  # without the curves: no exception
    assert "from LR 1.4 on: 57% of the tested LR range (>= 33%), so it counts as staying high" in text
    late = render_report(load_summaries(tmp_path / "late"), None, [], tmp_path, "x", runs=load_runs(tmp_path / "late"))
    assert "from LR 2.4 on: 21% of the tested LR range (< 33%)" in late


def test_protocol_keys_are_read_from_the_config(tmp_path):
    """bn_stats in config.yaml reaches the report: a caffe-BN run and a legacy one are two settings."""
    lrs = [0.2 * (i + 1) for i in range(15)]
    accs = [0.30 + 0.01 * i for i in range(15)]
    _range_run(tmp_path, "seed=0", lrs, accs, peak_lr=1.2)
    _range_run(tmp_path, "seed=1", lrs, accs, peak_lr=1.2, bn_stats="caffe")
    summaries = load_summaries(tmp_path)
    assert pd.isna(summaries["bn_stats"][0]) and summaries["bn_stats"][1] == "caffe"  # absent: legacy
    per = dict(judge(BY_ID["fig7a_cifar100_range"], summaries).scales)
    assert [v.label for v in per.values()] == ["indicative (n=1)", "indicative (n=1)"]  # not one group of two
