"""Splits that hold out for real: by document, newest documents last, held-out topics kept out."""

from __future__ import annotations

from foundry.data.framing import nearest_topics
from foundry.data.schemas import CorpusItem, DebateTopic
from foundry.data.splits import SplitRule, assign_splits
from foundry.data.validation import validate_personas
from foundry.synthesis.corpus_pairs import cross_persona_pairs
from foundry.training.datasets import base_documents, sft_examples

RULE = SplitRule(test_fraction=0.2, validation_fraction=0.2)


def _item(item_id: str, text: str = "", date: str = "", document: str = "") -> CorpusItem:
    text = text or f"Entry {item_id} about nothing in particular {item_id}."
    return CorpusItem(id=item_id, persona="wren", text=text, date=date, document=document)


def test_no_document_is_split_across_splits() -> None:
    items = [_item(f"d{d}-c{c}", document=f"essays.md#{d}") for d in range(12) for c in range(4)]

    split = {i.id: i.split for i in assign_splits(items, RULE)}

    for d in range(12):
        assert len({split[f"d{d}-c{c}"] for c in range(4)}) == 1
    assert set(split.values()) == {"train", "validation", "test"}


def test_dated_documents_put_the_newest_in_test_then_validation() -> None:
    items = [_item(f"p{n:02d}", date=f"2024-{1 + n // 28:02d}-{1 + n % 28:02d}") for n in range(40)]

    by_split: dict[str, list[str]] = {}
    for item in assign_splits(items, RULE):
        by_split.setdefault(item.split, []).append(item.date)

    assert len(by_split["test"]) == len(by_split["validation"]) == 8
    assert max(by_split["train"]) < min(by_split["validation"])
    assert max(by_split["validation"]) < min(by_split["test"])


def test_a_document_about_a_held_out_topic_goes_to_test_whole() -> None:
    topics = [
        DebateTopic(id="gold", prompt="Should central banks buy more gold bullion?"),
        DebateTopic(id="rates", prompt="Will interest rates fall next year?"),
    ]
    gold = "Central banks keep buying gold bullion; gold is the oldest reserve."
    items = [_item("g1", gold, document="a#1"), _item("g2", "A second paragraph.", document="a#1")]
    items += [_item(f"r{n}", f"Interest rates will fall, note {n}.") for n in range(30)]

    split = {i.id: i.split for i in assign_splits(items, RULE, [topics[0]], topics)}

    assert split["g1"] == split["g2"] == "test"
    assert nearest_topics([gold], topics)[0].id == "gold"


def test_adding_undated_documents_never_moves_another() -> None:
    before = {i.id: i.split for i in assign_splits([_item(f"x{n}") for n in range(30)], RULE)}
    after = {i.id: i.split for i in assign_splits([_item(f"x{n}") for n in range(60)], RULE)}

    assert {k: after[k] for k in before} == before


def test_sample_sft_data_and_pairs_hold_no_test_item(config) -> None:
    """No test document, and so no item about a held-out topic, reaches any training data."""
    summary = validate_personas(config)
    heldout = {t.id for t in summary.topic_split.heldout}
    topics = summary.topic_split.framing + summary.topic_split.heldout
    assert heldout
    for persona in summary.personas:
        nearest = nearest_topics([i.text for i in persona.items], topics)
        on_heldout = [i for i, t in zip(persona.items, nearest, strict=True) if t.id in heldout]
        assert on_heldout and all(i.split == "test" for i in on_heldout), persona.slug
        test_texts = {i.text for i in persona.items if i.split == "test"}
        train, evaluation = sft_examples(persona, summary.topic_split.framing, None)
        completions = {row["completion"][0]["content"] for row in train + evaluation}
        assert completions and not completions & test_texts, persona.slug
        pretraining = {doc.text for doc in base_documents(summary)}
        assert not pretraining & test_texts, persona.slug
        pairs = cross_persona_pairs(summary, persona.slug)
        assert not test_texts & {p.chosen for p in pairs}, persona.slug
