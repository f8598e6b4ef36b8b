"""The import structure the code relies on: no cycle, no module imports an entry point, no sys.path edits."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"superconv": ROOT / "src" / "superconv", "paper_figures": ROOT / "paper_figures",
            "experiments": ROOT / "experiments"}
ENTRIES = {"superconv.train", "superconv.range_test"}  # `python -m` entry points (thin: cli + modes)


def modules() -> dict[str, Path]:
    out = {}
    for pkg, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [pkg, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of ours that `name` imports, anywhere in the file (a lazy import is an import too)."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = name.split(".") if is_pkg else name.split(".")[:-1]
            if node.level:
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = {f"{mod}.{a.name}" for a in node.names} & known  # `from pkg import module`
            out |= subs or {mod}
    # a module's own ancestor packages are imported by Python first anyway: not an edge
    return {m for m in out if m in known and m != name and not name.startswith(m + ".")}


def test_no_import_cycle_and_no_module_imports_an_entry_point():
    mods = modules()
    graph = {n: imports(n, p, set(mods)) for n, p in mods.items()}
    importers = {n for n, deps in graph.items() if deps & ENTRIES}
    assert not importers, f"modules importing an entry point: {sorted(importers)}"
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
            if m not in state:
                visit(m, stack + [m])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])


def test_nothing_edits_sys_path():
    offenders = [str(p.relative_to(ROOT)) for p in [*modules().values(), *(ROOT / "tests").glob("*.py")]
                 if "sys.path.insert" in p.read_text() and p.name != "test_structure.py"]
    assert not offenders
