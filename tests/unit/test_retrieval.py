"""PassageIndex: TF-IDF retrieval of a persona's own passages for a debate prompt."""

from __future__ import annotations

import pytest

from foundry.data.retrieval import PassageIndex
from foundry.data.schemas import CorpusItem

TEXTS = {
    "a-grid": "Grid interconnection queues are the binding constraint on new capacity.",
    "b-gold": "Central banks bought gold at a record pace after the reserve freeze.",
    "c-rates": "Real interest rates drifted lower for forty years before the pandemic.",
    "d-chips": "Export controls on lithography tools slow a rival's chip fabrication.",
    "e-wages": "Wages follow productivity only when workers can bargain for a share.",
}


def _items(texts: dict[str, str]) -> list[CorpusItem]:
    return [CorpusItem(id=key, persona="someone", text=text) for key, text in texts.items()]


@pytest.fixture
def index() -> PassageIndex:
    return PassageIndex(_items(TEXTS))


def test_top_passage_is_the_one_sharing_rare_words_with_the_query(index):
    assert index.top("How much do lithography export controls matter?", 1)[0].id == "d-chips"
    assert index.top("Are interconnection queues the bottleneck?", 1)[0].id == "a-grid"


def test_results_are_ranked_by_similarity(index):
    ranked = [item.id for item in index.top("gold reserve purchases by central banks", 5)]
    assert ranked[0] == "b-gold"
    assert len(ranked) == len(set(ranked)) == 5


def test_retrieval_is_deterministic_across_calls_and_rebuilt_indexes(index):
    query = "Will wages keep up with productivity and interest rates?"
    first = [item.id for item in index.top(query, 5)]
    assert [item.id for item in index.top(query, 5)] == first
    rebuilt = PassageIndex(list(reversed(_items(TEXTS))))
    assert [item.id for item in rebuilt.top(query, 5)] == first


def test_equal_scores_are_ordered_by_item_id():
    index = PassageIndex(
        _items({"z-copy": "solar learning rates", "m-copy": "solar learning rates"})
    )
    assert [item.id for item in index.top("solar learning", 2)] == ["m-copy", "z-copy"]


def test_k_larger_than_the_corpus_returns_every_item_once(index):
    found = index.top("gold", 50)
    assert sorted(item.id for item in found) == sorted(TEXTS)
    assert index.top("gold", 0) == []


def test_a_query_sharing_nothing_still_gets_k_items_in_a_query_seeded_order(index):
    queries = [f"zebra quokka {n}" for n in range(6)]
    orders = {q: [item.id for item in index.top(q, 3)] for q in queries}
    assert all(len(order) == 3 for order in orders.values())
    assert orders[queries[0]] == [item.id for item in index.top(queries[0], 3)]
    assert len({tuple(order) for order in orders.values()}) > 1  # prompts differ, passages too


def test_an_empty_corpus_is_refused():
    with pytest.raises(ValueError, match="at least one corpus item"):
        PassageIndex([])
