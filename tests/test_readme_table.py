"""README.md's results table (paper_figures.readme_table): the block between the markers is rewritten from the
judged claims of constructed runs, the rest of the file stays byte-identical, a README without the markers is
an error that leaves it untouched, and a second run writes nothing."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd
import pytest
from test_report import BY_ID, MINI, frame, run, seeds, two_scales

from paper_figures.__main__ import ROOT, _readme, main
from paper_figures.readme_table import BEGIN, END, HEADER, ReadmeError, render_table, splice, update_readme
from paper_figures.verdicts import judge, judge_all

BEFORE = "# superconv\n\nProse the lead writes, kept as is: ±, `code`,  trailing spaces  \n\n"
OPEN = "<!-- results-table:begin (written by `make figures` from results/: do not edit) -->\n"
OLD = "| claim | scale | ours | paper | verdict |\n|---|---|---|---|---|\n| hand-written | mini | 1% | 2 | stale |\n"
AFTER = "<!-- results-table:end -->\n\n- more prose\r\nwith a CRLF line and no final newline"


def readme(tmp_path: Path, text: str = BEFORE + OPEN + OLD + AFTER) -> Path:
    path = tmp_path / "README.md"
    path.write_bytes(text.encode("utf-8"))
    return path


def store() -> pd.DataFrame:
    """Constructed runs: fig1a at paper scale (one CLR run) and at mini scale (2 seeds a side, 5.12 CLR epochs),
    a mini batch sweep with two seeds per batch, a mini range test, and an unjudged (qualitative-only) claim."""
    fig1a = two_scales([0.8824], [], [0.33, 0.35], [0.30, 0.31])
    batch = frame(*seeds(run("fig9a_batch", 0.30, **{**MINI, "batch_size": 512}),
                         run("fig9a_batch", 0.35, **MINI)))
    rng = frame(run("range_fig2b_5k", 0.5, job_type="range_test", **MINI,
                    **{"range_test/verdict/label": "stays_high", "range_test/verdict/peak_acc": 0.55,
                       "range_test/verdict/peak_lr": 1.2, "range_test/verdict/max_lr_tested": 3.0}))
    return pd.concat([fig1a, batch, rng], ignore_index=True)


def rows(text: str) -> list[str]:
    block = text[text.index(BEGIN):text.index(END)]
    return [line for line in block.splitlines()[1:] if line.startswith("|")]


def row(text: str, start: str) -> str:
    return next(r for r in rows(text) if r.startswith(start))


def test_the_block_is_replaced_and_the_rest_is_byte_identical(tmp_path):
    path = readme(tmp_path)
    assert update_readme(path, store(), None, None, tmp_path / "paper_figures" / "REPORT.md") is True
    data = path.read_bytes()
    assert data.startswith((BEFORE + OPEN).encode("utf-8")) and data.endswith(AFTER.encode("utf-8"))
    text = data.decode("utf-8")
    assert "hand-written" not in text and "stale" not in text
    assert tuple(rows(text)[:2]) == HEADER
    # exactly the block changed: splicing the old block back gives the original bytes
    block = text[text.index(OPEN) + len(OPEN):text.index(END)]
    assert splice(text, OLD) == BEFORE + OPEN + OLD + AFTER and block.endswith("|\n")
    assert not list(tmp_path.glob(".README.md.tmp*"))  # the atomic write left no temp file


def test_the_rows_come_from_the_judged_runs(tmp_path):
    df = store()
    summaries, verdicts = judge_all(df)
    text = render_table(summaries, verdicts, None, "paper_figures/REPORT.md")
    body = text.splitlines()[2:]
    # one row per judged claim and setting with runs: fig1a at paper and mini, the batch sweep, the range test;
    # none for fig1a_curve (qualitative) or for claims nobody ran
    assert [r.split(" | ")[0] for r in body] == [
        "| [Fig 1a](paper_figures/REPORT.md#fig1a_clr_vs_pclr): CLR (10k it) beats PC-LR (80k it)"] * 2 + [
        "| [Fig 2b](paper_figures/REPORT.md#fig2b_range_test): range-test accuracy stays high up to LR 3",
        "| [Fig 9a / Table 5](paper_figures/REPORT.md#fig9a_batch): the largest batch beats the smallest"]
    per = dict(judge(BY_ID["fig1a_clr_vs_pclr"], df).scales)
    paper, mini = body[0].split(" | "), body[1].split(" | ")
    assert paper[1] == "paper: ResNet-56; CLR 10k it, batch 1000 = 200 epochs; cuda: NVIDIA H200"
    assert paper[2] == "CLR 88.24% (n=1) vs PC-LR not run yet; fp32, BN torch over the whole batch, protocol v1"
    assert paper[3] == "92.4 vs 91.2"  # no reference folder: no author column
    assert paper[4] == f"**{per['paper'].label}**: no finished run of PC-LR |" and per["paper"].label == "not run yet"
    assert mini[1] == ("mini: ResNet-20; CLR 2k it, batch 128 = 5.12 epochs; PC-LR 16k it, batch 128 = 41 epochs; "
                       "cpu: AMD EPYC, 2 threads")
    assert mini[2].startswith("CLR 34.00 ± 1.41% (n=2) vs PC-LR 30.50 ± 0.71% (n=2); fp32")
    assert mini[4].startswith(f"**{per['mini'].label}**: CLR vs PC-LR: +3.50 pp, noise ") and \
        per["mini"].label == "reproduced"
    batch = body[3].split(" | ")
    assert batch[1] == "mini: ResNet-20; 10k it, batch 128/512 = 25.6-102 epochs; cpu: AMD EPYC, 2 threads"
    assert batch[2].startswith("batch_size 128: 35.05 ± 0.07% (n=2); 512: 30.05 ± 0.07% (n=2); fp32")
    assert batch[4].startswith("**not reproduced**: batch_size 512 vs 128: -5.00 pp, noise ")
    assert body[2].split(" | ")[4] == "**indicative (n=1)**: stays high |"
    # the numbers follow the runs: another accuracy, another row
    moved = df.copy()
    moved.loc[(moved["scale"] == "paper") & (moved["schedule"] == "clr"), "final_test_acc"] = 0.9
    assert "CLR 90.00% (n=1) vs PC-LR" in render_table(*judge_all(moved))
    # nothing ran: one line says so
    empty = render_table(*judge_all(frame()))
    assert empty.splitlines()[2] == "| no claim has a run that ended yet | | | | |"


def test_too_short_runs_and_protocols_get_their_own_verdicts(tmp_path):
    short = [dict(r, iterations=150 if r["schedule"] == "clr" else 1200, batch_size=256,
                  final_train_acc=0.7531 if r["schedule"] == "clr" else 0.999)
             for r in two_scales([], [], [0.33, 0.35], [0.74, 0.75]).to_dict("records")]
    caffe = dict(bn_stats="caffe", bn_group=125, protocol_version=2)
    df = frame(*short, *(dict(r, **caffe) for r in short))
    text = render_table(*judge_all(df))
    body = text.splitlines()[2:]
    assert len(body) == 2  # one setting per protocol, never pooled
    assert "fp32, BN torch over the whole batch, protocol v1" in body[0]
    assert "fp32, BN caffe over groups of 125, protocol v2" in body[1]
    for r in body:
        assert r.endswith("| **not testable**: underfit (CLR training accuracy 75.31%, full pass, n=2; a converged "
                          "run reaches 97%) |")
        assert "CLR 34.00 ± 1.41% (n=2), train 75.31% (full pass)" in r
        assert "CLR 150 it, batch 256 = 0.768 epochs; PC-LR 1.2k it, batch 256 = 6.14 epochs" in r


@pytest.mark.parametrize("text, marker", [
    (BEFORE + OLD + AFTER, BEGIN), (BEFORE + OPEN + OLD, END), (BEFORE + OPEN + OPEN + OLD + AFTER, BEGIN),
    (BEFORE + AFTER + OPEN + OLD, END)])
def test_missing_markers_are_an_error_and_leave_the_file_alone(tmp_path, text, marker):
    path = readme(tmp_path, text)
    old = 1_000_000_000
    os.utime(path, (old, old))
    with pytest.raises(ReadmeError) as e:
        update_readme(path, store(), None, None, tmp_path / "REPORT.md")
    msg = str(e.value)
    assert "\n" not in msg and "README.md" in msg and marker in msg
    assert path.read_bytes() == text.encode("utf-8") and path.stat().st_mtime == old


def test_the_cli_fails_in_one_line_before_drawing(tmp_path, capsys):
    path = readme(tmp_path, BEFORE)
    out = tmp_path / "figs"
    assert main(["--results", str(tmp_path / "none"), "--out", str(out), "--report", str(out / "REPORT.md"),
                 "--readme", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "README.md" in err and BEGIN in err
    assert path.read_bytes() == BEFORE.encode("utf-8") and not out.exists()


def test_a_second_run_changes_nothing(tmp_path):
    path = readme(tmp_path)
    report = tmp_path / "paper_figures" / "REPORT.md"
    df = store()
    assert update_readme(path, df, None, None, report) is True
    before = path.read_bytes()
    old = 1_000_000_000
    os.utime(path, (old, old))
    assert update_readme(path, df.iloc[::-1].reset_index(drop=True), None, None, report) is False
    assert path.read_bytes() == before and path.stat().st_mtime == old


def test_the_default_readme_is_the_repositorys_only_for_its_results():
    def args(**kw):
        return argparse.Namespace(**{"results": "results", "readme": None, "no_readme": False, **kw})

    assert _readme(args(results=str(ROOT / "results"))) == ROOT / "README.md"
    assert _readme(args(results=str(ROOT / "tests/fixtures/results"))) is None  # fixtures never touch README.md
    assert _readme(args(results="/elsewhere", readme="/tmp/R.md")) == Path("/tmp/R.md")
    assert _readme(args(results=str(ROOT / "results"), no_readme=True)) is None
    assert (ROOT / "README.md").read_text(encoding="utf-8").count(BEGIN) == 1  # the real README has its markers


def test_every_judged_claim_has_a_headline():
    from paper_figures.readme_table import KINDS
    from paper_figures.claims import CLAIMS

    for c in CLAIMS:
        assert c.headline and len(c.headline) <= 60 and "|" not in c.headline, c.id
    assert {c.kind for c in CLAIMS} >= set(KINDS)


def test_the_frontier_block_is_spliced_where_its_markers_are(tmp_path):
    from paper_figures.readme_table import FRONTIER_BEGIN, FRONTIER_END, splice_frontier

    text = f"intro\n{FRONTIER_BEGIN} (generated) -->\nold\n{FRONTIER_END}\nrest\n"
    assert splice_frontier(text, "new\n") == f"intro\n{FRONTIER_BEGIN} (generated) -->\nnew\n{FRONTIER_END}\nrest\n"
    assert splice_frontier("no markers\n", "new\n") == "no markers\n"  # a README without the block keeps none
    with pytest.raises(ReadmeError, match="frontier table"):
        splice_frontier(f"{FRONTIER_BEGIN} -->\nno end\n", "new\n")


def test_a_budget_claim_judged_at_converged_lengths_gets_its_own_row():
    """The frontier's verdicts (frontier.converged_claims) follow the claim's own rows: the budget compared in
    the scale cell, the numbers, the paper's, the label. A claim whose converged arms have not both run adds
    nothing."""
    summaries, verdicts = judge_all(store())
    converged = {"fig1a_clr_vs_pclr": ("reproduced", "CLR 400 iterations (first converged budget) vs PC-LR 3200: "
                                       "CLR - PC-LR = +2.57 pp, noise 1.12 pp"),
                 "fig9a_batch": ("not run yet", "no finished CLR run at this fraction")}
    body = render_table(summaries, verdicts, None, "paper_figures/REPORT.md", converged).splitlines()[2:]
    plain = render_table(summaries, verdicts, None, "paper_figures/REPORT.md").splitlines()[2:]
    assert len(body) == len(plain) + 1
    row = body[2].split(" | ")
    assert row[0] == "| [Fig 1a](paper_figures/REPORT.md#fig1a_clr_vs_pclr): CLR (10k it) beats PC-LR (80k it)"
    assert row[1] == "frontier, at converged lengths: CLR 400 iterations (first converged budget) vs PC-LR 3200"
    assert row[2:] == ["CLR - PC-LR = +2.57 pp, noise 1.12 pp", "92.4 vs 91.2", "**reproduced** |"]
    assert body[:2] == plain[:2] and body[3:] == plain[2:]
