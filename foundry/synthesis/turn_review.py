"""The quality gate between generation and training: filter turns, write kept and rejected.

`review_turns(config, summary, turns)` runs `foundry.synthesis.turn_filters` over every persona's
turns at once (so two personas cannot hand in the same text) with an attribution classifier fitted
on the real train splits, then rewrites `turns.jsonl` and `rejected.jsonl` atomically per persona.
Rejected rows keep the whole turn plus `reasons`, so nothing is dropped silently.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from foundry.atomic import write_text_atomic
from foundry.config import FoundryConfig
from foundry.data.attribution import fit_attribution
from foundry.data.schemas import DebateTurn
from foundry.logs import get_logger
from foundry.synthesis.turn_filters import TurnCandidate, filter_turns
from foundry.training.datasets import SYNTHETIC_DIRNAME, TURNS_FILENAME

if TYPE_CHECKING:
    from foundry.data.validation import ValidationSummary

logger = get_logger(__name__)

REJECTED_FILENAME = "rejected.jsonl"


def review_turns(
    config: FoundryConfig, summary: ValidationSummary, turns: dict[str, list[DebateTurn]]
) -> dict[str, tuple[int, Counter[str]]]:
    """Filter `turns` (persona -> turns in plan order) and write each persona's two files.

    Returns:
        persona -> (turns kept, rejected count per reason kind such as `too-short`).
    """
    corpora = {p.slug: [item.text for item in p.items] for p in summary.personas}
    candidates = [
        TurnCandidate(key=turn.key, persona=slug, text=turn.text)
        for slug, rows in turns.items()
        for turn in rows
    ]
    verdicts = filter_turns(
        candidates, corpora, config.synthesis.filters, classifier=_classifier(config, summary)
    )
    outcome = {}
    for slug, rows in turns.items():
        kept = [t for t in rows if not verdicts.get(t.key)]
        rejected = [t for t in rows if verdicts.get(t.key)]
        folder = config.data_dir / SYNTHETIC_DIRNAME / slug
        write_text_atomic(folder / TURNS_FILENAME, _jsonl(t.model_dump() for t in kept))
        write_text_atomic(
            folder / REJECTED_FILENAME,
            _jsonl({**t.model_dump(), "reasons": verdicts[t.key]} for t in rejected),
        )
        reasons = Counter(r.split(":", 1)[0] for t in rejected for r in verdicts[t.key])
        outcome[slug] = (len(kept), reasons)
        logger.info(
            "persona %s: %d turn(s) kept, %d rejected %s",
            slug, len(kept), len(rejected), dict(reasons) or "",
        )  # fmt: skip
    return outcome


def _classifier(config: FoundryConfig, summary: ValidationSummary):
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
