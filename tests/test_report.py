"""The reproduction report: verdict logic on constructed summaries, the author column read from a log the
test writes, byte-identical rewrites, and the committed fixture results."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from paper_figures import registry
from paper_figures.caffe_log import read_reference_dir
from paper_figures.load import SUMMARY_COLUMNS, load_summaries
from paper_figures.report import (CLAIMS, KINDS, NOISE_PP, VERDICTS, build_report, judge, main,
                                  render_report)

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
               best_test_acc=acc, device="cuda: NVIDIA H200")
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
    assert BY_ID["fig5_hessian_free"].kind == "out_of_scope"
    assert judge(BY_ID["fig5_hessian_free"], fig1a([0.9], [0.9])).label == "not run yet"


# ------------------------------------------------------------------------------ "A beats B"
def test_clear_win_is_reproduced():
    v = judge(BY_ID["fig1a_clr_vs_pclr"], fig1a([0.920, 0.925, 0.930], [0.900, 0.905, 0.910]))
    assert v.label == "reproduced"
    assert "+2.00 pp" in v.detail and "pooled sd 0.50 pp" in v.detail and "n = 3 vs 3" in v.detail


def test_within_noise_is_partly():
    # +1.00 pp against a pooled sd of 1.41 pp
    v = judge(BY_ID["fig1a_clr_vs_pclr"], fig1a([0.91, 0.93], [0.90, 0.92]))
    assert v.label == "partly" and "within the noise" in v.detail


def test_single_runs_use_the_noise_floor():
    assert NOISE_PP == 0.5
    assert judge(BY_ID["fig1a_clr_vs_pclr"], fig1a([0.912], [0.910])).label == "partly"  # +0.2 pp
    assert judge(BY_ID["fig1a_clr_vs_pclr"], fig1a([0.920], [0.910])).label == "reproduced"  # +1.0 pp
    assert judge(BY_ID["fig1a_clr_vs_pclr"], fig1a([0.920, 0.921], [0.910])).label == "reproduced"


def test_opposite_sign_is_not_reproduced():
    v = judge(BY_ID["fig1a_clr_vs_pclr"], fig1a([0.85, 0.86], [0.90, 0.91]))
    assert v.label == "not reproduced" and "beyond the noise" in v.detail
    assert judge(BY_ID["fig1a_clr_vs_pclr"], fig1a([0.90], [0.90])).label == "not reproduced"  # no difference


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
    # the unfinished 0.99 does not enter PC-LR's mean, and the diverged 0.10 does not either
    v = judge(claim, fig1a([0.92], [0.90], more=[unfinished, diverged]))
    assert v.label == "reproduced" and "+2.00 pp" in v.detail and "1 PC-LR run(s) diverged" in v.detail
    # every baseline run diverged: the favoured side wins by default; every CLR run diverged: it loses
    assert judge(claim, fig1a([0.92], [], more=[diverged])).label == "reproduced"
    clr_div = run(acc=None, status="diverged", schedule="clr")
    assert judge(claim, fig1a([], [0.90], more=[clr_div])).label == "not reproduced"
    # a diverged run on the favoured side caps the verdict at partly
    v = judge(claim, fig1a([0.95], [0.90], more=[clr_div]))
    assert v.label == "partly" and "caps" in v.detail
    assert judge(claim, frame(clr_div, run(status="diverged", schedule="multistep"))).label == "inconclusive"


def test_sub_cases_combine():
    claim = BY_ID["table1_fraction"]

    def runs(fraction, clr, pc):
        return [run("fig6a_fraction", clr, schedule="clr", fraction=fraction),
                run("fig6a_fraction", pc, schedule="multistep", fraction=fraction)]

    v = judge(claim, frame(*runs(0.8, 0.91, 0.89), *runs(0.2, 0.80, 0.71)))
    assert v.label == "reproduced" and "2 of 4 sub-cases judged" in v.detail
    assert dict((c[0], c[1]) for c in v.cases)["fraction 0.6"] == "not run yet"
    v = judge(claim, frame(*runs(0.8, 0.91, 0.89), *runs(0.2, 0.70, 0.71)))
    assert v.label == "partly"
    assert "reproduced: fraction 0.8" in v.detail and "not reproduced: fraction 0.2" in v.detail
    assert judge(claim, frame(*runs(0.4, 0.70, 0.80))).label == "not reproduced"
    assert judge(claim, pd.DataFrame(columns=SUMMARY_COLUMNS)).label == "not run yet"


def test_sweep_extremes_and_bool_filters():
    batch = BY_ID["fig9a_batch"]
    rows = [run("fig9a_batch", 0.921, batch_size=1000), run("fig9a_batch", 0.895, batch_size=256),
            run("fig9a_batch", 0.917, batch_size=512)]
    v = judge(batch, frame(*rows))
    assert v.label == "reproduced" and "largest batch - smallest batch = +2.60 pp" in v.detail
    assert judge(batch, frame(rows[0])).label == "not run yet"  # one batch size only: nothing to compare
    # the multistep runs of the sweep are not part of this CLR claim
    assert judge(batch, frame(*rows, run("fig9a_batch", 0.99, schedule="multistep", batch_size=128))).label \
        == "reproduced"
    nest = BY_ID["fig8_nesterov"]
    plain = [run("fig8b_optimizers", 0.92, schedule="clr"), run("fig8b_optimizers", 0.90, schedule="multistep")]
    assert judge(nest, frame(*plain)).label == "not run yet"
    with_nesterov = [dict(r, nesterov=True) for r in plain]
    assert judge(nest, frame(*plain, *with_nesterov)).label == "reproduced"
    # AdaDelta/AdaGrad sub-cases only: the SGD and Adam runs of the same experiment are other claims
    adaptive = BY_ID["fig8_adaptive"]
    v = judge(adaptive, frame(*plain, dict(plain[0], optimizer="adagrad"), dict(plain[1], optimizer="adagrad")))
    assert v.label == "reproduced" and [c[0] for c in v.cases] == ["optimizer adadelta", "optimizer adagrad"]


def test_weight_decay_and_adam_rules():
    wd = BY_ID["fig10b_weight_decay"]
    ok = run("fig10b_weight_decay", 0.92, weight_decay=1e-4)
    assert judge(wd, frame(ok, run("fig10b_weight_decay", None, "diverged", weight_decay=1e-3))).label == "reproduced"
    assert judge(wd, frame(ok, run("fig10b_weight_decay", 0.93, weight_decay=1e-3))).label == "not reproduced"
    adam = BY_ID["fig8_adam"]
    a = [run("fig8b_optimizers", 0.87, schedule="multistep", optimizer="adam")]
    assert judge(adam, frame(*a, run("fig8b_optimizers", 0.872, optimizer="adam"))).label == "reproduced"
    assert judge(adam, frame(*a, run("fig8b_optimizers", 0.91, optimizer="adam"))).label == "not reproduced"
    assert judge(adam, frame(*a)).label == "not run yet"


def test_range_claims_use_the_stored_verdict():
    claim = BY_ID["fig7a_cifar100_range"]

    def rt(label, status="completed"):
        return frame(run("range_fig7a_cifar100", 0.4, status, job_type="range_test",
                         **{"range_test/verdict/label": label, "range_test/verdict/peak_acc": 0.5,
                            "range_test/verdict/peak_lr": 1.2}))

    assert judge(claim, rt("stays_high")).label == "reproduced"
    assert judge(claim, rt("collapses")).label == "not reproduced"
    assert judge(claim, rt("diverged", "diverged")).label == "not reproduced"
    assert judge(claim, rt("never_learns")).label == "inconclusive"
    assert judge(claim, rt("stays_high", "unfinished")).label == "not run yet"
    assert judge(claim, frame(run("range_fig7a_cifar100", 0.4))).label == "not run yet"  # no verdict column
    both = pd.concat([rt("stays_high"), rt("collapses")], ignore_index=True)
    assert judge(claim, both).label == "partly"
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
    verdicts = {c.id: judge(c, summaries) for c in CLAIMS}
    assert verdicts["fig1a_clr_vs_pclr"].label in JUDGED  # two seeds per schedule: a real verdict
    for cid in ("fig6b_depth", "fig7b_cifar100", "fig8_nesterov", "fig9a_batch", "fig10a_momentum",
                "fig7a_cifar100_range", "table1_stepsize"):
        assert verdicts[cid].label == "not run yet", cid
    text = build_report(summaries, None, [], tmp_path / "REPORT.md", "make figures")
    clr = _row(text, "| CLR | 92.4 |")
    assert "(n=2)" in clr and "1 unfinished, not counted" in clr and "smoke" in clr
    assert _row(text, "| CLR | 68.6 |").split(" | ")[3] == "not run yet"
    # the diverged max-LR run is reported as a failure, not as an accuracy
    assert "no finished run, 1 diverged" in _row(text, "| max_lr 1e+30 |")


def test_cli(tmp_path):
    out = tmp_path / "REPORT.md"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([str(FIXTURES), "--figures", str(tmp_path / "none"), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "python -m paper_figures.report" in text and "No figures were given." in text


# ------------------------------------------------------------------------------ two scales
MINI = dict(scale="mini", depth=20, batch_size=128, device="cpu: AMD EPYC, 2 threads")


def two_scales(paper_clr, paper_pc, mini_clr, mini_pc) -> pd.DataFrame:
    """fig1a at paper scale (ResNet-56, 10k / 80k it) and at mini scale (ResNet-20, 150 / 1200 it)."""
    rows = [run(acc=a, schedule="clr", seed=i) for i, a in enumerate(paper_clr)]
    rows += [run(acc=a, schedule="multistep", max_lr=0.35, iterations=80000, seed=i) for i, a in enumerate(paper_pc)]
    rows += [run(acc=a, schedule="clr", seed=i, iterations=150, **MINI) for i, a in enumerate(mini_clr)]
    rows += [run(acc=a, schedule="multistep", max_lr=0.35, seed=i, iterations=1200, **MINI)
             for i, a in enumerate(mini_pc)]
    return frame(*rows)


def test_each_scale_is_judged_alone():
    claim = BY_ID["fig1a_clr_vs_pclr"]
    # paper: CLR loses (-2 pp); mini: CLR wins (+5 pp). Pooled, CLR 61.5 vs PC-LR 60.0 would pass as a win.
    v = judge(claim, two_scales([0.88], [0.90], [0.35], [0.30]))
    per = dict(v.scales)
    assert list(per) == ["paper", "mini"] and v.cases == ()
    assert per["paper"].label == "not reproduced" and "-2.00 pp" in per["paper"].detail
    assert per["mini"].label == "reproduced" and "+5.00 pp" in per["mini"].detail
    assert "n = 1 vs 1" in per["mini"].detail and "+1.50 pp" not in v.detail  # no pooled difference anywhere
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
    df = frame(run("fig9a_batch", 0.92, batch_size=1000), run("fig9a_batch", 0.89, batch_size=256),
               run("fig9a_batch", 0.30, **{**MINI, "batch_size": 512}),
               run("fig9a_batch", 0.35, **MINI))
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
    assert "Scales: paper 1, mini 5, judged separately." in text and "**Scales are judged separately.**" in text
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
        (dst / "config.yaml").write_text((dst / "config.yaml").read_text().replace("scale_name: smoke",
                                                                                   "scale_name: mini"))
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
