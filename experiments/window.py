"""What a time-limited GPU session brings back, and how it goes into the repository (scripts/gpu_window.sh).

    python -m experiments.window pack --since STAMP --results results --out $OUT   # on the GPU machine
    python -m experiments.window unpack FOLDER     # where the repository lives: FOLDER holds $OUT's files

For a GPU machine that does not share the repository's file system (a rented VM, a notebook session, a
machine without network), whose output comes back as a few files: `pack` puts every file under the results
folder written since STAMP (runs, their checkpoints and carry markers, bench records, campaign.jsonl) into
one `results.tar.gz`, paths starting `results/`, in 15 MiB parts `results.tar.gz.00`, ... when larger
(transfers that limit a file's size, or the names in it: run directories are named `protocol=clr,...`).

`unpack` extracts it into this repository's results/: run files replace ours; JSON-lines records
(bench.jsonl, concurrency.jsonl, campaign.jsonl) gain the lines they lack, so that records appended here
in the meantime stay; and a run that finished there drops its checkpoint and carry marker here too (a tar
cannot carry a deletion). Then `git add results` stages exactly that: the carried run's checkpoint is the
only `*.pt` git sees (experiments.campaign's marker).
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
from pathlib import Path, PurePosixPath

from superconv.atomic import atomic_write

ROOT = Path(__file__).resolve().parents[1]
PART = 15 * 1024 * 1024  # parts small enough for transfers that cap a file at 16 MiB
NAME = "results.tar.gz"


def pack(results: Path, since: float, out: Path) -> list[Path]:
    """Files under `results` modified at or after `since` (epoch seconds) into out/results.tar.gz[.NN]."""
    files = sorted(p for p in Path(results).rglob("*") if p.is_file() and p.stat().st_mtime >= since
                   and ".tmp" not in p.name)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for p in files:
            tar.add(p, arcname=str(PurePosixPath("results") / p.relative_to(results).as_posix()))
    data = buf.getvalue()
    out.mkdir(parents=True, exist_ok=True)
    if len(data) <= PART:
        (out / NAME).write_bytes(data)
        written = [out / NAME]
    else:
        written = []
        for i in range(0, len(data), PART):
            part = out / f"{NAME}.{i // PART:02d}"
            part.write_bytes(data[i:i + PART])
            written.append(part)
    print(f"window: {len(files)} files under {results} ({len(data) / 2**20:.1f} MiB packed) -> "
          f"{', '.join(p.name for p in written)}", file=sys.stderr)
    return written


def _archive(source: Path) -> bytes:
    """The packed bytes from a results.tar.gz, its parts, or a folder holding either."""
    source = Path(source)
    if source.is_dir():
        whole = source / NAME
        parts = sorted(source.glob(f"{NAME}.[0-9][0-9]"))
        if whole.is_file():
            return whole.read_bytes()
        if parts:
            return b"".join(p.read_bytes() for p in parts)
        raise SystemExit(f"window: no {NAME} or {NAME}.NN in {source}")
    return source.read_bytes()


def unpack(source: Path, repo: Path = ROOT) -> dict:
    """Merge a window's results into `repo`/results; returns what changed."""
    from experiments.campaign import CARRY_MARKER, CARRY_TEXT

    changed = {"written": [], "merged": [], "dropped": []}
    done_dirs = set()
    with tarfile.open(fileobj=io.BytesIO(_archive(source)), mode="r:gz") as tar:
        members = tar.getmembers()
        for m in members:
            path = PurePosixPath(m.name)
            if not m.isfile() or path.is_absolute() or ".." in path.parts or path.parts[0] != "results":
                raise SystemExit(f"window: refusing {m.name!r}: only plain files under results/")
            if path.name == "DONE":
                done_dirs.add(path.parent)
        for m in members:
            dest = repo / m.name
            data = tar.extractfile(m).read()
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.suffix == ".jsonl" and dest.exists():  # keep ours, add theirs that we lack
                ours = set(dest.read_text(encoding="utf-8").splitlines())
                new = [ln for ln in data.decode("utf-8").splitlines() if ln.strip() and ln not in ours]
                if new:
                    with open(dest, "a", encoding="utf-8") as f:
                        f.write("".join(ln + "\n" for ln in new))
                    changed["merged"].append(m.name)
                continue
            atomic_write(dest, data)
            changed["written"].append(m.name)
    for d in sorted(done_dirs):
        for name in ("checkpoint.pt", CARRY_MARKER):
            p = repo / d / name
            if p.exists() and (name != CARRY_MARKER or p.read_text(encoding="utf-8") == CARRY_TEXT):
                p.unlink()
                changed["dropped"].append(str(d / name))
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.window", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack", help="on the GPU machine: results written since --since into --out")
    pk.add_argument("--since", required=True, help="a file whose modification time marks the window's start")
    pk.add_argument("--results", default="results")
    pk.add_argument("--out", required=True)
    up = sub.add_parser("unpack", help="here: merge a window's results.tar.gz into results/")
    up.add_argument("source", help="the folder the files came back to, or results.tar.gz")
    up.add_argument("--repo", default=str(ROOT))
    args = p.parse_args(argv)
    if args.cmd == "pack":
        pack(Path(args.results), Path(args.since).stat().st_mtime, Path(args.out))
        return 0
    changed = unpack(Path(args.source), Path(args.repo))
    for kind, names in changed.items():
        for name in names:
            print(f"{kind:8} {name}")
    print(f"window: {len(changed['written'])} files written, {len(changed['merged'])} records merged, "
          f"{len(changed['dropped'])} dropped (finished runs' checkpoints); next: make aggregate figures, "
          f"then git add results paper_figures && git commit", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
