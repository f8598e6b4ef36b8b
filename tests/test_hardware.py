"""superconv.hardware: the git sha a run records."""


def test_git_sha_is_dirty_for_code_changes_not_for_generated_outputs(tmp_path, monkeypatch):
    import subprocess

    from superconv.hardware import git_sha

    monkeypatch.delenv("SUPERCONV_GIT_SHA", raising=False)
    repo = tmp_path / "repo"
    for f in ("src/superconv/loop.py", "README.md", "paper_figures/REPORT.md", "results/x/summary.json"):
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        (repo / f).write_text("a\n")

    def git(*a):
        subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)

    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    sha = git_sha(repo / "src" / "superconv")
    assert len(sha) == 40
    for f in ("README.md", "paper_figures/REPORT.md", "results/x/summary.json"):
        (repo / f).write_text("b\n")  # what make figures / a finished run rewrites
    (repo / "notes.txt").write_text("untracked\n")
    assert git_sha(repo / "src" / "superconv") == sha
    (repo / "src/superconv/loop.py").write_text("b\n")
    assert git_sha(repo / "src" / "superconv") == sha + "-dirty"
