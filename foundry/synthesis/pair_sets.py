"""A persona's synthetic turns and preference pairs as files: read, validate, export.

Public entry points: `load_pairs(config, slug)` reads `data/synthetic/<slug>/pairs.jsonl` for
training or, when synthesis has not run, falls back to `cross_persona_pairs(summary, slug)`: pairs
from the corpora alone; `read_turns(config, slug)` reads the accepted turns (`turns.jsonl`);
`export_pairs` writes the pairs of several personas as one TRL or Together file;
`synthetic_folder(config, slug)` is the persona's `data/synthetic/<slug>/`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from foundry.atomic import write_text_atomic
from foundry.config import FoundryConfig
from foundry.data.schemas import DebateTurn, PreferencePair
from foundry.data.validation import validate_personas
from foundry.errors import raise_for_errors
from foundry.logs import get_logger
from foundry.slugs import check_slug
from foundry.synthesis.corpus_pairs import cross_persona_pairs
from foundry.training.datasets import (
    PAIRS_FILENAME,
    SYNTHETIC_DIRNAME,
    TURNS_FILENAME,
    TrainingDataError,
    read_jsonl_records,
    to_together,
    to_trl,
)

logger = get_logger(__name__)


def synthetic_folder(config: FoundryConfig, slug: str) -> Path:
    """The persona's synthetic data folder, `data/synthetic/<slug>/`."""
    return config.data_dir / SYNTHETIC_DIRNAME / check_slug(slug)


def load_pairs(config: FoundryConfig, slug: str) -> list[PreferencePair]:
    """The persona's preference pairs: `data/synthetic/<slug>/pairs.jsonl`, else cross-persona.

    Raises:
        TrainingDataError: a line of pairs.jsonl is not a valid `PreferencePair` for `slug`
            (the message names the file and the line).
        DataError: the corpora have errors (cross-persona fallback).
    """
    path = config.data_dir / SYNTHETIC_DIRNAME / slug / PAIRS_FILENAME
    if not path.is_file():
        summary = validate_personas(config)
        raise_for_errors(summary.problems, f"data in {config.data_dir}")
        pairs = cross_persona_pairs(summary, slug, seed=config.training.seed)
        logger.info("persona %s: %d cross-persona preference pairs", slug, len(pairs))
        return pairs
    pairs = []
    for number, row in read_jsonl_records(path):
        try:
            pair = PreferencePair.model_validate(row)
        except ValidationError as exc:
            raise TrainingDataError(
                f"{path}, line {number}: not a valid preference pair ({_fields(exc)}); fix or "
                "delete the line"
            ) from None
        if pair.persona != slug:
            raise TrainingDataError(
                f"{path}, line {number}: pair is for persona {pair.persona!r}, not {slug!r}; "
                f"move it to data/{SYNTHETIC_DIRNAME}/{pair.persona}/{PAIRS_FILENAME}"
            )
        pairs.append(pair)
    logger.info("persona %s: %d preference pairs from %s", slug, len(pairs), path)
    return pairs


def read_turns(config: FoundryConfig, slug: str) -> list[DebateTurn]:
    """The persona's accepted synthetic turns (`turns.jsonl`); empty when there is none.

    Raises:
        TrainingDataError: a line of turns.jsonl is not a valid `DebateTurn`.
    """
    path = synthetic_folder(config, slug) / TURNS_FILENAME
    if not path.is_file():
        return []
    turns = []
    for number, row in read_jsonl_records(path):
        try:
            turns.append(DebateTurn.model_validate(row))
        except ValidationError as exc:
            raise TrainingDataError(
                f"{path}, line {number}: not a valid debate turn ({_fields(exc)}); this file is "
                "written by `foundry synth`: rerun it, or fix or delete the line"
            ) from None
    return turns


def export_pairs(config: FoundryConfig, slugs: Sequence[str], fmt: str, out: Path) -> int:
    """Write the personas' pairs as one JSONL file in `fmt` (`trl` or `together`); return rows."""
    convert = {"trl": to_trl, "together": to_together}[fmt]
    rows = [
        json.dumps(convert(p), ensure_ascii=False)
        for slug in slugs
        for p in load_pairs(config, slug)
    ]
    write_text_atomic(out, "".join(row + "\n" for row in rows))
    return len(rows)


def _fields(exc: ValidationError) -> str:
    return "; ".join(
        f"`{'.'.join(map(str, e['loc'])) or 'line'}`: {e['msg']}" for e in exc.errors()
    )
