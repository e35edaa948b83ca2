"""Quality gates on generated turns: each reason fires on a hand-made input, and only there."""

from __future__ import annotations

import re

import pytest

from foundry.data.attribution import fit_attribution
from foundry.data.textnorm import longest_copied_run
from foundry.synthesis.config import FilterConfig
from foundry.synthesis.turn_filters import TurnCandidate, filter_turns, find_refusal

GARDEN = [
    "The roses in my garden need pruning before the first frost arrives.",
    "Compost the fallen leaves and the tulip bulbs will thank you in spring.",
    "A slow hedge of hawthorn and hazel shelters the vegetable beds from wind.",
    "Water the tomatoes at dawn, never at noon, and mulch them with straw.",
    "The orchard apples ripened early this year after a dry and sunny August.",
    "Sow the beans thickly; the pigeons take a third and the slugs another.",
]
ROCKETS = [
    "The booster engines throttle down during max-q to protect the airframe.",
    "Liquid oxygen and methane make a cleaner propellant than kerosene for reuse.",
    "Orbital insertion depends on the second stage burning for exactly six minutes.",
    "The launch pad flame trench channels exhaust away from the vehicle.",
    "Grid fins steer the returning stage toward the landing barge at sea.",
    "Payload fairings separate once the rocket climbs above the thick atmosphere.",
]
CORPORA = {"gardener": GARDEN, "engineer": ROCKETS}
# 26 words that share no 3-gram and no run of more than 2 words with the corpora.
CLEAN = (
    "Autumn work starts with a survey of every bed, then a plan for what to move, what to divide "
    "and what to leave alone until spring returns."
)
SETTINGS = FilterConfig(min_attribution=0)


def _candidate(text: str, key: str = "t1", persona: str = "gardener") -> TurnCandidate:
    return TurnCandidate(key=key, persona=persona, text=text)


def _reasons(text: str, settings: FilterConfig = SETTINGS, **kwargs) -> list[str]:
    return filter_turns([_candidate(text)], CORPORA, settings, **kwargs)["t1"]


def test_a_clean_turn_has_no_reasons():
    assert _reasons(CLEAN) == []


def test_every_candidate_gets_an_entry_even_without_reasons():
    result = filter_turns(
        [_candidate(CLEAN, "a"), _candidate("Too short.", "b")], CORPORA, SETTINGS
    )
    assert result == {"a": [], "b": ["too-short: 2 words < 20"]}


def test_length_bounds_name_the_count_and_the_limit():
    assert _reasons(" ".join(["word"] * 12)) == ["too-short: 12 words < 20"]
    long_text = " ".join(f"w{i}" for i in range(45))
    assert _reasons(long_text, FilterConfig(min_attribution=0, max_words=40)) == [
        "too-long: 45 words > 40"
    ]


def test_an_exact_corpus_copy_differing_only_in_case_and_punctuation_is_a_duplicate():
    text = " ".join(GARDEN[:2]).upper().replace(",", "")
    corpora = {**CORPORA, "gardener": [*GARDEN, " ".join(GARDEN[:2])]}
    reasons = filter_turns([_candidate(text)], corpora, SETTINGS)["t1"]
    assert "duplicate-of-corpus: exact copy of a gardener text" in reasons


def test_a_near_copy_of_another_personas_corpus_is_a_duplicate():
    source = " ".join(ROCKETS[:2])  # 24 words, 22 shingles
    corpora = {**CORPORA, "engineer": [*ROCKETS, source]}
    text = source.replace("reuse", "reusable boosters")  # shares 21 of 24 shingles
    settings = FilterConfig(min_attribution=0, max_copied_words=50)
    reasons = filter_turns([_candidate(text)], corpora, settings)["t1"]
    assert reasons == ["duplicate-of-corpus: jaccard 0.88 with a engineer text"]


def test_copied_run_length_is_exact_and_only_above_the_limit_is_rejected():
    corpus_text = " ".join(f"c{i}" for i in range(60))
    copied = " ".join(f"c{i}" for i in range(10, 33))  # 23 corpus words in a row
    text = f"alpha beta gamma {copied} delta epsilon zeta eta theta iota"
    assert longest_copied_run(text, [corpus_text, "alpha beta"]) == 23
    corpora = {"gardener": [corpus_text]}
    reasons = filter_turns([_candidate(text)], corpora, SETTINGS)["t1"]
    assert reasons == ["copies-corpus: 23 words verbatim from gardener"]
    at_limit = " ".join(f"c{i}" for i in range(10, 30))  # exactly 20: allowed
    text = f"alpha beta gamma {at_limit} delta epsilon zeta eta theta iota kappa lambda"
    assert filter_turns([_candidate(text)], corpora, SETTINGS)["t1"] == []


