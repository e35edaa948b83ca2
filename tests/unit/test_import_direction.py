"""Imports point one way and never in a circle, read from the source (ast), not by executing it.

The order, highest first: cli → flows → tasks → orchestration → debate → deploy/registry →
evaluation/costs → synthesis → training → steering → data → config. A module may import its own
layer or any layer below it. `foundry.debate` runs debates through the variants and the served
targets (deploy) and measures them with evaluation's measures, so it sits above both.
`foundry.orchestration` (run keys and cache, schedules, the UI servers) serves the flows and the
CLI, and reads the registry's store, so it sits above deploy/registry.
The config layer is the ground every stage stands on: the root modules (`foundry/config.py`,
`errors.py`, `logs.py`, `atomic.py`, `slugs.py`) and each stage's own section of `foundry.yaml`
(a module named `config` inside a stage package). Every import counts, including those inside
functions and under `TYPE_CHECKING`: moving an import into a function hides a cycle from Python,
not from a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("foundry", "tasks", "flows", "registry", "deploy")
LAYERS = (
    "config",
    "data",
    "steering",
    "training",
    "synthesis",
    "evaluation costs",
    "deploy registry",
    "debate",
    "orchestration",
    "tasks",
    "flows",
    "cli",
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names.split()}


def module_files(root: Path) -> dict[str, Path]:
    """Every module of the project's packages under `root`, by dotted name."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def layer_of(module: str) -> str:
    """The layer a dotted module name belongs to (see the module docstring)."""
    parts = module.split(".")
    if parts[-1] == "config" or (parts[0] == "foundry" and len(parts) <= 2 and parts[-1] != "cli"):
        return "config"
    if parts[0] == "foundry":
        return parts[1]
    return parts[0]


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """The project modules `name` imports, with the line of each import."""
    found = []
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(f"{target}."):
                found.append((target, node.lineno))
    return found


def import_graph(root: Path) -> dict[str, list[tuple[str, int]]]:
    modules = module_files(root)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def _file(module: str, root: Path) -> str:
    """The file of a dotted module name, relative to `root`, as a reader would look for it."""
    folder = root / module.replace(".", "/")
    path = folder / "__init__.py" if folder.is_dir() else folder.with_suffix(".py")
    return str(path.relative_to(root))


def direction_violations(graph: dict[str, list[tuple[str, int]]], root: Path) -> list[str]:
    """Imports from a lower layer up to a higher one, each as `file:line imports file`."""
    problems = []
    for name, imports in graph.items():
        for target, line in imports:
            if RANK[layer_of(target)] > RANK[layer_of(name)]:
                problems.append(
                    f"{_file(name, root)}:{line} ({layer_of(name)}) imports {_file(target, root)} "
                    f"({layer_of(target)}), a higher layer"
                )
    return sorted(set(problems))


def find_cycle(graph: dict[str, list[tuple[str, int]]]) -> list[str]:
    """One import cycle as a list of modules (first == last), or [] when there is none."""
    edges = {name: sorted({target for target, _ in imports}) for name, imports in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for target in edges.get(node, []):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_no_import_goes_against_the_layer_order():
    problems = direction_violations(import_graph(REPO_ROOT), REPO_ROOT)
    assert not problems, "imports against cli → ... → config:\n" + "\n".join(problems)


def test_no_import_cycles():
    cycle = find_cycle(import_graph(REPO_ROOT))
    assert not cycle, "import cycle: " + " → ".join(_file(m, REPO_ROOT) for m in cycle)


def test_foundry_root_keeps_only_the_common_ground():
    root_files = sorted(p.name for p in (REPO_ROOT / "foundry").glob("*.py"))
    assert len(root_files) <= 6, root_files


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A copy of the package layout with two small modules that the test then edits."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for package in ("data", "training"):
        (tmp_path / "foundry" / package).mkdir()
        (tmp_path / "foundry" / package / "__init__.py").write_text("")
    (tmp_path / "foundry" / "data" / "records.py").write_text("X = 1\n")
    (tmp_path / "foundry" / "training" / "loop.py").write_text(
        "from foundry.data.records import X\n"
    )
    return tmp_path


def test_the_checks_pass_on_a_clean_layout(planted):
    graph = import_graph(planted)
    assert ("foundry.data.records", 1) in graph["foundry.training.loop"]
    assert direction_violations(graph, planted) == []
    assert find_cycle(graph) == []


def test_a_planted_upward_import_is_named_with_both_files(planted):
    records = planted / "foundry" / "data" / "records.py"
    records.write_text("X = 1\n\n\ndef later():\n    from foundry.training import loop\n")
    problems = direction_violations(import_graph(planted), planted)
    assert problems == [
        "foundry/data/records.py:5 (data) imports foundry/training/loop.py (training), "
        "a higher layer"
    ]


def test_a_planted_cycle_is_found_even_inside_one_layer(planted):
    (planted / "foundry" / "data" / "records.py").write_text("from foundry.data.names import Y\n")
    (planted / "foundry" / "data" / "names.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from foundry.data.records import X\n"
    )
    cycle = find_cycle(import_graph(planted))
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"foundry.data.records", "foundry.data.names"}
