"""`python -m paper_figures` end to end on the committed fixtures: every file, then no byte changes."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from paper_figures.__main__ import main


def test_make_figures_twice_changes_no_bytes(tmp_path):
    """Every figure, table and the report are drawn twice from the fixture results: the second pass leaves each
    file as it was (its bytes and its mtime), so drawing is deterministic and rewrites nothing unchanged."""
    args = ["--results", str(ROOT / "tests/fixtures/results"), "--out", str(tmp_path / "figs"),
            "--report", str(tmp_path / "REPORT.md")]
    assert main(args) == 0
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    assert len([p for p in files if p.suffix == ".png"]) >= 22  # curves, sweeps, range tests, schedules
    report = (tmp_path / "REPORT.md").read_text()
    assert "fig1a_clr_vs_pclr" in report and "figs/fig1a_clr_vs_pclr.png" in report
    assert main(args) == 0
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before


def test_missing_reference_folder_is_one_line_exit_2(tmp_path, capsys):
    assert main(["--results", str(tmp_path), "--out", str(tmp_path / "o"), "--reference", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nope" in err
