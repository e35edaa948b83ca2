"""Debate transcripts as monitoring reads them: one JSON object per line, one turn each.

Entry points: `read_transcript(path, known)` (turns, with errors that name the file and line) and
`transcript_rows(turns)` (each turn read as a response to its prompt, or to the turn before it).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundry.steering.activations import ResponseRow
from foundry.steering.projections import MonitoringError

DEFAULT_PROMPT = "Continue the debate."


@dataclass(frozen=True)
class Turn:
    """One line of a transcript: who spoke (persona slug), what, and optionally to what."""

    index: int  # 0-based position among the transcript's turns
    speaker: str
    text: str
    prompt: str = ""


def read_transcript(path: Path, known: Collection[str]) -> list[Turn]:
    """Turns of a JSONL transcript: `speaker`/`persona`, `text`/`content`, optional `prompt`.

    Raises:
        MonitoringError: naming the file and line, for bad JSON, a missing or empty field, a
            speaker not in `known`, or a transcript with no turns.
    """
    turns: list[Turn] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            message = f"{where}: not valid JSON ({exc.msg}); write one JSON object per line"
            raise MonitoringError(message) from None
        if not isinstance(record, dict):
            raise MonitoringError(f"{where}: expected a JSON object, got {type(record).__name__}")
        speaker = _field(record, ("speaker", "persona"), where)
        text = _field(record, ("text", "content"), where)
        if speaker not in known:
            raise MonitoringError(
                f"{where}: unknown speaker {speaker!r}; known personas: "
                f"{', '.join(sorted(known)) or 'none'}"
            )
        prompt = record.get("prompt") or ""
        if not isinstance(prompt, str):
            raise MonitoringError(f"{where}: `prompt` must be a string, got {prompt!r}")
        turns.append(Turn(len(turns), speaker, text, prompt))
    if not turns:
        raise MonitoringError(f"{path}: the transcript has no turns; add one JSON object per line")
    return turns


def _field(record: dict[str, Any], names: tuple[str, str], where: str) -> str:
    """The first of `names` present in `record`, as a non-empty string."""
    value = next((record[n] for n in names if n in record), None)
    if not isinstance(value, str) or not value.strip():
        raise MonitoringError(
            f"{where}: `{names[0]}` (or `{names[1]}`) must be a non-empty string, got {value!r}"
        )
    return value


def transcript_rows(turns: Sequence[Turn]) -> list[ResponseRow]:
    """Each turn as a response to its prompt, else to the previous turn, else a generic cue."""
    rows = []
    for k, turn in enumerate(turns):
        prompt = turn.prompt or (turns[k - 1].text if k else DEFAULT_PROMPT)
        rows.append(ResponseRow(prompt, turn.text))
    return rows
