"""Strategy allocation, cross-persona matching, pair rules and the export formats."""

from __future__ import annotations

from collections import Counter

from foundry.data.schemas import DebateTurn
from foundry.synthesis.preference_pairs import (
    allocate_strategies,
    cap_pairs,
    cross_persona_rejection,
    index_by_slot,
    make_pair,
)
from foundry.training.datasets import to_together, to_trl


def _turn(persona: str, topic: str, move: str = "claim", split: str = "train", n: int = 0):
    return DebateTurn(
        key=f"{persona}-{topic}-{move}-{n}".encode().hex()[:32],
        persona=persona,
        topic_id=topic,
        prompt=f"Debate prompt: {topic}?",
        move=move,
        text=f"{persona} argues {move} on {topic} number {n}.",
        split=split,
        provider="offline",
        model="m",
        template="t",
        prompt_hash="h",
    )


def test_strategies_follow_the_mix_with_largest_remainders():
    turns = [_turn("a", f"t{i}") for i in range(10)]
    counts = Counter(allocate_strategies(turns, {"cross_persona": 0.7, "generic": 0.3}).values())
    assert counts == {"cross_persona": 7, "generic": 3}
    counts = Counter(allocate_strategies(turns[:7], {"cross_persona": 1, "generic": 1}).values())
    assert sorted(counts.values()) == [3, 4] and sum(counts.values()) == 7


def test_allocation_is_deterministic_and_seeded():
    turns = [_turn("a", f"t{i}") for i in range(20)]
    mix = {"cross_persona": 0.5, "generic": 0.5}
    assert allocate_strategies(turns, mix, seed=1) == allocate_strategies(turns, mix, seed=1)
    assert allocate_strategies(turns, mix, seed=1) != allocate_strategies(turns, mix, seed=2)


def test_cross_persona_prefers_the_same_move_then_the_same_topic():
    mine = _turn("a", "rates", "claim")
    same_move = _turn("b", "rates", "claim")
    same_topic = _turn("c", "rates", "reframe")
    elsewhere = _turn("b", "gold", "claim")
    index = index_by_slot([mine, same_move, same_topic, elsewhere])

    assert cross_persona_rejection(mine, index) == same_move
    index = index_by_slot([mine, same_topic, elsewhere])
    assert cross_persona_rejection(mine, index) == same_topic
    assert cross_persona_rejection(mine, index_by_slot([mine, elsewhere])) is None
    assert (
        cross_persona_rejection(mine, index_by_slot([mine, _turn("a", "rates", "reframe")])) is None
    )


def test_a_pair_takes_prompt_and_split_from_the_chosen_turn_and_never_repeats_it():
    turn = _turn("a", "rates", split="validation")
    pair = make_pair(turn, "Something else entirely.", "generic", {"rejected_key": "k"})
    assert (pair.prompt, pair.split, pair.chosen) == (turn.prompt, "validation", turn.text)
    assert pair.provenance["chosen_key"] == turn.key and pair.provenance["rejected_key"] == "k"
    assert make_pair(turn, turn.text.upper() + "!!", "generic", {}) is None
    assert make_pair(turn, "   ", "generic", {}) is None


def test_cap_keeps_splits_in_proportion_and_order():
    turns = [_turn("a", f"t{i}", split="validation" if i % 5 == 0 else "train") for i in range(50)]
    pairs = [make_pair(t, "other text", "generic", {}) for t in turns]
    capped = cap_pairs(pairs, 20, seed=0)
    assert len(capped) == 20
    assert sum(p.split == "validation" for p in capped) == 4
    positions = [pairs.index(p) for p in capped]
    assert positions == sorted(positions)
    assert cap_pairs(pairs, 100) == pairs


def test_exports_have_the_shapes_trl_and_together_read():
    pair = make_pair(_turn("a", "rates"), "rejected text", "generic", {})
    trl = to_trl(pair)
    assert trl["prompt"] == [{"role": "user", "content": pair.prompt}]
    assert trl["chosen"] == [{"role": "assistant", "content": pair.chosen}]
    together = to_together(pair)
    assert together["input"]["messages"] == [{"role": "user", "content": pair.prompt}]
    assert together["preferred_output"] == [{"role": "assistant", "content": pair.chosen}]
    assert together["non_preferred_output"] == [{"role": "assistant", "content": "rejected text"}]
