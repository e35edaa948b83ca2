"""What a debater is asked each round, and what is read back from its turns."""

from __future__ import annotations

import pytest

from foundry.data.personas import load_contract
from foundry.debate.protocol import (
    DISAGREEMENT_TYPES,
    FINAL_LINE,
    Heard,
    critique_prompt,
    parse_final,
    parse_stances,
    turn_prompt,
)
from tests.conftest import SAMPLE_DIR

QUESTION = "Does the short working life of AI accelerators limit the damage from overbuilding?"


@pytest.fixture(scope="module")
def tobias():
    contract, problems = load_contract(SAMPLE_DIR / "personas" / "tobias-renn")
    assert contract is not None, problems
    return contract


def test_the_opening_asks_for_a_position_framed_by_the_persona_s_own_method(tobias):
    prompt = turn_prompt(QUESTION, tobias, 1, 3, [], window_chars=200)

    method = tobias.reasoning_method
    assert prompt.startswith(f"Debate question: {QUESTION}")
    assert f"Reason by your method, {method.name}: {method.description}" in prompt
    assert f"1. {method.steps[0]}" in prompt
    assert "Open the debate" in prompt
    assert "On <name>" not in prompt and "FINAL POSITION" not in prompt


def test_a_later_round_shows_the_others_latest_turns_cut_to_the_window(tobias):
    long_turn = "word " * 200
    heard = [Heard("jonah-okafor", "Jonah Okafor", long_turn), Heard("x", "Xu", "Short one.")]

    prompt = turn_prompt(QUESTION, tobias, 2, 3, heard, window_chars=100)

    jonah = next(line for line in prompt.splitlines() if line.startswith("Jonah Okafor: "))
    assert len(jonah) <= len("Jonah Okafor: ") + 100 + len(" ...") and jonah.endswith(" ...")
    assert "Xu: Short one." in prompt
    assert "`On <name>: AGREE`" in prompt and ", ".join(DISAGREEMENT_TYPES) in prompt
    assert "FINAL POSITION" not in prompt  # round 2 of 3 is not the last


def test_only_the_last_round_of_several_asks_for_the_final_line(tobias):
    heard = [Heard("jonah-okafor", "Jonah Okafor", "Capex always overshoots.")]
    assert FINAL_LINE in turn_prompt(QUESTION, tobias, 3, 3, heard, 500)
    assert FINAL_LINE not in turn_prompt(QUESTION, tobias, 1, 1, [], 500)  # one round: no close


def test_the_critique_pass_quotes_the_draft_and_the_constitution(tobias):
    prompt = critique_prompt("My draft turn.", tobias)
    assert "My draft turn." in prompt
    assert all(f"- {principle}" in prompt for principle in tobias.constitution)


NAMES = {"jonah-okafor": "Jonah Okafor", "marguerite-vale": "Marguerite Vale"}


def test_agree_and_disagree_lines_are_read_by_name_or_slug_with_type_and_assumption():
    text = (
        "On Jonah Okafor: DISAGREE (horizon): capex pays back within five years\n"
        "* on marguerite-vale: agree\n"
        "On Jonah Okafor: AGREE\n"  # a second line about one debater: the first counts
        "On Someone Else: DISAGREE (claim): not in this debate\n"
        "Then the argument itself."
    )

    stances = {s.target: s for s in parse_stances(text, NAMES)}

    assert set(stances) == set(NAMES)
    jonah = stances["jonah-okafor"]
    assert not jonah.agrees and jonah.kind == "horizon"
    assert jonah.assumption == "capex pays back within five years"
    assert stances["marguerite-vale"].agrees and stances["marguerite-vale"].assumption == ""


def test_two_statements_on_one_line_are_both_read():
    text = "On Jonah Okafor: AGREE. On Marguerite Vale: DISAGREE (values): thrift is a virtue"
    stances = {s.target: s for s in parse_stances(text, NAMES)}
    assert stances["jonah-okafor"].agrees
    assert stances["marguerite-vale"].kind == "values"
    assert stances["marguerite-vale"].assumption == "thrift is a virtue"


def test_a_disagreement_without_a_known_type_keeps_its_text_and_no_type():
    [stance] = parse_stances("On Marguerite Vale: disagree - gold is not money", NAMES)
    assert not stance.agrees and stance.kind == "" and stance.assumption == "gold is not money"
    assert parse_stances("I agree with Jonah Okafor on most things.", NAMES) == []


def test_the_last_final_line_is_read_and_a_confidence_above_100_is_not():
    text = (
        "FINAL POSITION: draft | CONFIDENCE: 10%\n"
        "More argument.\nfinal position: Overbuilding hurts the first owners | confidence: 72 %"
    )
    final = parse_final(text)
    assert final is not None
    assert final.position == "Overbuilding hurts the first owners" and final.confidence == 0.72
    assert parse_final("FINAL POSITION: sure | CONFIDENCE: 180%") is None
    assert parse_final("No closing line at all.") is None
