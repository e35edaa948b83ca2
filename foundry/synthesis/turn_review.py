"""The quality gate between generation and training: filter turns, write kept and rejected.

`review_turns(config, summary, turns)` runs `foundry.synthesis.turn_filters` over every persona's
turns at once (so two personas cannot hand in the same text) with an attribution classifier fitted
on the real train splits, then rewrites `turns.jsonl` and `rejected.jsonl` atomically per persona.
Rejected rows keep the whole turn plus `reasons`, so nothing is dropped silently.

Attribution holds each persona to a bar its own real validation texts pass, and a persona the
filters leave with fewer than `synthesis.filters.min_kept_turns` keeps its best attribution
rejects (`foundry.synthesis.attribution_bars`): a small or look-alike corpus never loses a persona
all its turns. Each persona's review says what happened and which setting changes it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from foundry.atomic import write_text_atomic
from foundry.config import FoundryConfig
from foundry.data.attribution import AttributionClassifier, fit_attribution
from foundry.data.schemas import DebateTurn
from foundry.logs import get_logger
from foundry.synthesis.attribution_bars import (
    AttributionBar,
    FloorResult,
    keep_floor,
    measure_bars,
)
from foundry.synthesis.config import FilterConfig
from foundry.synthesis.turn_filters import TurnCandidate, filter_turns
from foundry.training.datasets import SYNTHETIC_DIRNAME, TURNS_FILENAME

if TYPE_CHECKING:
    from foundry.data.validation import ValidationSummary

logger = get_logger(__name__)

REJECTED_FILENAME = "rejected.jsonl"


class TurnReview(BaseModel):
    """One persona's review: what was kept, what was rejected and why, and its attribution bar."""

    kept: int = 0
    rejected: dict[str, int] = Field(default_factory=dict, description="Count per reason kind.")
    kept_by_floor: int = 0
    attribution_bar: AttributionBar | None = None
    notes: list[str] = Field(default_factory=list, description="What happened, and the setting.")


def review_turns(
    config: FoundryConfig, summary: ValidationSummary, turns: dict[str, list[DebateTurn]]
) -> dict[str, TurnReview]:
    """Filter `turns` (persona -> turns in plan order) and write each persona's two files.

    Returns:
        persona -> its review (turns kept, rejected count per reason kind such as `too-short`,
        turns kept by the floor, the attribution bar, and notes for the user).
    """
    settings = config.synthesis.filters
    corpora = {p.slug: [item.text for item in p.items] for p in summary.personas}
    candidates = [
        TurnCandidate(key=turn.key, persona=slug, text=turn.text)
        for slug, rows in turns.items()
        for turn in rows
    ]
    classifier = _classifier(config, summary)
    bars = {}
    if classifier is not None:
        validation = {
            p.slug: [i.text for i in p.items if i.split == "validation"]
            for p in summary.personas
            if p.slug in turns
        }
        bars = measure_bars(classifier, validation, settings)
    verdicts = filter_turns(
        candidates, corpora, settings, classifier=classifier,
        bars={slug: bar.bar for slug, bar in bars.items()},
    )  # fmt: skip
    floors = keep_floor(candidates, verdicts, classifier, settings)
    outcome = {}
    for slug, rows in turns.items():
        floor = floors.get(slug, FloorResult())
        rescued = set(floor.kept)
        kept = [t for t in rows if not verdicts.get(t.key) or t.key in rescued]
        rejected = [t for t in rows if verdicts.get(t.key) and t.key not in rescued]
        folder = config.data_dir / SYNTHETIC_DIRNAME / slug
        write_text_atomic(folder / TURNS_FILENAME, _jsonl(t.model_dump() for t in kept))
        write_text_atomic(
            folder / REJECTED_FILENAME,
            _jsonl({**t.model_dump(), "reasons": verdicts[t.key]} for t in rejected),
        )
        reasons = Counter(r.split(":", 1)[0] for t in rejected for r in verdicts[t.key])
        review = TurnReview(
            kept=len(kept), rejected=dict(reasons), kept_by_floor=len(rescued),
            attribution_bar=bars.get(slug),
        )  # fmt: skip
        review.notes = _notes(review, len(rows), floor, settings, folder / REJECTED_FILENAME)
        outcome[slug] = review
        logger.info(
            "persona %s: %d turn(s) kept (%d by the floor), %d rejected %s",
            slug, len(kept), len(rescued), len(rejected), dict(reasons) or "",
        )  # fmt: skip
        for note in review.notes:
            logger.warning("persona %s: %s", slug, note)
    return outcome


def _notes(
    review: TurnReview, made: int, floor: FloorResult, settings: FilterConfig, rejected_path: Path
) -> list[str]:
    """What a user should know about one persona's review, each with the setting that changes it."""
    notes = []
    if review.attribution_bar is not None and review.attribution_bar.is_lowered:
        notes.append(review.attribution_bar.describe(settings))
    if floor.kept:
        notes.append(
            f"{made} turns made, {floor.attribution_rejected} rejected by attribution: most read "
            f"as {floor.likely}; kept the best {len(floor.kept)} by own-persona probability "
            f"(`synthesis.filters.min_kept_turns` = {settings.min_kept_turns})"
        )
    if review.kept < min(made, settings.min_kept_turns):
        why = ", ".join(f"{k} {v}" for k, v in sorted(review.rejected.items())) or "nothing"
        notes.append(
            f"only {review.kept} of {made} turns kept, below `synthesis.filters.min_kept_turns` "
            f"({settings.min_kept_turns}); the floor keeps only turns rejected by attribution "
            f"alone, and the rest failed {why} (see {rejected_path})"
            + ("; `foundry pairs` will use corpus pairs for it" if not review.kept else "")
        )
    return notes


def _classifier(config: FoundryConfig, summary: ValidationSummary) -> AttributionClassifier | None:
    """Who-wrote-this on the real train splits; None when it cannot or need not be fitted."""
    if config.synthesis.filters.min_attribution <= 0:
        return None
    texts = [(i.text, p.slug) for p in summary.personas for i in p.items if i.split == "train"]
    if len({slug for _, slug in texts}) < 2:
        logger.warning(
            "attribution filter off: it needs the corpora of two personas or more (have %d)",
            len({slug for _, slug in texts}),
        )
        return None
    return fit_attribution([t for t, _ in texts], [s for _, s in texts], seed=config.training.seed)


def _jsonl(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
