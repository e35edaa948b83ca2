"""Debate transcripts: one JSON object per turn, one file per debate, in the format `foundry
monitor` reads (`speaker`, `text`, `prompt`), plus what the debate measures need.

Entry points: `DebateSpec` (what is debated, by whom), `TurnRecord` (one line), and
`write_transcript(path, records)` / `read_records(path)`. A transcript is written whole and
atomically once its debate is done, so a failed or interrupted run never leaves half a file where
an earlier one was.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from foundry.atomic import write_text_atomic
from foundry.data.schemas import Conflict
from foundry.debate.protocol import FinalPosition, Stance
from foundry.errors import FoundryError


class DebateError(FoundryError):
    """A debate cannot be set up or run (named persona, conflict, file or target)."""


class DebateSpec(BaseModel):
    """One debate: its question, its debaters (slugs, in speaking order) and its conflict."""

    id: str
    question: str
    personas: list[str] = Field(min_length=2)
    conflict: Conflict | None = None

    @classmethod
    def for_question(cls, question: str, personas: list[str]) -> DebateSpec:
        digest = hashlib.sha256(question.encode()).hexdigest()[:10]
        return cls(id=f"q-{digest}", question=question, personas=personas)

    @classmethod
    def for_conflict(cls, conflict: Conflict) -> DebateSpec:
        return cls(
            id=conflict.id,
            question=conflict.question,
            personas=[conflict.persona_a, conflict.persona_b],
            conflict=conflict,
        )


class TurnRecord(BaseModel):
    """One turn of a transcript."""

    debate_id: str
    round: int = Field(ge=1)
    speaker: str
    variant: str
    target: str
    text: str
    prompt: str = Field(description="The user turn the speaker answered.")
    question: str
    conflict_id: str = ""
    tokens: int = Field(0, description="Tokens of the turn.")
    latency_s: float = Field(0.0, description="Seconds from request to turn (a round's batch).")
    seed: int = 0
    draft: str = Field("", description="The turn before the critique pass revised it.")
    stances: list[Stance] = Field(default_factory=list)
    final: FinalPosition | None = None


def transcript_path(folder: Path, debate_id: str, variant: str) -> Path:
    return folder / f"{debate_id}.{variant.replace('+', '-')}.jsonl"


def write_transcript(path: Path, records: list[TurnRecord]) -> None:
    """The debate's turns, one JSON line each, written atomically."""
    text = "".join(record.model_dump_json() + "\n" for record in records)
    write_text_atomic(path, text)


def read_records(path: Path) -> list[TurnRecord]:
    """A transcript written by `write_transcript`.

    Raises:
        DebateError: naming the file and line of a record that is not a turn.
    """
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(TurnRecord.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise DebateError(f"{path}, line {number}: not a debate turn ({exc})") from None
    return records
