"""The memorisation guard: a "model" that recites its training paragraphs is caught and refused."""

from __future__ import annotations

import pytest

from foundry.data.attribution import fit_content_classifier, fit_style_classifier
from foundry.data.validation import validate_personas
from foundry.evaluation.memorisation import TrainingTextIndex, memorisation, training_indexes
from foundry.evaluation.metrics import attribution_scores
from foundry.evaluation.schema import EvalReport, VariantMetrics
from registry.config import PromotionConfig
from registry.promotion import decide, persona_metrics

RUN_WORDS = 12


@pytest.fixture
def corpora(config):
    """Each sample persona's train and test texts, as split by the project."""
    summary = validate_personas(config)
    return {
        p.slug: {
            split: [i.text for i in p.items if i.split == split and len(i.text.split()) >= 20]
            for split in ("train", "test")
        }
        for p in summary.personas
    }


def _measure(answers, train, classifiers):
    slugs = sorted(train)
    metrics = VariantMetrics(personas=slugs, answers=len(answers))
    truth = [row["persona"] for row in answers]
    for kind, classifier in classifiers.items():
        predicted = classifier.predict([row["answer"] for row in answers])
        setattr(metrics, f"attribution_{kind}", attribution_scores(truth, predicted, slugs))
    metrics.memorisation = memorisation(answers, training_indexes(train), RUN_WORDS, classifiers)
    return EvalReport(
        created_at="now", base_model="tiny", personas=slugs, variants=["dpo"],
        heldout_topics=[], metrics={"dpo": metrics},
    )  # fmt: skip


def test_a_model_reciting_its_training_text_tops_attribution_but_is_flagged_and_refused(corpora):
    train = {slug: texts["train"] for slug, texts in corpora.items()}
    labels = [slug for slug, texts in train.items() for _ in texts]
    texts = [text for texts in train.values() for text in texts]
    classifiers = {
        "style": fit_style_classifier(texts, labels, seed=0),
        "content": fit_content_classifier(texts, labels, seed=0),
    }
    reciter = [{"persona": s, "answer": t} for s, ts in train.items() for t in ts[:6]]
    honest = [{"persona": s, "answer": t} for s, ts in corpora.items() for t in ts["test"][:6]]

    recited = _measure(reciter, train, classifiers)
    fresh = _measure(honest, train, classifiers)

    copied, clean = recited.metrics["dpo"], fresh.metrics["dpo"]
    # Reciting wins attribution outright: exactly what a copy guard exists for.
    assert copied.attribution_content.accuracy > clean.attribution_content.accuracy
    assert copied.attribution_content.accuracy >= 0.9
    assert copied.memorisation.copy_rate == 1.0
    assert copied.memorisation.content_accuracy_without_copies is None  # nothing left
    assert clean.memorisation.copy_rate <= 0.1
    policy = PromotionConfig(min_content_recall=0.0)
    for slug in train:
        refused = decide(persona_metrics(recited, "dpo", slug), None, policy)
        assert not refused.promote
        assert f"copy_rate 1.00 > {policy.max_copy_rate:.2f} allowed" in refused.reasons
        kept = decide(persona_metrics(fresh, "dpo", slug), None, policy)
        assert not any(r.startswith("copy_rate") for r in kept.reasons), kept.reasons


def test_copy_check_measures_the_longest_shared_run_and_the_8gram_share():
    index = TrainingTextIndex(
        ["the central bank cannot print its way out of a supply shock this time either"]
    )
    recited = index.check("As I said: the central bank cannot print its way out of a supply shock.")
    assert recited.longest_run == 12
    assert recited.ngram_share == pytest.approx(5 / 8)  # 5 of its 8 word 8-grams are copied
    unrelated = index.check("Battery prices fall every year and grids adapt faster than expected.")
    assert (unrelated.longest_run, unrelated.ngram_share) == (0, 0.0)


def test_copy_rate_is_counted_per_persona_against_its_own_texts():
    train = {"a": ["one two three four five six seven eight nine ten eleven twelve thirteen"]}
    answers = [
        {
            "persona": "a",
            "answer": "one two three four five six seven eight nine ten eleven twelve",
        },
        {"persona": "a", "answer": "something else entirely, said in other words"},
        # persona b has no training texts here: copying a's text is not b's memorisation
        {
            "persona": "b",
            "answer": "one two three four five six seven eight nine ten eleven twelve",
        },
    ]
    result = memorisation(answers, training_indexes(train), RUN_WORDS)
    assert result.copy_rate_by_persona == {"a": 0.5, "b": 0.0}
    assert (result.copied, result.max_run) == (1, 12)
    assert result.copy_rate == pytest.approx(1 / 3)
