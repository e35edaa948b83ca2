"""Position rows: training examples that state what a persona believes, not only how it sounds.

Measured on SmolLM2 (issue 18): training on a persona's corpus teaches its voice within minutes and
barely moves its beliefs. A position of the contract (`claim`, `counterclaim`, `stance`) says what
the persona holds; this module turns each position into answers to the debate prompts of its
topic, in which the persona states the side it holds, how it reasons and what would change its
mind (the flip condition closest in words to the position). For DPO, the same answer with the
opposite side is the rejected one, so the pair differs in the belief alone.

What stays out: a position whose nearest topic is held-out (its stance is evaluation's, and the
report's stance and belief figures use only such untrained positions), held-out prompts, and the
conflicts file (their questions and assumption wording are test data). A position on a dev topic
gives validation rows.

Public entry points: `position_topics(contract, split)`, `position_rows(contract, split)` and
`first_prompt_each(rows)` (DPO's share).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from foundry.data.framing import TopicSplit, debate_prompt, nearest_topics
from foundry.data.schemas import DebateTopic, PersonaContract, Position

TEMPLATES = (
    "{held} That is where I stand, with about {confidence}% confidence. {method}{flip}",
    "My answer: {held} {method}Others argue that {other_lower} I do not accept that. {flip}",
    "I hold this: {held} I put my confidence at about {confidence}%. {method}{flip}",
)


@dataclass(frozen=True)
class PositionRow:
    """One prompt answered holding the persona's side (`chosen`) and the other side (`rejected`)."""

    position: str
    prompt: str
    chosen: str
    rejected: str
    split: str  # train | validation


def position_key(position: Position, index: int) -> str:
    """The position's id, or its index in the contract when it has none (as evaluation keys it)."""
    return position.id or str(index)


def position_topics(
    contract: PersonaContract, split: TopicSplit
) -> dict[str, tuple[str, list[DebateTopic]]]:
    """position key -> (topic role, the topics of its nearest topic's group), for every position
    with a counterclaim. The role is `heldout` when the nearest of all topics is held-out."""
    topics = split.every
    positions = [(i, p) for i, p in enumerate(contract.positions) if p.counterclaim]
    texts = [f"{p.claim} {p.counterclaim}" for _, p in positions]
    found = {}
    for (index, position), topic in zip(positions, nearest_topics(texts, topics), strict=True):
        if topic is None:
            continue
        group = [t for t in topics if t.group_key == topic.group_key]
        found[position_key(position, index)] = (split.role(topic.id), group)
    return found


def trained_positions(contract: PersonaContract, split: TopicSplit) -> set[str]:
    """Keys of the positions that position rows teach (nearest topic not held-out)."""
    return {k for k, (role, _) in position_topics(contract, split).items() if role != "heldout"}


def position_rows(contract: PersonaContract, split: TopicSplit) -> list[PositionRow]:
    """Each trainable position answered on each prompt of its topic group, in contract order.

    Rows of dev-topic positions are validation rows; held-out positions give none.
    """
    located = position_topics(contract, split)
    rows = []
    for index, position in enumerate(contract.positions):
        key = position_key(position, index)
        if key not in located or located[key][0] == "heldout":
            continue
        role, group = located[key]
        held, other = _sides(position)
        for topic in group:
            prompt = debate_prompt(topic)
            template = TEMPLATES[_pick(contract.name, key, topic.id, len(TEMPLATES))]
            fields = _fields(contract, position, key, topic.id)
            rows.append(
                PositionRow(
                    position=key,
                    prompt=prompt,
                    chosen=_fill(template, held, other, fields),
                    rejected=_fill(template, other, held, fields),
                    split="validation" if role == "dev" else "train",
                )
            )
    return rows


def first_prompt_each(rows: Sequence[PositionRow]) -> list[PositionRow]:
    """One row per position (its first prompt): what DPO takes. A pair costs about three SFT
    examples of compute, and its contrast (the held side over the other) is the same on every
    prompt of the group; SFT takes them all."""
    seen: set[str] = set()
    return [row for row in rows if not (row.position in seen or seen.add(row.position))]


def _sides(position: Position) -> tuple[str, str]:
    """(the statement the persona holds, the one it rejects)."""
    counter = position.counterclaim or ""
    return (position.claim, counter) if position.stance == "agree" else (counter, position.claim)


def _fields(contract: PersonaContract, position: Position, key: str, topic: str) -> dict[str, str]:
    method = contract.reasoning_method
    how = ""
    if method is not None and method.name:
        step = method.steps[_pick(key, topic, "step", len(method.steps))] if method.steps else ""
        how = f"I get there by {method.name[0].lower()}{method.name[1:]}"
        how += f": {_lower_first(step).rstrip('.')}. " if step else ". "
    flip = _closest(f"{position.claim} {position.counterclaim}", contract.flip_conditions)
    return {
        "confidence": str(round(position.confidence * 100)),
        "method": how,
        "flip": f"I would change my mind if this happened: {_lower_first(flip)}" if flip else "",
    }


def _closest(text: str, candidates: Sequence[str]) -> str:
    """The candidate sharing the most TF-IDF weight with `text` (the first on a tie; "" if none)."""
    if not candidates:
        return ""
    from sklearn.feature_extraction.text import TfidfVectorizer

    matrix = TfidfVectorizer(stop_words="english").fit_transform([text, *candidates])
    return candidates[int((matrix[1:] @ matrix[0].T).toarray().ravel().argmax())]


def _fill(template: str, held: str, other: str, fields: dict[str, str]) -> str:
    text = template.format(held=held, other_lower=_lower_first(other), **fields)
    return " ".join(text.split())


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def _pick(*parts: str | int) -> int:
    """A stable choice among `parts[-1]` options, from the other parts."""
    *keys, count = parts
    digest = hashlib.sha256("\0".join(map(str, keys)).encode()).digest()
    return int.from_bytes(digest[:4], "big") % max(int(count), 1)
