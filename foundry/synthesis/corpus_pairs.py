"""Preference pairs from the corpora alone: for training when synthesis has not run, and for
`foundry pairs` when synthesis kept no usable turn for a persona.

`cross_persona_pairs(summary, slug, max_pairs, seed)`: for each of the persona's corpus items, its
own text is chosen and another persona's text on the nearest topic is rejected. The pair's split
is the chosen item's split.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from foundry.data.framing import item_prompts
from foundry.data.schemas import CorpusItem, PreferencePair
from foundry.errors import DataError

if TYPE_CHECKING:
    from foundry.data.validation import ValidationSummary

STRATEGY = "cross_persona"


def cross_persona_pairs(
    summary: ValidationSummary, slug: str, max_pairs: int = 200, seed: int = 0
) -> list[PreferencePair]:
    """Pairs whose rejected answer is another persona's real text on the same topic.

    For each of the persona's items (its split becomes the pair's split) the prompt is the item's
    debate prompt and the rejected text is another persona's item of the same split: one with the
    same nearest topic when there is one, the most similar by TF-IDF among those (else among all),
    preferring items used least often so the rejections vary.

    Args:
        summary: validated personas and topics, including the others to draw rejections from.
        slug: the persona the pairs are for.
        max_pairs: keep at most this many, sampled per split in proportion (seeded).
        seed: seed for the sample and for ties.

    Returns:
        Pairs in the persona's item order; the same inputs always give the same pairs.

    Raises:
        DataError: `slug` is not in `summary`, or no other persona has corpus items.
    """
    personas = {p.slug: p for p in summary.personas}
    if slug not in personas:
        raise DataError(f"persona {slug!r} is not among {', '.join(personas) or 'no personas'}")
    # Test documents are evaluation's: never a chosen or a rejected text.
    others = [item for p in summary.personas if p.slug != slug for item in _learnable(p.items)]
    if not others:
        raise DataError(
            f"cross-persona pairs for {slug} need another persona's corpus to reject; add a "
            "second persona, or write data/synthetic/<slug>/pairs.jsonl"
        )
    own = _sample(_learnable(personas[slug].items), max_pairs, seed)
    # Prompts over each persona's whole corpus, as SFT frames them (TF-IDF weights depend on it).
    own_prompts = item_prompts(personas[slug].items, summary.topic_split.framing)
    # Ids are unique within a persona only, so the others' prompts go by position.
    other_prompts = [
        framed[item.id]
        for p in summary.personas
        if p.slug != slug
        for framed in [item_prompts(p.items, summary.topic_split.framing)]
        for item in _learnable(p.items)
    ]
    similarity = _similarity([i.text for i in own], [i.text for i in others])
    uses = [0] * len(others)
    rng = random.Random(seed)
    tiebreak = [rng.random() for _ in others]
    pairs = []
    for row, item in enumerate(own):
        prompt = own_prompts[item.id]
        candidates = [j for j, other in enumerate(others) if other.split == item.split]
        candidates = candidates or list(range(len(others)))
        same_topic = [j for j in candidates if other_prompts[j] == prompt]
        pool = same_topic or candidates
        best = min(pool, key=lambda j: (uses[j], -similarity[row, j], tiebreak[j]))
        uses[best] += 1
        pairs.append(_pair(slug, prompt, item, others[best]))
    return pairs


def _pair(slug: str, prompt: str, chosen: CorpusItem, rejected: CorpusItem) -> PreferencePair:
    return PreferencePair(
        persona=slug,
        prompt=prompt,
        chosen=chosen.text,
        rejected=rejected.text,
        strategy=STRATEGY,
        provenance={
            "chosen_id": chosen.id,
            "rejected_id": rejected.id,
            "rejected_persona": rejected.persona,
        },
        split=chosen.split or "train",
    )


def _learnable(items: Sequence[CorpusItem]) -> list[CorpusItem]:
    """Train and validation items: everything but the test split."""
    return [i for i in items if i.split != "test"]


def _sample(items: Sequence[CorpusItem], max_pairs: int, seed: int) -> list[CorpusItem]:
    """At most `max_pairs` items, each split kept in proportion (validation keeps at least one)."""
    if len(items) <= max_pairs:
        return list(items)
    rng = random.Random(seed)
    evaluation = [i for i in items if i.split == "validation"]
    eval_quota = min(len(evaluation), max(1, round(max_pairs * len(evaluation) / len(items))))
    train = [i for i in items if i.split != "validation"]
    chosen = set(rng.sample([i.id for i in evaluation], eval_quota))
    chosen |= set(rng.sample([i.id for i in train], min(len(train), max_pairs - eval_quota)))
    return [i for i in items if i.id in chosen]


def _similarity(rows: list[str], columns: list[str]):
    """TF-IDF cosine similarity of each row text to each column text (a dense array)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True)
    matrix = vectorizer.fit_transform(rows + columns)
    return (matrix[: len(rows)] @ matrix[len(rows) :].T).toarray()
