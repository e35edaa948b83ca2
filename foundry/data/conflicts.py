"""Reading `data/conflicts.yaml`: pairs of personas who disagree, and the question that settles it.

Public entry point: `load_conflicts(path, persona_slugs, selected)`. The file is optional (no file,
no conflicts). Each record is checked on its own, so one bad record names itself
(`conflicts[3] (id capex-payback)`) and the others still load. Conflicts are test data: only
validation and evaluation read them, never synthesis or training.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from foundry.data.personas import describe_validation_errors, read_yaml
from foundry.data.schemas import Conflict, ConflictKind
from foundry.errors import Problem

KINDS = get_args(ConflictKind)
EXAMPLE = "examples/sample/conflicts.yaml"


def load_conflicts(
    path: Path, persona_slugs: Sequence[str], selected: Sequence[str] | None = None
) -> tuple[list[Conflict], list[Problem]]:
    """The valid conflicts of `path` and a problem for every bad record.

    Args:
        path: the conflicts file (`{conflicts: [{id, persona_a, assumption_a, persona_b,
            assumption_b, question, kind}]}`); missing means no conflicts.
        persona_slugs: every persona of the project; a conflict naming a near miss of one is an
            error (a typo), one naming a persona that is simply absent is skipped with a warning.
        selected: the personas being validated (None: all); conflicts involving others are
            left out without a problem.

    Returns:
        The conflicts, in file order, and the problems (errors name the record and the fix).
    """
    if not path.is_file():
        return [], []
    raw, problem = read_yaml(path)
    if problem:
        return [], [problem]
    records, problems = _records(raw, path)
    conflicts: list[Conflict] = []
    first_index: dict[str, int] = {}
    absent: set[str] = set()
    for index, record in enumerate(records):
        conflict, record_problems = _check_record(record, index, path, persona_slugs, first_index)
        problems += record_problems
        if conflict is None or record_problems:
            continue
        missing = {conflict.persona_a, conflict.persona_b} - set(persona_slugs)
        if missing:
            absent |= missing
        else:
            conflicts.append(conflict)
    if absent:
        problems.append(_absent_personas(path, absent, persona_slugs))
    if selected is not None:
        chosen = set(selected)
        conflicts = [c for c in conflicts if {c.persona_a, c.persona_b} <= chosen]
    return conflicts, problems


def _records(raw: Any, path: Path) -> tuple[list[Any], list[Problem]]:
    """The list under `conflicts:`, or a problem saying what the file should look like."""
    if raw is None:
        return [], []
    shape = f"start the file with `conflicts:` and a list of records (see {EXAMPLE})"
    if not isinstance(raw, dict):
        return [], [Problem("error", path, "", "the file must be a mapping", shape)]
    problems = [
        Problem("error", path, f"field {key}", "unknown field", "the file holds only `conflicts:`")
        for key in raw
        if key != "conflicts"
    ]
    records = raw.get("conflicts") or []
    if not isinstance(records, list):
        problems.append(Problem("error", path, "field conflicts", "must be a list", shape))
        return [], problems
    return records, problems


def _check_record(
    record: Any,
    index: int,
    path: Path,
    persona_slugs: Sequence[str],
    first_index: dict[str, int],
) -> tuple[Conflict | None, list[Problem]]:
    """One record validated: its schema, a repeated id, the same persona twice, unknown slugs."""
    label = _label(record, index)
    if not isinstance(record, dict):
        fix = "write it as `{id, persona_a, assumption_a, persona_b, assumption_b, question, kind}`"
        return None, [Problem("error", path, label, "a conflict must be a mapping", fix)]
    problems = []
    conflict_id = record.get("id")
    if isinstance(conflict_id, str) and conflict_id in first_index:
        problems.append(
            Problem(
                "error",
                path,
                label,
                f"id {conflict_id!r} repeats conflicts[{first_index[conflict_id]}]",
                "give each conflict its own id",
            )
        )
    elif isinstance(conflict_id, str):
        first_index[conflict_id] = index
    if record.get("persona_a") is not None and record.get("persona_a") == record.get("persona_b"):
        return None, problems + [
            Problem(
                "error",
                path,
                label,
                f"persona_a and persona_b are both {record['persona_a']!r}",
                "a conflict is between two different personas; name the other one",
            )
        ]
    try:
        conflict = Conflict.model_validate(record)
    except ValidationError as exc:
        return None, problems + _schema_problems(exc, path, label)
    problems += _unknown_personas(conflict, path, label, persona_slugs)
    return conflict, problems


def _schema_problems(exc: ValidationError, path: Path, label: str) -> list[Problem]:
    """pydantic's errors, each placed at the record (and a list of the kinds for a bad kind)."""
    problems = []
    for problem in describe_validation_errors(exc, path, Conflict):
        fix = problem.fix
        if problem.where == "field kind" and problem.message != "required field is missing":
            fix = f"use one of: {', '.join(KINDS)}"
        problems.append(replace(problem, where=f"{label}, {problem.where}", fix=fix))
    return problems


def _unknown_personas(
    conflict: Conflict, path: Path, label: str, persona_slugs: Sequence[str]
) -> list[Problem]:
    problems = []
    for field in ("persona_a", "persona_b"):
        slug = getattr(conflict, field)
        if slug in persona_slugs:
            continue
        close = difflib.get_close_matches(slug, list(persona_slugs), 1)
        if not close:  # not a typo: a removed persona, or a project with a few of the sample's
            continue
        problems.append(
            Problem(
                "error",
                path,
                f"{label}, field {field}",
                f"unknown persona {slug!r}",
                f"did you mean `{close[0]}`? use one of the project's personas: "
                + ", ".join(persona_slugs),
            )
        )
    return problems


def _absent_personas(path: Path, absent: set[str], persona_slugs: Sequence[str]) -> Problem:
    """One warning for every conflict naming a persona the project does not have."""
    return Problem(
        "warning",
        path,
        "",
        f"conflicts naming {', '.join(sorted(absent))} are skipped: not personas of this project",
        "add those personas, or remove their conflicts; personas here: "
        + (", ".join(persona_slugs) or "none"),
    )


def _label(record: Any, index: int) -> str:
    conflict_id = record.get("id") if isinstance(record, dict) else None
    return f"conflicts[{index}]" + (f" (id {conflict_id})" if conflict_id else "")
