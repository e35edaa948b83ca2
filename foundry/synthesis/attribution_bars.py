"""Per-persona attribution bars and the floor of kept turns, so no persona is lost to its corpus.

A persona with a small corpus, or one that writes like a neighbour, has real texts the attribution
classifier often gives to someone else; holding its synthetic turns to a bar its own writing fails
would reject them all. `measure_bars(classifier, real_texts, settings)` measures how each persona's
real validation texts (unseen by the classifier, which is fitted on train) fare and lowers its bar
to what `real_pass_share` of them reach, never above `min_attribution`. `keep_floor(...)` then
keeps the best turns rejected only by attribution (highest own-persona probability) when the
filters left a persona fewer than `min_kept_turns`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from foundry.data.attribution import AttributionClassifier
from foundry.data.textnorm import find_duplicates
from foundry.synthesis.config import FilterConfig
from foundry.synthesis.turn_filters import ATTRIBUTION, TurnCandidate


class AttributionBar(BaseModel):
    """The least own-persona probability a persona's turns need, and the evidence for it."""

    persona: str
    bar: float = Field(description="Least own-persona probability a synthetic turn needs.")
    configured: float = Field(description="`synthesis.filters.min_attribution`.")
    real_texts: int = Field(0, description="The persona's real validation texts measured.")
    real_own_share: float = Field(0.0, description="Share of them attributed to the persona.")
    real_reach: float = Field(
        0.0, description="Own-persona probability `real_pass_share` of them reach."
    )
    neighbour: str = Field("", description="Persona most often predicted when not this one.")

    @property
    def is_lowered(self) -> bool:
        return self.bar < self.configured

    def describe(self, settings: FilterConfig) -> str:
        """One line on where the bar comes from, naming the settings that move it."""
        if not self.real_texts:
            return (
                f"attribution bar {self.bar:.2f} (`synthesis.filters.min_attribution`): no real "
                "validation texts to measure it on"
            )
        own = round(self.real_own_share * self.real_texts)
        read_as = f"{own}/{self.real_texts} of its real validation texts read as itself"
        read_as += f", the others mostly as {self.neighbour}" if self.neighbour else ""
        if not self.is_lowered:
            return (
                f"attribution bar {self.bar:.2f} (`synthesis.filters.min_attribution`): {read_as}"
            )
        return (
            f"attribution bar {self.bar:.2f}, lowered from {self.configured:.2f} "
            f"(`synthesis.filters.min_attribution`): {read_as}, and "
            f"{settings.real_pass_share:.0%} of them reach {self.real_reach:.2f} "
            "(`synthesis.filters.real_pass_share`)"
        )


@dataclass
class FloorResult:
    """What `keep_floor` did for one persona."""

    kept: list[str] = field(default_factory=list)  # keys kept by the floor, best first
    attribution_rejected: int = 0  # turns with an attribution reason
    likely: str = ""  # the persona most of those read as


def measure_bars(
    classifier: AttributionClassifier,
    real_texts: Mapping[str, Sequence[str]],
    settings: FilterConfig,
) -> dict[str, AttributionBar]:
    """Each persona's attribution bar from how its own real texts fare under `classifier`.

    Args:
        classifier: Fitted on the personas' train splits (so validation texts are unseen).
        real_texts: Persona slug -> its real validation texts.
        settings: `min_attribution` (the highest bar) and `real_pass_share`.

    Returns:
        Persona -> its bar: `min_attribution`, or lower where fewer than `real_pass_share` of its
        real texts reach it (then the own-persona probability that share does reach). A persona
        without validation texts keeps `min_attribution`.
    """
    bars = {}
    for persona, texts in real_texts.items():
        configured = settings.min_attribution
        rows = classifier.probabilities(list(texts))
        if not rows:
            bars[persona] = AttributionBar(persona=persona, bar=configured, configured=configured)
            continue
        own = sorted((row.get(persona, 0.0) for row in rows), reverse=True)
        # The highest probability that at least `real_pass_share` of the real texts reach.
        reach = own[max(1, math.ceil(settings.real_pass_share * len(own))) - 1]
        predicted = [_most_likely(row) for row in rows]
        others = Counter(p for p in predicted if p != persona)
        bars[persona] = AttributionBar(
            persona=persona,
            bar=min(configured, reach),
            configured=configured,
            real_texts=len(rows),
            real_own_share=predicted.count(persona) / len(rows),
            real_reach=reach,
            neighbour=others.most_common(1)[0][0] if others else "",
        )
    return bars


def keep_floor(
    candidates: Sequence[TurnCandidate],
    reasons: Mapping[str, Sequence[str]],
    classifier: AttributionClassifier | None,
    settings: FilterConfig,
    accepted: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, FloorResult]:
    """Keep each persona's best attribution-only rejects until it has `min_kept_turns` turns.

    Only turns whose every reason is attribution are eligible (a copy, refusal, duplicate or bad
    length is never kept); the best have the highest own-persona probability, and one that would
    near-duplicate a kept turn is passed over.

    Args:
        candidates: Every persona's turns, in generation order.
        reasons: `filter_turns`' verdicts (an empty list keeps the turn).
        classifier: The attribution classifier the filter used; None keeps nothing more.
        settings: `min_kept_turns` and `near_duplicate_threshold`.
        accepted: Persona slug -> turns kept by earlier runs (a kept turn must not repeat them).

    Returns:
        Persona -> what the floor did, for every persona with an attribution reject.
    """
    kept_texts = [text for texts in (accepted or {}).values() for text in texts]
    kept_texts += [c.text for c in candidates if not reasons[c.key]]
    results: dict[str, FloorResult] = {}
    for persona in dict.fromkeys(c.persona for c in candidates):
        own = [c for c in candidates if c.persona == persona]
        flagged = [c for c in own if any(r.startswith(ATTRIBUTION) for r in reasons[c.key])]
        if classifier is None or not flagged:
            continue
        rows = classifier.probabilities([c.text for c in flagged])
        likely = Counter(_most_likely(row) for row in rows).most_common(1)[0][0]
        result = results[persona] = FloorResult(attribution_rejected=len(flagged), likely=likely)
        need = settings.min_kept_turns - sum(not reasons[c.key] for c in own)
        eligible = [
            (row.get(persona, 0.0), order, c)
            for order, (c, row) in enumerate(zip(flagged, rows, strict=True))
            if all(r.startswith(ATTRIBUTION) for r in reasons[c.key])
        ]
        for _, _, candidate in sorted(eligible, key=lambda e: (-e[0], e[1])):
            if len(result.kept) >= need:
                break
            texts = [*kept_texts, candidate.text]
            if len(kept_texts) in find_duplicates(texts, settings.near_duplicate_threshold):
                continue
            result.kept.append(candidate.key)
            kept_texts.append(candidate.text)
    return results


def _most_likely(row: Mapping[str, float]) -> str:
    return max(row, key=lambda slug: (row[slug], slug))
