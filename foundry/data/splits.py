"""Which of a persona's documents the adapters learn from, which choose things, which judge them.

Public entry points: `assign_splits(items, rule, heldout_topics, topics)` and `document_key(item)`.

Three splits, always by document (an essay and all its chunks, a thread and all its posts), never
by paragraph, so no document is on two sides:

- `test`: touched once per evaluation, for the report and the gates. A document goes here when any
  of its items is *about* a held-out topic (its nearest topic by TF-IDF, the retrieval that frames
  SFT prompts, is one of evaluation's), and otherwise by the rule below.
- `validation`: what every choice is made on (steering layer and strength, early stopping).
- `train`: the rest.

The rule: documents with a date are ordered newest first, and the newest go to test (until
`test_fraction` of the dated items the topic rule left), the next to validation, so the model is
judged on what the persona wrote after what it learned from. A document without a date goes by a
stable hash of persona and document id (under `test_fraction`: test; under the sum of both
fractions: validation), so adding a document never moves another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from foundry.data.framing import nearest_topic_scores
from foundry.data.schemas import CorpusItem, DebateTopic, Split


@dataclass(frozen=True)
class SplitRule:
    test_fraction: float
    validation_fraction: float


def document_key(item: CorpusItem) -> str:
    """The document an item belongs to: its `document` field, or the item itself."""
    return item.document or item.id


def hash_score(persona: str, key: str) -> float:
    """A stable number in [0, 1) from persona and a document id: its place in the hash order."""
    digest = hashlib.sha256(f"{persona}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def topic_heldout_documents(
    items: Sequence[CorpusItem], topics: Sequence[DebateTopic], heldout: Sequence[DebateTopic]
) -> set[str]:
    """Documents with an item whose nearest topic (similarity above 0) is a held-out one."""
    if not heldout or not items:
        return set()
    heldout_ids = {t.id for t in heldout}
    nearest = nearest_topic_scores([i.text for i in items], topics)
    return {
        document_key(item)
        for item, (topic, score) in zip(items, nearest, strict=True)
        if topic is not None and score > 0 and topic.id in heldout_ids
    }


def assign_splits(
    items: list[CorpusItem],
    rule: SplitRule,
    heldout_topics: Sequence[DebateTopic] = (),
    topics: Sequence[DebateTopic] = (),
) -> list[CorpusItem]:
    """`items` with their split set, document by document (see the module docstring).

    With two documents or more, train and test each keep at least one; with three or more,
    validation does too (taken from train's oldest or hash-first documents).
    """
    if not items:
        return []
    documents: dict[str, list[CorpusItem]] = {}
    for item in items:
        documents.setdefault(document_key(item), []).append(item)
    on_topic = topic_heldout_documents(items, topics, heldout_topics)
    split: dict[str, Split] = {key: "test" for key in documents if key in on_topic}
    rest = [key for key in documents if key not in on_topic]
    persona = items[0].persona
    dated = [k for k in rest if _date(documents[k])]
    undated = [k for k in rest if not _date(documents[k])]
    dated.sort(key=lambda k: (_date(documents[k]), hash_score(persona, k)), reverse=True)
    undated.sort(key=lambda k: hash_score(persona, k))
    split.update(_by_date(dated, documents, rule))
    split.update({k: _by_hash(hash_score(persona, k), rule) for k in undated})
    _keep_each_side(split, dated + undated)
    return [item.model_copy(update={"split": split[document_key(item)]}) for item in items]


def _date(document: list[CorpusItem]) -> str:
    """The document's date: its latest item's (ISO dates sort as text)."""
    return max((i.date for i in document), default="")


def _by_hash(score: float, rule: SplitRule) -> Split:
    """An undated document's split from its hash alone: adding documents never moves another."""
    if score < rule.test_fraction:
        return "test"
    return "validation" if score < rule.test_fraction + rule.validation_fraction else "train"


def _by_date(
    ordered: list[str], documents: dict[str, list[CorpusItem]], rule: SplitRule
) -> dict[str, Split]:
    """Walk dated documents newest first: test until its share of their items is reached, then
    validation, then train."""
    total = sum(len(documents[k]) for k in ordered)
    targets: list[tuple[Split, float]] = [
        ("test", rule.test_fraction * total),
        ("validation", rule.validation_fraction * total),
    ]
    result: dict[str, Split] = {}
    filled = 0
    for key in ordered:
        while targets and filled >= targets[0][1]:
            targets.pop(0)
            filled = 0
        if not targets:
            result[key] = "train"
            continue
        result[key] = targets[0][0]
        filled += len(documents[key])
    return result


def _keep_each_side(split: dict[str, Split], order: list[str]) -> None:
    """At least one train and one test document (two or more documents), and one validation
    document (three or more), moved from the side with the most documents: train gives up its
    first in the rule's order (the newest), the others their last."""
    sides: list[Split] = ["train", "test", "validation"]
    for side in sides[: min(len(split), 3)]:
        if side in split.values():
            continue
        counts = {s: sum(v == s for v in split.values()) for s in sides}
        donor = max(sides, key=lambda s: counts[s])
        candidates = [k for k in order if split[k] == donor] or [
            k for k in split if split[k] == donor
        ]
        split[candidates[0] if donor == "train" else candidates[-1]] = side
