"""Reasoning measured on disagreements: conflict fidelity and answer divergence.

A conflict (`data/conflicts.yaml`) names two personas, the assumption each takes for granted, and
a question that would settle it. Every persona answers every conflict's question as one more
held-out prompt (`conflict_topic`); this module turns the two sides' answers into
`ConflictFidelity`:

- likelihood: after reading an answer, does the bare base model find the persona's own assumption
  more likely than the opponent's? The log-likelihood of an assumption as a continuation of the
  answer is the difference of two scored rows (answer + assumption, answer alone), divided by the
  tokens the assumption adds (`fidelity_rows`, `continuation_nll`).
- embedding: is the answer's sentence embedding closer to the own assumption?
- answer_cosine: how alike the two sides' answers are (the homogeneity problem, measured where
  the personas disagree).

Conflicts also give the stance metric positions with a counterclaim (`stance_items`). Public entry
points: `conflict_topic`, `stance_items`, `conflict_rows`, `conflict_fidelity`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from foundry.data.framing import BASE_ADAPTER, GENERIC_PROMPT
from foundry.data.schemas import Conflict, DebateTopic
from foundry.evaluation.intervals import bootstrap_interval
from foundry.evaluation.schema import CONFLICT_PREFIX, ConflictFidelity
from foundry.steering.variants import ResolvedVariant
from foundry.training.scoring import ScoreRow

Tag = tuple[str, ...]
Embed = Callable[[list[str]], tuple[np.ndarray, str]]
CONFLICT_GROUP = "conflicts"
SEPARATOR = "\n\n"  # between an answer and the assumption scored as its continuation


@dataclass(frozen=True)
class Side:
    """One persona's answer to a conflict's question, with what it should and should not hold."""

    conflict: Conflict
    persona: str
    prompt: str
    answer: str
    own: str
    other: str


def conflict_topic(conflict: Conflict) -> DebateTopic:
    """The conflict's question as a held-out prompt (topic id `conflict-<id>`)."""
    return DebateTopic(id=topic_id(conflict), prompt=conflict.question, group=CONFLICT_GROUP)


def topic_id(conflict: Conflict) -> str:
    return f"{CONFLICT_PREFIX}{conflict.id}"


def stance_items(conflicts: Sequence[Conflict], slug: str) -> list[tuple[str, str, str, str]]:
    """(key, claim, counterclaim, stance) for each conflict `slug` takes part in.

    Both sides share one claim (`assumption_a`, countered by `assumption_b`): persona A agrees
    with it, persona B disagrees, so the stance metric's divergence sees them as a pair that
    should prefer opposite sides.
    """
    items = []
    for conflict in conflicts:
        if slug in (conflict.persona_a, conflict.persona_b):
            stance = "agree" if slug == conflict.persona_a else "disagree"
            items.append((topic_id(conflict), conflict.assumption_a, conflict.assumption_b, stance))
    return items


def conflict_rows(
    conflicts: Sequence[Conflict], variant: ResolvedVariant, answers: Sequence[dict[str, Any]]
) -> list[tuple[Tag, ScoreRow]]:
    """Every scored row the conflicts need from one persona's variant: its stance rows (under the
    variant, like the contract's positions) and the base model's rows on its answers."""
    slug, steer = variant.persona, (variant.steer,) if variant.steer else ()
    rows = [
        (
            ("stance", slug, key, side),
            ScoreRow(GENERIC_PROMPT, text, variant.adapter, variant.system, steer),
        )
        for key, claim, counter, _ in stance_items(conflicts, slug)
        for side, text in (("claim", claim), ("counter", counter))
    ]
    mine = [row for row in answers if row["persona"] == slug]
    return rows + fidelity_rows(answer_sides(conflicts, mine))


def answer_sides(conflicts: Sequence[Conflict], answers: Sequence[dict[str, Any]]) -> list[Side]:
    """Each answer to a conflict's question by one of its two personas, in conflict order."""
    by_key = {(row["topic_id"], row["persona"]): row for row in answers}
    sides = []
    for conflict in conflicts:
        pairs = (
            (conflict.persona_a, conflict.assumption_a, conflict.assumption_b),
            (conflict.persona_b, conflict.assumption_b, conflict.assumption_a),
        )
        for persona, own, other in pairs:
            row = by_key.get((topic_id(conflict), persona))
            if row is not None:
                answer = row["answer"] or " "
                sides.append(Side(conflict, persona, row["prompt"], answer, own, other))
    return sides


