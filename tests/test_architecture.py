"""The layout keeps its promise (README, "Architecture"): imports go down the flow, never up, and no module
imports itself back through others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def test_imports_go_down_the_flow() -> None:
    """The import-linter contract in pyproject.toml, as CI runs it."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def test_no_module_imports_itself_back() -> None:
    graph = grimp.build_graph("app")
    edges = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(edges[module]):
            if state.get(imported) == 1:
                cycles.append([*path[path.index(imported):], module, imported])
            elif imported not in state:
                visit(imported, [*path, module])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    assert cycles == [], "\n".join(" -> ".join(cycle) for cycle in cycles)