def test_longest_copied_run_picks_the_longest_of_several_sources():
    text = "one two three four five six seven eight nine"
    sources = ["two three four", "x four five six seven eight y", "nine"]
    assert longest_copied_run(text, sources) == 5
    assert longest_copied_run(text, ["nothing shared here"]) == 0
    assert longest_copied_run(text, []) == 0


@pytest.mark.parametrize(
    "text",
    [
        "As an AI language model, I cannot offer views on gardens.",
        "I'm sorry, but I can't help with that request about pruning.",
        "I cannot assist with writing that argument.",
        "I am unable to provide an opinion on this motion.",
        "I won't be able to argue this side of the debate.",
        "Roses are lovely. " * 3 + "But I can’t help with that, as an AI assistant.",
    ],
)
def test_refusals_are_detected(text):
    assert find_refusal(text) is not None
    assert any(r.startswith("refusal: ") for r in _reasons(text + " " + CLEAN))


@pytest.mark.parametrize(
    "text",
    [
        CLEAN,
        "Treat it as an AI bubble if you like; the pruning still has to happen.",
        CLEAN + " " + CLEAN + " Frankly, I'm sorry, but the hedge stays where it is.",
    ],
)
def test_debate_phrases_that_only_resemble_refusals_pass(text):
    assert find_refusal(text) is None


def test_refusal_reason_quotes_the_phrase():
    assert "refusal: 'as an ai'" in _reasons("As an AI, I prefer not to say. " + CLEAN)


def test_of_two_near_duplicate_candidates_the_first_is_kept():
    second = CLEAN.replace("spring returns", "the spring returns")
    candidates = [_candidate(CLEAN, "first"), _candidate(second, "second")]
    result = filter_turns(candidates, CORPORA, SETTINGS)
    assert result["first"] == []
    assert re.fullmatch(r"duplicate-of-turn: first jaccard 0\.\d\d", result["second"][0])


def test_a_candidate_rejected_for_another_reason_does_not_block_its_near_duplicate():
    refusing = "I'm sorry, but " + CLEAN
    candidates = [_candidate(refusing, "refusing"), _candidate(CLEAN, "clean")]
    result = filter_turns(candidates, CORPORA, SETTINGS)
    assert result["refusing"] == ['refusal: "i\'m sorry, but"']
    assert result["clean"] == []


def test_turns_accepted_by_earlier_runs_are_not_repeated():
    result = filter_turns([_candidate(CLEAN)], CORPORA, SETTINGS, accepted={"engineer": [CLEAN]})
    assert result["t1"] == ["duplicate-of-turn: earlier jaccard 1.00"]


def test_repeated_candidate_keys_are_refused():
    with pytest.raises(ValueError, match="repeated: t1"):
        filter_turns([_candidate(CLEAN), _candidate(CLEAN)], CORPORA, SETTINGS)


@pytest.fixture(scope="module")
def classifier():
    texts = [*GARDEN, *ROCKETS]
    return fit_attribution(texts, ["gardener"] * len(GARDEN) + ["engineer"] * len(ROCKETS))


def test_probabilities_cover_every_persona_and_sum_to_one(classifier):
    (probs,) = classifier.probabilities(["The booster engines and the landing barge."])
    assert set(probs) == {"gardener", "engineer"}
    assert probs["engineer"] > probs["gardener"]
    assert sum(probs.values()) == pytest.approx(1.0)
    assert classifier.probabilities([]) == []


def test_a_turn_that_reads_as_another_persona_fails_attribution(classifier):
    rocket_talk = (
        "The booster engines throttle hard, the second stage burns its methane and liquid oxygen, "
        "grid fins steer the stage to the barge, and the payload fairings separate on time."
    )
    settings = FilterConfig(min_attribution=0.6)
    reasons = _reasons(rocket_talk, settings, classifier=classifier)
    assert len(reasons) == 1
    match = re.fullmatch(
        r"attribution: (0\.\d\d) < 0\.60 for gardener \(most likely engineer\)", reasons[0]
    )
    assert match and float(match.group(1)) < 0.5
    garden_talk = (
        "Prune the roses, compost the leaves, mulch the tomatoes with straw and sow the beans "
        "thickly before frost reaches the orchard and the hawthorn hedge."
    )
    assert _reasons(garden_talk, settings, classifier=classifier) == []


def test_attribution_is_skipped_when_the_threshold_is_zero(classifier):
    rocket_talk = "The booster engines and grid fins steer the stage to the landing barge at sea. "
    assert _reasons(rocket_talk * 2, SETTINGS, classifier=classifier) == []
