"""The offline composer: deterministic, grounded in the persona's passages, shaped by its method."""

from __future__ import annotations

import shutil

import pytest

from foundry.config import load_config
from foundry.data.attribution import fit_attribution
from foundry.data.retrieval import PassageIndex
from foundry.data.schemas import PersonaContract
from foundry.data.textnorm import longest_copied_run, words
from foundry.data.validation import validate_personas
from foundry.synthesis.config import MOVES, FilterConfig
from foundry.synthesis.offline_composer import compose_turn
from foundry.synthesis.turn_filters import TurnCandidate, filter_turns, find_refusal
from tests.conftest import SAMPLE_DIR, make_project

TOPICS = ["ai-capex-returns", "ev-adoption-pace", "inflation-next-decade", "chip-controls-delay"]


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("composer") / "project")
    shutil.copytree(SAMPLE_DIR, root / "data")
    return validate_personas(load_config(root / "foundry.yaml"))


@pytest.fixture(scope="module")
def personas(summary):
    """slug -> (contract, train items, passage index)."""
    found = {}
    for persona in summary.personas:
        train = [item for item in persona.items if item.split == "train"]
        found[persona.slug] = (persona.contract, train, PassageIndex(train))
    return found


@pytest.fixture(scope="module")
def prompts(summary):
    by_id = {topic.id: topic.prompt for topic in summary.topics}
    return [by_id[topic_id] for topic_id in TOPICS]


@pytest.fixture(scope="module")
def turns(personas, prompts):
    """(slug, prompt, move) -> (turn, passages) for every sample persona, topic and move."""
    found = {}
    for slug, (contract, _, index) in personas.items():
        for prompt in prompts:
            passages = index.top(prompt, 4)
            for move in MOVES:
                found[slug, prompt, move] = (
                    compose_turn(contract, prompt, move, passages),
                    passages,
                )
    return found


def _step_openings(contract: PersonaContract) -> list[str]:
    """The first three words of each method step, as they appear in a first-person lead-in."""
    return [" ".join(words(step)[:3]) for step in contract.reasoning_method.steps]


def test_same_inputs_give_the_same_turn_and_any_change_gives_another(personas, prompts):
    contract, _, index = personas["tobias-renn"]
    passages = index.top(prompts[0], 4)
    turn = compose_turn(contract, prompts[0], "claim", passages)
    assert compose_turn(contract, prompts[0], "claim", passages) == turn
    assert compose_turn(contract, prompts[0], "claim", passages, seed="2") != turn
    assert compose_turn(contract, prompts[0], "reframe", passages) != turn
    assert compose_turn(contract, prompts[1], "claim", index.top(prompts[1], 4)) != turn


def test_every_turn_is_60_to_200_words_copies_at_most_15_and_never_refuses(turns):
    for (slug, prompt, move), (turn, passages) in turns.items():
        assert 60 <= len(words(turn)) <= 200, (slug, move, turn)
        assert longest_copied_run(turn, [item.text for item in passages]) <= 15, (slug, move)
        assert find_refusal(turn) is None
        assert set(words(prompt)) <= set(words(turn)), "the turn quotes the debate prompt"


def test_turns_are_built_from_the_personas_own_passages(turns):
    for (_, _, move), (turn, passages) in turns.items():
        sources = [item.text for item in passages]
        # Content is recombined passage clauses: several runs of 4+ words come from them.
        sentences = [s for s in turn.split(". ") if ": " in s]
        grounded = [s for s in sentences if longest_copied_run(s.split(": ")[-1], sources) >= 4]
        assert len(grounded) >= 2, (move, turn)


def test_each_persona_argues_through_its_own_method_steps_and_not_the_others(personas, turns):
    openings = {slug: _step_openings(contract) for slug, (contract, _, _) in personas.items()}
    for (slug, _, move), (turn, _) in turns.items():
        if move not in ("claim", "challenge", "reframe"):
            continue
        text = " ".join(words(turn))
        assert sum(o in text for o in openings[slug]) >= 2, (slug, move, turn)
        for other, other_openings in openings.items():
            if other != slug:
                assert not any(o in text for o in other_openings), (slug, other, turn)


def test_a_claim_states_a_thesis_then_walks_the_method(turns):
    turn, _ = turns["jonah-okafor", next(iter(turns))[1], "claim"]
    thesis, walk = turn.index("The thesis in one line:"), turn.index("locate the claim")
    assert thesis < walk


def test_a_challenge_quotes_the_opponent_and_disputes_it(personas, prompts):
    contract, _, index = personas["jonah-okafor"]
    opponent_contract, _, opponent_index = personas["marguerite-vale"]
    opponent = compose_turn(
        opponent_contract, prompts[0], "claim", opponent_index.top(prompts[0], 4)
    )
    turn = compose_turn(contract, prompts[0], "challenge", index.top(prompts[0], 4), opponent)
    assert longest_copied_run(turn, [opponent]) >= 5
    assert "dispute" in turn
    unopposed = compose_turn(contract, prompts[0], "challenge", index.top(prompts[0], 4))
    assert "The conventional view on" in unopposed and "dispute" in unopposed


def test_a_concession_grants_a_point_and_states_a_flip_condition_from_the_contract(turns, personas):
    for (slug, _, move), (turn, _) in turns.items():
        if move != "concession":
            continue
        flips = personas[slug][0].flip_conditions
        assert "I would change my mind" in turn and "concede" in turn
        assert longest_copied_run(turn, flips) >= 8, (slug, turn)


def test_clarification_and_reframe_have_their_own_shapes(turns):
    for (_, _, move), (turn, _) in turns.items():
        if move == "clarification":
            assert "I claim this much:" in turn and "I do not claim more than that" in turn
        if move == "reframe":
            assert "I would recast it as a problem of" in turn


def test_a_contract_without_a_method_gets_a_plain_structure(personas, prompts):
    _, _, index = personas["priya-castellanos"]
    bare = PersonaContract(name="Priya Castellanos")
    turn = compose_turn(bare, prompts[1], "claim", index.top(prompts[1], 4))
    assert "set out the evidence" in turn and "plain evidence and mechanism" in turn
    assert 60 <= len(words(turn)) <= 200


def test_nothing_to_draw_on_is_refused():
    with pytest.raises(ValueError, match="no passages and no anchor excerpts"):
        compose_turn(PersonaContract(name="Nobody"), "Is it?", "claim", [])


def test_most_offline_turns_pass_the_quality_filters(personas, turns):
    corpora = {slug: [item.text for item in train] for slug, (_, train, _) in personas.items()}
    texts = [text for slug in corpora for text in corpora[slug]]
    classifier = fit_attribution(texts, [slug for slug in corpora for _ in corpora[slug]])
    candidates = [
        TurnCandidate(key=f"{slug}|{prompt}|{move}", persona=slug, text=turn)
        for (slug, prompt, move), (turn, _) in turns.items()
    ]
    reasons = filter_turns(candidates, corpora, FilterConfig(), classifier=classifier)
    kept = sum(not found for found in reasons.values())
    # Measured: 80 of 80 here; 953 of 960 over all 48 sample topics (duplicates of related
    # topics' concessions and two attribution misses).
    assert kept / len(candidates) >= 0.9, {k: v for k, v in reasons.items() if v}