def fidelity_rows(sides: Sequence[Side]) -> list[tuple[Tag, ScoreRow]]:
    """Three rows per answer under the bare base model (no system prompt, no steering): the
    answer alone, and the answer continued by the own and by the opponent's assumption."""
    rows = []
    for side in sides:
        tag = ("conflict", side.conflict.id, side.persona)
        for part, completion in (
            ("answer", side.answer),
            ("own", side.answer + SEPARATOR + side.own),
            ("other", side.answer + SEPARATOR + side.other),
        ):
            rows.append(((*tag, part), ScoreRow(side.prompt, completion, BASE_ADAPTER)))
    return rows


def continuation_nll(totals: Mapping[Tag, Sequence[float]], tag: Tag, part: str) -> float | None:
    """Mean NLL per token of what `part` adds to the answer (None when the row was cut short)."""
    with_part, alone = totals.get((*tag, part)), totals.get((*tag, "answer"))
    if with_part is None or alone is None:
        return None
    tokens = with_part[1] - alone[1]
    return (with_part[0] - alone[0]) / tokens if tokens > 0 else None


def conflict_fidelity(
    conflicts: Sequence[Conflict],
    answers: Sequence[dict[str, Any]],
    totals: Mapping[Tag, Sequence[float]],
    embed: Embed,
    seed: int = 0,
) -> ConflictFidelity | None:
    """Conflict fidelity and answer divergence of one variant's answers.

    Args:
        conflicts: the conflicts whose questions were asked.
        answers: the variant's answer rows ({persona, topic_id, prompt, answer}).
        totals: (summed NLL, tokens) by tag of the rows `fidelity_rows` made for these answers.
        embed: texts -> (L2-normalised rows, backend), e.g. the evaluation's cached embeddings.
        seed: the bootstrap's seed.

    Returns:
        The fidelity over conflicts both of whose personas answered (a tie counts half), with
        95 % intervals resampling conflicts; None when no conflict has both answers.
    """
    sides = answer_sides(conflicts, answers)
    answered = Counter(s.conflict.id for s in sides)
    sides = [s for s in sides if answered[s.conflict.id] == 2]  # both personas answered
    if not sides:
        return None
    likely: list[tuple[Side, float]] = []
    for side in sides:
        tag = ("conflict", side.conflict.id, side.persona)
        own, other = continuation_nll(totals, tag, "own"), continuation_nll(totals, tag, "other")
        if own is not None and other is not None:
            likely.append((side, _prefers(-own, -other)))
    closer, cosines = _embedding_votes(sides, embed)
    by_kind: dict[str, list[float]] = defaultdict(list)
    for side, vote in likely:
        by_kind[side.conflict.kind].append(vote)
    return ConflictFidelity(
        conflicts=len({s.conflict.id for s in sides}),
        answers=len(sides),
        likelihood=_mean([v for _, v in likely]),
        likelihood_interval=_interval(likely, seed),
        embedding=_mean([v for _, v in closer]),
        embedding_interval=_interval(closer, seed),
        by_kind={kind: round(float(np.mean(v)), 4) for kind, v in sorted(by_kind.items())},
        answer_cosine=_mean([v for _, v in cosines]),
        answer_cosine_interval=_interval(cosines, seed),
    )


def _embedding_votes(
    sides: Sequence[Side], embed: Embed
) -> tuple[list[tuple[Side, float]], list[tuple[Side, float]]]:
    """Per answer: is it closer to its own assumption? Per conflict (its A side): the cosine
    between the two answers. One embedding batch for every text."""
    texts = list(dict.fromkeys(t for s in sides for t in (s.answer, s.own, s.other)))
    matrix, _ = embed(texts)
    vector = {text: matrix[i] for i, text in enumerate(texts)}

    def cosine(a: str, b: str) -> float:
        return float(vector[a] @ vector[b])

    closer = [(s, _prefers(cosine(s.answer, s.own), cosine(s.answer, s.other))) for s in sides]
    answer_of = {(s.conflict.id, s.persona): s.answer for s in sides}
    cosines = [
        (s, cosine(s.answer, answer_of[(s.conflict.id, s.conflict.persona_b)]))
        for s in sides
        if s.persona == s.conflict.persona_a
    ]
    return closer, cosines


def _prefers(own: float, other: float) -> float:
    """1 when the own side scores higher, 0 when lower, a half for a tie (so chance is 0.5)."""
    return 1.0 if own > other else 0.0 if own < other else 0.5


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def _interval(votes: Sequence[tuple[Side, float]], seed: int) -> list[float] | None:
    return bootstrap_interval([v for _, v in votes], [s.conflict.id for s, _ in votes], seed=seed)
