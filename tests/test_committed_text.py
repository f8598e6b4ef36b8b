"""What the repository ships to its users names no folder of the machines it was made on.

A run launched with an absolute data folder records that folder in its config and command; copied into
`results/`, it would tell every user where someone else's disk keeps CIFAR. The check reads the committed
results and the user-facing text, so a run synced with such a path fails here before it lands.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [ROOT / "results", ROOT / "README.md", ROOT / "docs", ROOT / "experiments" / "README.md",
           ROOT / "paper_figures" / "REPORT.md", ROOT / "paper_figures" / "figures",
           ROOT / "paper_figures" / "author_runs", ROOT / "Makefile", ROOT / "conf", ROOT / "environment.yml",
           ROOT / "examples"]
TEXT = {".md", ".yaml", ".yml", ".json", ".jsonl", ".csv", ".txt", ".py", ""}  # "" : Makefile, DONE
# An absolute path under a home, data, scratch, cluster-filesystem or temporary root (or a Windows user
# folder); "~/" and relative paths are the user's own, and system paths such as /proc/locks name no machine.
ROOTS = "root|home|tmp|work|Users|mnt|scratch|data|opt|srv|var|private|media|Volumes|gpfs|lustre|nfs"
MACHINE_PATH = re.compile(rf"(?<![\w.~])/(?:{ROOTS})(?:/[\w.-]+)+|\b[A-Z]:\\Users\\[\w.-]+")


def machine_paths(files, root: Path = ROOT) -> list[str]:
    """Every machine folder in `files`, as "file:line: path"."""
    hits = []
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            hits += [f"{path.relative_to(root)}:{n}: {m.group(0)}" for m in MACHINE_PATH.finditer(line)]
    return hits


def shipped_files():
    for top in SHIPPED:
        if top.is_file():
            yield top
        elif top.is_dir():
            yield from (p for p in sorted(top.rglob("*")) if p.is_file() and p.suffix in TEXT)


def test_the_pattern_finds_a_machine_folder_and_spares_relative_and_home_paths(tmp_path):
    probe = tmp_path / "x.yaml"
    probe.write_text("data_dir: /work/study-data\ncommand: --out /root/out/bench\n"
                     "ok: data ~/cifar ./a/b results/tmp/x /proc/locks https://host/data/x\n"
                     "cluster: /gpfs/proj/cifar and C:\\Users\\me\n")
    assert machine_paths([probe], tmp_path) == ["x.yaml:1: /work/study-data", "x.yaml:2: /root/out/bench",
                                                "x.yaml:4: /gpfs/proj/cifar", "x.yaml:4: C:\\Users\\me"]


def test_results_and_user_text_name_no_machine_folder():
    files = list(shipped_files())
    assert len(files) > 100  # the committed runs are read, not an empty glob
    assert machine_paths(files) == []
