"""Rich tables of what `foundry validate` found: one per persona (items, kinds, duplicates,
problems) and one for the debate topics. Entry points: `persona_table(prepared)` and
`problem_table(title, problems)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from foundry.errors import Problem

if TYPE_CHECKING:
    from foundry.data.validation import PreparedPersona


def persona_table(prepared: PreparedPersona) -> Table:
    """The persona's item counts, kinds, dropped duplicates and every problem, with its fix."""
    name = prepared.contract.name if prepared.contract else "(no valid contract)"
    stats = prepared.stats
    table = Table(title=f"{prepared.slug}: {name}", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("items", f"{stats.items} from {stats.files} file(s)")
    table.add_row(
        "splits",
        f"{stats.train} train, {stats.validation} validation, {stats.test} test "
        f"({stats.test_by_topic} of them about held-out topics); by document",
    )
    table.add_row("kinds", ", ".join(f"{k} {v}" for k, v in sorted(stats.by_kind.items())) or "-")
    table.add_row("~tokens", str(stats.approx_tokens))
    table.add_row(
        "dropped",
        f"{stats.exact_duplicates} exact and {stats.near_duplicates} near "
        f"duplicates, {stats.empty_dropped} empty",
    )
    if prepared.contract:
        method = prepared.contract.reasoning_method
        table.add_row("reasoning", method.name if method else "[yellow]missing[/]")
        table.add_row("positions", str(len(prepared.contract.positions)))
    for problem in prepared.problems:
        table.add_row(_level(problem), _describe(problem))
    if not prepared.problems:
        table.add_row("[green]ok[/]", "no problems")
    return table


def problem_table(title: str, problems: list[Problem]) -> Table:
    """One row per problem (level, where, message and fix)."""
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("level")
    table.add_column("problem")
    for problem in problems:
        table.add_row(_level(problem), _describe(problem))
    return table


def _level(problem: Problem) -> str:
    return "[red]error[/]" if problem.level == "error" else "[yellow]warning[/]"


def _describe(problem: Problem) -> str:
    location = _short_path(problem.path) if problem.path else ""
    if problem.where:
        location = f"{location}, {problem.where}" if location else problem.where
    text = f"{location}: {problem.message}" if location else problem.message
    return f"{text}\n  fix: {problem.fix}" if problem.fix else text


def _short_path(path: Path) -> str:
    """`path` relative to the working directory when it lies below it (easier to read)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
