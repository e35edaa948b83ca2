"""An append-only JSONL file of generations keyed by their cache key: what was paid for is kept.

Each finished generation is appended as one line with a single `write` on an `O_APPEND` file
descriptor and fsynced before the next request is started, so a killed run loses at most the
request in flight. A line cut short by a kill (the last one, without its newline) is dropped on
the next load and the file is repaired; a damaged line anywhere else is an error naming the line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from foundry.logs import get_logger
from foundry.synthesis.jobs import (
    Budget,
    GenerationJob,
    GenerationResult,
    ProgressHook,
    Provider,
    SynthesisError,
)
from foundry.synthesis.plan import prompt_hash

logger = get_logger(__name__)

GENERATIONS_FILENAME = "generations.jsonl"


class GenerationCache:
    """The generations of one file, loaded once; `append` saves a new one durably."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}
        if path.is_file():
            self._load()

    def __contains__(self, key: object) -> bool:
        return key in self.rows

    def get(self, key: str) -> dict[str, Any] | None:
        return self.rows.get(key)

    def append(self, row: dict[str, Any]) -> None:
        """Append `row` (it must carry `key`) as one line, durably, before returning."""
        data = (json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        self.rows[row["key"]] = row

    def _load(self) -> None:
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        complete, tail = lines[:-1], lines[-1]
        for number, line in enumerate(complete, start=1):
            if line.strip():
                self._add(line, number)
        if tail.strip():
            # The last write of a killed run: it was never acknowledged, so drop it.
            logger.warning(
                "%s: dropping an unfinished last line (%d bytes) left by an interrupted run",
                self.path,
                len(tail),
            )
            with self.path.open("r+b") as handle:
                handle.truncate(len(raw) - len(tail))

    def _add(self, line: bytes, number: int) -> None:
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SynthesisError(
                f"{self.path}, line {number}: not a JSON object; this file is written by "
                "`foundry synth`: delete the line (that generation is made again) or the file"
            ) from None
        if not isinstance(row, dict) or not isinstance(row.get("key"), str):
            raise SynthesisError(
                f"{self.path}, line {number}: a generation needs a string `key`; delete the line"
            )
        self.rows[row["key"]] = row


@dataclass(frozen=True)
class CachedCall:
    """A job for `run_cached`: which persona's cache it lives in, and its row's extra fields."""

    persona: str
    job: GenerationJob
    fields: dict[str, Any]


def run_cached(
    calls: Sequence[CachedCall],
    engine: Provider,
    caches: Mapping[str, GenerationCache],
    budget: Budget,
    progress: Callable[[str, int], ProgressHook] | None = None,
    label: str = "generations",
) -> dict[str, str]:
    """Generate the calls their caches lack (each saved as it arrives); return key -> text.

    Calls that failed or did not fit the budget are absent from the result.
    """
    by_key = {call.job.key: call for call in calls}
    missing = [c.job for c in calls if c.job.key not in caches[c.persona]]

    def save(job: GenerationJob, result: GenerationResult) -> None:
        call = by_key[job.key]
        caches[call.persona].append(generation_row(job, result) | call.fields)

    hook = progress(label, len(missing)) if progress else None
    report = engine.generate(missing, save, budget, hook)
    if report.failed:
        logger.warning("%s: %d request(s) failed", label, len(report.failed))
    return {
        key: caches[call.persona].rows[key]["text"]
        for key, call in by_key.items()
        if key in caches[call.persona]
    }


def generation_row(job: GenerationJob, result: GenerationResult) -> dict[str, Any]:
    """What every cached generation records: text, provider, model, prompt hash, usage, cost."""
    usage = result.usage
    return {
        "key": job.key,
        "persona": job.persona,
        "text": result.text,
        "provider": result.provider,
        "model": result.model,
        "prompt_hash": prompt_hash(job.system, job.user),
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cost_usd": round(result.cost_usd, 8),
        "duration_s": result.duration_s,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
