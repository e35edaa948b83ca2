"""The style and content classifiers see disjoint features (foundry.data.attribution).

Two hand-made pairs of personas: one pair writes the same words with different punctuation, the
other writes the same sentence frames (function words, punctuation) about different topics. Text i
of one persona mirrors text i of the other, so a classifier that cannot see the difference gives
both the same features, the same prediction, and exactly chance accuracy on the held-out pairs.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from foundry.data.attribution import (
    AttributionClassifier,
    content_words,
    fit_content_classifier,
    fit_style_classifier,
    mask_content_words,
)

TRAIN = 20  # of 30 texts per persona; the last 10 of each are held out


def _clauses(rng: random.Random) -> list[str]:
    subjects = ["we", "the council", "our neighbours", "the city", "every tenant", "the market"]
    verbs = ["should fund", "must protect", "can rebuild", "will question", "ought to study"]
    objects = ["the schools", "local housing", "public transit", "the harbour", "small farms"]
    return [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}" for _ in range(90)]


def _same_words_different_punctuation() -> tuple[list[str], list[str]]:
    clauses = _clauses(random.Random(0))
    triples = [clauses[i : i + 3] for i in range(0, 90, 3)]
    calm = [f"{a.capitalize()}, and {b}. {c.capitalize()}." for a, b, c in triples]
    loud = [f"{a.capitalize()} \u2014 and {b}! {c.capitalize()}!" for a, b, c in triples]
    return calm, loud


FRAMES = [
    "The {n1} are {adj}, and we should {v} the {n2} before it is too late.",
    "If the {n1} is {adj}, then we {v} it; otherwise the {n2} will suffer.",
    "Nobody asked whether our {n1} could {v} the {n2}. Why not?",
    "We {v} the {n1} every day, yet the {n2} stays {adj}.",
    "Is the {n2} really so {adj}? I doubt it: the {n1} never {v} on time.",
    "Some say {n1} and {n2} cannot both be {adj}. They are wrong!",
    "Before we {v} anything, look at the {n1} (and at the {n2}).",
    "What if the {n2} were {adj} after all? Then the {n1} would {v} too.",
    "Our {n1}, our {n2}, our {adj} hopes: all of it depends on how we {v}.",
    "Every {n1} needs a {adj} {n2}; without one, nobody can {v} well.",
]
TOPICS = {
    "gardener": {
        "n": ["tomatoes", "compost", "seedlings", "roses", "soil", "mulch", "orchard", "hedges"],
        "v": ["prune", "water", "plant", "harvest", "weed"],
        "adj": ["leafy", "damp", "fertile", "shady", "ripe"],
    },
    "engineer": {
        "n": ["engines", "propellant", "boosters", "nozzles", "payload", "launchpad", "capsules"],
        "v": ["ignite", "launch", "calibrate", "weld", "refuel"],
        "adj": ["supersonic", "cryogenic", "orbital", "reusable", "pressurised"],
    },
}


def _same_frames_different_topics() -> tuple[list[str], list[str]]:
    rng = random.Random(1)
    texts: dict[str, list[str]] = {persona: [] for persona in TOPICS}
    for i in range(30):
        frame = FRAMES[i % len(FRAMES)]
        for persona, vocab in TOPICS.items():
            n1, n2 = rng.sample(vocab["n"], 2)
            fill = {
                "n1": n1,
                "n2": n2,
                "v": rng.choice(vocab["v"]),
                "adj": rng.choice(vocab["adj"]),
            }
            texts[persona].append(frame.format(**fill))
    return texts["gardener"], texts["engineer"]


def _held_out_accuracy(fit, a: list[str], b: list[str]) -> float:
    classifier: AttributionClassifier = fit(a[:TRAIN] + b[:TRAIN], ["a"] * TRAIN + ["b"] * TRAIN)
    test = a[TRAIN:] + b[TRAIN:]
    truth = ["a"] * len(a[TRAIN:]) + ["b"] * len(b[TRAIN:])
    predicted = classifier.predict(test)
    return sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(test)


def _features(fit, a: list[str], b: list[str], texts: list[str]) -> np.ndarray:
    classifier = fit(a + b, ["a"] * len(a) + ["b"] * len(b))
    return classifier.pipeline[:-1].transform(texts).toarray()


def test_punctuation_habits_separate_style_but_not_content():
    calm, loud = _same_words_different_punctuation()
    assert _held_out_accuracy(fit_style_classifier, calm, loud) == 1.0
    assert _held_out_accuracy(fit_content_classifier, calm, loud) == 0.5
    content_features = _features(fit_content_classifier, calm, loud, calm + loud)
    np.testing.assert_array_equal(content_features[:30], content_features[30:])


def test_topics_separate_content_but_not_style():
    gardener, engineer = _same_frames_different_topics()
    assert _held_out_accuracy(fit_content_classifier, gardener, engineer) == 1.0
    assert _held_out_accuracy(fit_style_classifier, gardener, engineer) == 0.5
    style_features = _features(fit_style_classifier, gardener, engineer, gardener + engineer)
    np.testing.assert_array_equal(style_features[:30], style_features[30:])


def test_masking_keeps_function_words_punctuation_and_shapes():
    assert mask_content_words("The Senate voted 52-48 on Tuesday!") == "The Xx x 00-00 on Xx!"
    assert mask_content_words("NATO\u2019s  budget\ndoesn't GROW") == "XX\u2019s x\ndoesn't XX"


def test_content_words_drop_function_and_stop_words_but_keep_topical_ones():
    text = "We should not pass the bill, because the system is failing them."
    # "bill" and "system" are on scikit-learn's stop list, but a debate needs them.
    assert content_words(text) == ["pass", "bill", "system", "failing"]
    assert content_words("Whereas they've always said it, nobody else did.") == ["said"]


def test_classifiers_need_two_personas_and_one_label_per_text():
    with pytest.raises(ValueError, match="at least two personas"):
        fit_style_classifier(["a text", "another"], ["ada", "ada"])
    with pytest.raises(ValueError, match="2 texts but 1 persona labels"):
        fit_content_classifier(["a text", "another"], ["ada"])


def test_style_classifier_gives_probabilities_per_persona():
    calm, loud = _same_words_different_punctuation()
    classifier = fit_style_classifier(calm + loud, ["calm"] * 30 + ["loud"] * 30)
    (probabilities,) = classifier.probabilities(["Our neighbours should fund the harbour!"])
    assert set(probabilities) == {"calm", "loud"}
    assert probabilities["loud"] > probabilities["calm"]
