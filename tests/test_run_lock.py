"""One process per run directory (superconv.run_lock): a claimed run is skipped, not written twice."""

from __future__ import annotations

from superconv.run_lock import RunLock


def test_a_claimed_run_directory_cannot_be_claimed_again_until_released(tmp_path):
    first, second = RunLock(tmp_path / "run", tmp_path / "locks"), RunLock(tmp_path / "run", tmp_path / "locks")
    assert first.acquire()
    assert not second.acquire()  # flock conflicts between open files, in one process as across processes
    assert RunLock(tmp_path / "other", tmp_path / "locks").acquire()  # another run is free
    first.release()
    assert second.acquire()
    second.release()
    assert not (tmp_path / "run").exists()  # the claim writes nothing next to the run


def test_a_run_claimed_by_another_process_is_skipped_and_left_untouched(run_cli, tmp_path):
    run_dir = tmp_path / "results" / "adhoc" / "scale=smoke"
    held = RunLock(run_dir)
    assert held.acquire()
    try:
        proc = run_cli()
        assert proc.returncode == 0, proc.stderr
        assert "is being run by another process; skipped" in proc.stderr
        assert not run_dir.exists()
    finally:
        held.release()
    proc = run_cli()  # released: the run goes ahead
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "DONE").is_file()
