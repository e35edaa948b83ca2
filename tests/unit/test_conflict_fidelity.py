"""Conflict fidelity on planted answers, scored by a stub language model instead of a real one."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from foundry.data.framing import BASE_ADAPTER
from foundry.data.schemas import Conflict
from foundry.evaluation.conflicts import (
    answer_sides,
    conflict_fidelity,
    conflict_rows,
    continuation_nll,
    fidelity_rows,
    stance_items,
)
from foundry.evaluation.metrics import stance_metrics
from foundry.steering.variants import ResolvedVariant

GOLD = Conflict(
    id="gold-floor",
    kind="empirical",
    persona_a="ada",
    assumption_a="Gold keeps its purchasing power across centuries of inflation.",
    persona_b="bo",
    assumption_b="Software platforms compound value faster than any metal ever could.",
    question="Is gold a better store of value than technology equity?",
)
RATES = Conflict(
    id="rate-path",
    kind="temporal",
    persona_a="ada",
    assumption_a="Central banks will cut rates within a year as credit tightens.",
    persona_b="bo",
    assumption_b="Productivity gains keep real yields high for the next decade.",
    question="Where will real interest rates be in five years?",
)


def _answer(persona: str, conflict: Conflict, text: str) -> dict:
    prompt = f"Debate prompt: {conflict.question}"
    return {
        "persona": persona,
        "topic_id": f"conflict-{conflict.id}",
        "prompt": prompt,
        "answer": text,
    }


def _copy_lm(rows) -> dict:
    """A stub LM that finds a word cheap when the text already said it (2 nats fewer), and
    costs 4 nats per unseen word: what any model that reads its context does, roughly."""
    totals = defaultdict(lambda: [0.0, 0.0])
    for tag, row in rows:
        seen: set[str] = set(re.findall(r"\w+", row.prompt.lower()))
        for word in re.findall(r"\w+", row.completion.lower()):
            totals[tag][0] += 2.0 if word in seen else 4.0
            totals[tag][1] += 1
            seen.add(word)
    return totals


def _bag_of_words(texts: list[str]) -> tuple[np.ndarray, str]:
    vocab = sorted({w for t in texts for w in re.findall(r"\w+", t.lower())})
    matrix = np.zeros((len(texts), len(vocab)))
    for i, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            matrix[i, vocab.index(word)] += 1
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms), "bow"


def _fidelity(conflicts, answers):
    rows = fidelity_rows(answer_sides(conflicts, answers))
    return conflict_fidelity(conflicts, answers, _copy_lm(rows), _bag_of_words)


def test_answers_that_state_their_own_assumption_side_with_their_persona():
    answers = [
        _answer("ada", GOLD, f"I say this plainly. {GOLD.assumption_a}"),
        _answer("bo", GOLD, f"I say this plainly. {GOLD.assumption_b}"),
        _answer("ada", RATES, f"Look at credit. {RATES.assumption_a}"),
        _answer("bo", RATES, f"Look at output. {RATES.assumption_b}"),
    ]
    result = _fidelity([GOLD, RATES], answers)
    assert (result.conflicts, result.answers) == (2, 4)
    assert result.likelihood == 1.0 and result.embedding == 1.0
    assert result.by_kind == {"empirical": 1.0, "temporal": 1.0}
    assert result.likelihood_interval == [1.0, 1.0]
    assert 0.0 < result.answer_cosine < 1.0


def test_answers_that_state_the_opponents_assumption_score_zero_and_kinds_split():
    answers = [
        _answer("ada", GOLD, GOLD.assumption_b),  # swapped sides
        _answer("bo", GOLD, GOLD.assumption_a),
        _answer("ada", RATES, RATES.assumption_a),
        _answer("bo", RATES, RATES.assumption_b),
    ]
    result = _fidelity([GOLD, RATES], answers)
    assert result.likelihood == 0.5 and result.embedding == 0.5
    assert result.by_kind == {"empirical": 0.0, "temporal": 1.0}
    low, high = result.likelihood_interval
    assert 0.0 <= low <= 0.5 <= high <= 1.0


def test_identical_answers_that_say_neither_are_at_chance():
    same = "Markets are hard to call and I would wait for more data."
    answers = [_answer(p, c, same) for c in (GOLD, RATES) for p in ("ada", "bo")]
    rows = fidelity_rows(answer_sides([GOLD, RATES], answers))
    # A stub that ignores the answer and charges each assumption the same: every side is a tie.
    totals = {tag: [len(row.completion) / 10, len(row.completion)] for tag, row in rows}
    result = conflict_fidelity([GOLD, RATES], answers, totals, _bag_of_words)
    assert result.likelihood == 0.5
    assert result.answer_cosine == pytest.approx(1.0)


def test_a_conflict_answered_by_one_side_only_is_not_scored():
    answers = [
        _answer("ada", GOLD, GOLD.assumption_a),
        _answer("bo", GOLD, GOLD.assumption_b),
        _answer("ada", RATES, RATES.assumption_a),  # bo has no answer here
    ]
    result = _fidelity([GOLD, RATES], answers)
    assert (result.conflicts, result.answers) == (1, 2) and set(result.by_kind) == {"empirical"}
    assert _fidelity([RATES], answers[2:]) is None
    assert conflict_fidelity([], [], {}, _bag_of_words) is None


def test_the_continuation_nll_is_per_token_of_what_the_assumption_adds():
    totals = {
        ("conflict", "x", "ada", "answer"): [4.0, 5],
        ("conflict", "x", "ada", "own"): [10.0, 8],
    }
    assert continuation_nll(totals, ("conflict", "x", "ada"), "own") == pytest.approx(2.0)
    assert continuation_nll(totals, ("conflict", "x", "ada"), "other") is None
    cut = {**totals, ("conflict", "x", "ada", "own"): [4.5, 5]}  # truncated: no token added
    assert continuation_nll(cut, ("conflict", "x", "ada"), "own") is None


def test_fidelity_rows_use_the_bare_base_model_and_continue_the_answer():
    answers = [_answer("ada", GOLD, "Gold, always."), _answer("bo", GOLD, "")]
    variant = ResolvedVariant(
        persona="ada", variant="dpo+steer", adapter="ada-dpo", path=Path("x"),
        system="You are Ada.", steer="ada-vector",
    )  # fmt: skip
    rows = dict(conflict_rows([GOLD], variant, answers))
    own = rows[("conflict", "gold-floor", "ada", "own")]
    assert (own.adapter, own.system, own.steer) == (BASE_ADAPTER, None, ())
    assert own.completion == "Gold, always.\n\n" + GOLD.assumption_a
    assert own.prompt == answers[0]["prompt"]
    assert rows[("conflict", "gold-floor", "ada", "other")].completion.endswith(GOLD.assumption_b)
    assert not any(tag[2] == "bo" for tag in rows if tag[0] == "conflict")  # only ada's answers
    claim = rows[("stance", "ada", "conflict-gold-floor", "claim")]
    assert (claim.adapter, claim.system, claim.steer) == (
        "ada-dpo",
        "You are Ada.",
        ("ada-vector",),
    )
    assert claim.completion == GOLD.assumption_a


def test_conflicts_give_both_sides_a_stance_with_a_counterclaim():
    assert stance_items([GOLD, RATES], "ada") == [
        ("conflict-gold-floor", GOLD.assumption_a, GOLD.assumption_b, "agree"),
        ("conflict-rate-path", RATES.assumption_a, RATES.assumption_b, "agree"),
    ]
    [(key, claim, counter, stance)] = stance_items([GOLD], "bo")
    assert (claim, counter, stance) == (GOLD.assumption_a, GOLD.assumption_b, "disagree")
    assert stance_items([GOLD], "cy") == []
    # Variants that each prefer their own persona's assumption hold their stance and diverge.
    prefs = {("ada", key): 0.3, ("bo", key): -0.2}
    stances = {("ada", key): "agree", ("bo", key): "disagree"}
    result = stance_metrics(prefs, stances, {k: claim for k in prefs})
    assert result.accuracy == 1.0 and result.divergence == 1.0
