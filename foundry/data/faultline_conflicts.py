"""Faultline's `worldviews/_conflicts.json` as the project's `data/conflicts.yaml`.

`plan_conflicts(source, slugs, conflicts_file, problems)` runs both steps for an import:
`map_conflicts` turns Faultline's records (persona ids, assumptions that may start with an index
tag like `A[3] `) into native `Conflict`s between personas that have a slug, most relevant first;
`merge_conflicts` returns the text of the conflicts file with them merged in (same id: replaced;
any other conflict: kept). A bad record is skipped with a warning naming the file and record;
`ConflictsReport` counts what was written and skipped, and why.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from foundry.data.faultline_sources import read_conflicts
from foundry.data.personas import read_yaml
from foundry.data.schemas import Conflict
from foundry.errors import Problem
from foundry.slugs import slugify

_INDEX_TAG = re.compile(r"^\s*[A-Za-z]{1,3}\[\d+\]\s*")  # "A[3] " refers to an assumption list
_FAULTLINE_FIELDS = {
    "id": "id",
    "persona_a": "personaA",
    "assumption_a": "assumptionA",
    "persona_b": "personaB",
    "assumption_b": "assumptionB",
    "question": "settlingQuestion",
    "kind": "conflictType",
}


class ConflictsReport(BaseModel):
    """What became of `_conflicts.json`: conflicts written to the project file and skipped."""

    path: str = Field(description="The project's conflicts file.")
    found: int = 0
    written: int = 0
    replaced: int = Field(0, description="Written conflicts that replaced one with the same id.")
    kept: int = Field(0, description="Conflicts already in the file, kept as they were.")
    outside: int = Field(0, description="Skipped: they name a persona not imported.")
    outside_personas: list[str] = Field(default_factory=list)
    invalid: int = Field(0, description="Skipped: the record is invalid (see the warnings).")

    def summary(self) -> str:
        """One line for the CLI and the log."""
        text = f"{self.written} conflict(s) written to {self.path}"
        if self.written:
            text += f" ({self.replaced} replaced, {self.kept} kept from the file)"
        skipped = []
        if self.outside:
            names = ", ".join(self.outside_personas)
            skipped.append(f"{self.outside} naming personas not imported ({names})")
        if self.invalid:
            skipped.append(f"{self.invalid} invalid (see the warnings)")
        return text + (f"; skipped {'; '.join(skipped)}" if skipped else "")


def plan_conflicts(
    source: Path, slugs: dict[str, str], conflicts_file: Path, problems: list[Problem]
) -> tuple[str, ConflictsReport | None]:
    """The new text of `conflicts_file` from `source`'s `_conflicts.json` ("" when the file stays
    as it is) and what it holds; None when `source` has no conflicts file. Adds to `problems`."""
    path, raw, found = read_conflicts(source)
    problems.extend(found)
    if path is None or found:
        return "", None
    report = ConflictsReport(path=str(conflicts_file))
    conflicts, found = map_conflicts(raw, path, slugs, report)
    problems.extend(found)
    if not conflicts:
        return "", report
    text, found = merge_conflicts(conflicts_file, conflicts, report)
    problems.extend(found)
    return text, report


def map_conflicts(
    raw: Any, path: Path, slugs: dict[str, str], report: ConflictsReport
) -> tuple[list[Conflict], list[Problem]]:
    """Native conflicts from parsed `_conflicts.json` records, for personas in `slugs`.

    Args:
        raw: the parsed file: a list of `{id, personaA, assumptionA, personaB, assumptionB,
            conflictType, settlingQuestion, relevance}` (or `{"conflicts": [...]}`).
        path: the file, named in problems.
        slugs: persona slug by Faultline persona id; conflicts naming another id are skipped.
        report: counts `found`, `outside` and `invalid` (updated in place).

    Returns:
        The conflicts, most relevant first, and the problems (an error when the file is not a
        list; a warning per invalid record).
    """
    records = raw.get("conflicts") if isinstance(raw, dict) else raw
    if not isinstance(records, list):
        shape = 'write a JSON array of {"id", "personaA", "assumptionA", ...} records'
        return [], [Problem("error", path, "", "expected a list of conflicts", shape)]
    report.found = len(records)
    ranked: list[tuple[float, Conflict]] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, record in enumerate(records):
        label = f"[{index}]" + (f" (id {record.get('id')})" if isinstance(record, dict) else "")
        if isinstance(record, dict):
            missing = [
                str(record.get(key))
                for key in ("personaA", "personaB")
                if str(record.get(key)) not in slugs
            ]
            if missing:
                report.outside += 1
                report.outside_personas = sorted({*report.outside_personas, *missing})
                continue
        conflict, problem = _conflict(record, slugs, path, label)
        if conflict is not None and conflict.id in seen:
            problem = Problem(
                "warning", path, label, f"id {conflict.id!r} repeats an earlier conflict; skipped"
            )
        if problem is not None:
            report.invalid += 1
            problems.append(problem)
            continue
        seen.add(conflict.id)
        ranked.append((_relevance(record), conflict))
    ranked.sort(key=lambda pair: -pair[0])  # stable: equal relevance keeps the file's order
    return [conflict for _, conflict in ranked], problems


def merge_conflicts(
    path: Path, conflicts: list[Conflict], report: ConflictsReport
) -> tuple[str, list[Problem]]:
    """The text of conflicts file `path` with `conflicts` merged in; counts `kept`, `replaced`.

    Records already in the file stay as they are, in place; one with the id of a new conflict is
    replaced by it there. New ids are appended. The file's comments are not kept.
    """
    raw, problem = read_yaml(path) if path.is_file() else (None, None)
    if problem:
        return "", [problem]
    existing = raw.get("conflicts") if isinstance(raw, dict) else raw
    if not isinstance(existing or [], list):
        fix = "fix the file (`conflicts:` and a list of records) or move it away, then import"
        return "", [Problem("error", path, "", "cannot merge: not a list of conflicts", fix)]
    new = {c.id: c.model_dump(mode="json") for c in conflicts}
    merged = []
    for record in existing or []:
        record_id = record.get("id") if isinstance(record, dict) else None
        if isinstance(record_id, str) and record_id in new:
            merged.append(new.pop(record_id))
            report.replaced += 1
        else:
            merged.append(record)
            report.kept += 1
    merged.extend(new.values())
    report.written = len(conflicts)
    text = yaml.safe_dump({"conflicts": merged}, sort_keys=False, allow_unicode=True, width=100)
    return text, []


def _conflict(
    record: Any, slugs: dict[str, str], path: Path, label: str
) -> tuple[Conflict | None, Problem | None]:
    """One record as a `Conflict`, or a warning saying what is wrong with it."""
    if not isinstance(record, dict):
        return None, Problem("warning", path, label, "a conflict must be an object; skipped")
    try:
        conflict_id = slugify(str(record.get("id") or ""))
    except ValueError:
        fix = "give the conflict an id with letters or digits"
        return None, Problem("warning", path, label, "no usable id; skipped", fix)
    fields = {
        "id": conflict_id,
        "persona_a": slugs[str(record.get("personaA"))],
        "assumption_a": strip_index_tag(record.get("assumptionA")),
        "persona_b": slugs[str(record.get("personaB"))],
        "assumption_b": strip_index_tag(record.get("assumptionB")),
        "question": str(record.get("settlingQuestion") or ""),
        "kind": str(record.get("conflictType") or "").strip().lower(),
    }
    try:
        return Conflict.model_validate(fields), None
    except ValidationError as exc:
        details = "; ".join(
            f"{_FAULTLINE_FIELDS.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else 'record'}: "
            f"{e['msg']}"
            for e in exc.errors()
        )
        return None, Problem("warning", path, label, f"{details}; skipped", "fix the record")


def strip_index_tag(value: Any) -> str:
    """An assumption without its leading index tag: "A[3] Rates lead." -> "Rates lead."."""
    return _INDEX_TAG.sub("", str(value or ""), count=1).strip()


def _relevance(record: Any) -> float:
    value = record.get("relevance") if isinstance(record, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
