"""Trained adapters speak as their persona: a TF-IDF classifier trained on the real corpora
attributes their generations to their own persona far above chance and above the base model.

Every prompt here is a test prompt: a held-out topic (never synthesized or trained on, and no
corpus item about it was trained on) or a conflict question. The classifier is fitted on the train
and validation texts only."""

from __future__ import annotations

import shutil

import pytest

from foundry.config import load_config
from foundry.data.attribution import fit_attribution, largest_share, own_share
from foundry.data.framing import debate_prompt
from foundry.data.validation import validate_personas
from tests.conftest import SAMPLE_DIR, make_project

pytestmark = pytest.mark.slow
PROMPTS_PER_PERSONA = 24
# Chance is 0.25 with four personas: 10 or more of 24 answers (0.42) happen by chance with p < 0.05.
MIN_OWN_SHARE = 0.4
MIN_MEAN_OWN_SHARE = 0.6
MIN_MARGIN_OVER_BASE = 0.15  # over the base model's share for the same persona, same prompts


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The sample's four personas with SFT and DPO adapters on the default tiny base, trained
    two at a time in worker processes as the retrain flow does (one torch thread each)."""
    from concurrent.futures import ThreadPoolExecutor

    from foundry.training.base_model import ensure_base
    from foundry.training.pool import plan_workers, run_in_pool, training_pool
    from tasks.train import train_persona

    root = make_project(tmp_path_factory.mktemp("attribution") / "project")
    shutil.copytree(SAMPLE_DIR, root / "data")
    config = load_config(root / "foundry.yaml")
    summary = validate_personas(config)
    ensure_base(config)
    slugs = [persona.slug for persona in summary.personas]
    workers, threads = plan_workers(0, len(slugs))
    with training_pool(workers, threads), ThreadPoolExecutor(workers) as submit:
        list(submit.map(lambda slug: run_in_pool(train_persona, str(config.source), slug), slugs))
    return config, summary


@pytest.fixture(scope="module")
def generations(trained):
    """Answers of every variant to the same debate prompts (sampled, fixed seed)."""
    from foundry.training.generation import (
        GenerationParams,
        GenerationRequest,
        generate,
        load_for_generation,
    )

    config, summary = trained
    prompts = unseen_prompts(config, summary)[:PROMPTS_PER_PERSONA]
    assert len(prompts) == PROMPTS_PER_PERSONA
    adapters = {
        f"{p.slug}-{stage}": config.adapter_dir(p.slug, stage)
        for p in summary.personas
        for stage in ("sft", "dpo")
    }
    model, tokenizer = load_for_generation(config, adapters)
    names = [*adapters, "__base__"]
    requests = [GenerationRequest(prompt=q, adapter=name) for name in names for q in prompts]
    params = GenerationParams(max_new_tokens=80, temperature=0.6, top_p=0.95, seed=0)
    answers = generate(model, tokenizer, requests, params)
    by_name: dict[str, list[str]] = {name: [] for name in names}
    for request, answer in zip(requests, answers, strict=True):
        by_name[request.adapter].append(answer)
    return by_name


def unseen_prompts(config, summary) -> list[str]:
    """Held-out topics' prompts, then the conflict questions: never trained or synthesized on."""
    import yaml

    from foundry.data.schemas import ConflictFile

    conflicts = ConflictFile.model_validate(yaml.safe_load(config.conflicts_file.read_text()))
    heldout = [debate_prompt(t) for t in summary.topic_split.heldout]
    return heldout + [f"Debate prompt: {c.question}" for c in conflicts.conflicts]


@pytest.fixture(scope="module")
def classifier(trained):
    _, summary = trained
    seen = [
        (i.text, p.slug)
        for p in summary.personas
        for i in p.items
        if i.split in ("train", "validation")
    ]
    return fit_attribution([t for t, _ in seen], [s for _, s in seen])


def test_the_classifier_reads_the_real_test_texts(trained, classifier):
    """The attribution ceiling: real test texts (never fitted on) go to their own author."""
    _, summary = trained
    test = [(i.text, p.slug) for p in summary.personas for i in p.items if i.split == "test"]
    predicted = classifier.predict([text for text, _ in test])
    accuracy = sum(p == slug for p, (_, slug) in zip(predicted, test, strict=True)) / len(test)
    print(f"\nclassifier accuracy on {len(test)} real test texts: {accuracy:.2f}")
    assert accuracy >= 0.7


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_each_adapter_is_attributed_to_its_own_persona(trained, generations, classifier, stage):
    _, summary = trained
    base_persona, base_largest = largest_share(classifier, generations["__base__"])
    shares = {
        p.slug: own_share(classifier, generations[f"{p.slug}-{stage}"], p.slug)
        for p in summary.personas
    }
    base = {slug: own_share(classifier, generations["__base__"], slug) for slug in shares}
    print(
        f"\n{stage} own-persona shares: {shares}; the base's shares: {base} "
        f"(largest {base_persona} {base_largest})"
    )
    assert sum(shares.values()) / len(shares) >= MIN_MEAN_OWN_SHARE, shares
    for slug, share in shares.items():
        assert share >= MIN_OWN_SHARE, (slug, share)
        assert share >= base[slug] + MIN_MARGIN_OVER_BASE, (slug, share, base[slug])


def test_generations_are_text_not_copies_of_one_answer(generations):
    for name, answers in generations.items():
        assert all(answer.strip() for answer in answers), name
        assert len(set(answers)) > len(answers) // 2, name


@pytest.fixture(scope="module")
def evaluation(trained, tmp_path_factory):
    from foundry.evaluation.run import evaluate

    config, _ = trained
    return evaluate(config, out_dir=tmp_path_factory.mktemp("eval") / "report")


def test_evaluation_sees_trained_adapters_where_base_and_prompt_are_not(evaluation):
    report, _ = evaluation
    assert report.variants == ["base", "prompt", "sft", "dpo"]
    assert {s.variant for s in report.skipped} <= {"steer", "dpo+steer"}  # no vectors here
    accuracy = {
        kind: {v: getattr(m, f"attribution_{kind}").accuracy for v, m in report.metrics.items()}
        for kind in ("style", "content")
    }
    print(f"\nattribution accuracy by variant: {accuracy}")
    for kind in ("style", "content"):
        for trained_variant in ("sft", "dpo"):
            assert accuracy[kind][trained_variant] > max(
                accuracy[kind]["base"], accuracy[kind]["prompt"]
            ), (kind, accuracy[kind])
    # One base model for every persona: its answers cannot differ by persona more than chance.
    assert report.metrics["base"].attribution_content.accuracy <= 0.5
    assert report.ceiling_content.accuracy > 0.6


def test_evaluation_writes_a_report_a_schema_valid_json_and_plots(evaluation):
    from foundry.evaluation.schema import EvalReport

    report, folder = evaluation
    reread = EvalReport.model_validate_json((folder / "metrics.json").read_text())
    assert reread == report
    markdown = (folder / "report.md").read_text()
    assert all(f"| {variant} " in markdown for variant in report.variants)
    plots = sorted(p.name for p in (folder / "plots").glob("*.png"))
    assert "variants.png" in plots and any(p.startswith("confusion_") for p in plots)
    answers = (folder / "answers.jsonl").read_text().splitlines()
    assert len(answers) == len(report.variants) * len(report.personas) * len(report.heldout_topics)


@pytest.fixture(scope="module")
def steered(trained, tmp_path_factory):
    """Every persona's vector extracted (a shorter sweep), beside a copy of the adapters."""
    from tasks.steering import extract_persona_vectors

    config, summary = trained
    folder = tmp_path_factory.mktemp("steered") / "adapters"
    shutil.copytree(config.adapters_dir, folder)
    settings = config.steering.model_copy(
        update={"alphas": [0.0, 2.0, 4.0, 8.0], "prompts": 8, "sweep_prompts": 6}
    )
    config = config.with_adapters_dir(folder).model_copy(update={"steering": settings})
    return config, summary, {r.persona: r for r in extract_persona_vectors(config)}


def test_steering_at_the_chosen_strength_raises_attribution_and_stays_fluent(steered, classifier):
    """Checked on held-out topics the sweep never saw, by another classifier than the sweep's."""
    from foundry.steering.variants import resolve_variant
    from foundry.training.generation import (
        GenerationParams,
        GenerationRequest,
        generate,
        load_for_generation,
    )
    from foundry.training.scoring import ScoreRow, score_completions

    config, summary, results = steered
    tolerance = config.steering.fluency_tolerance
    for result in results.values():
        rows = {r["alpha"]: r for r in result.sweep["steer"]}
        assert rows[result.alpha["steer"]]["nll_gain"] <= tolerance
    assert sum(r.alpha["steer"] > 0 for r in results.values()) >= 3, {
        s: r.alpha for s, r in results.items()
    }
    resolved = [resolve_variant(config, p.contract, "steer") for p in summary.personas]
    model, tokenizer = load_for_generation(config, {}, resolved)
    prompts = [debate_prompt(t) for t in summary.topic_split.heldout]
    params = GenerationParams(max_new_tokens=60, temperature=0.7, seed=1)
    gains, nll_gains = [], []
    for variant in resolved:
        if results[variant.persona].alpha["steer"] == 0.0:
            continue
        requests = [GenerationRequest(prompt=q, steer=(variant.steer,)) for q in prompts]
        steered_answers = generate(model, tokenizer, requests, params)
        plain = generate(model, tokenizer, [GenerationRequest(prompt=q) for q in prompts], params)
        gains.append(
            own_share(classifier, steered_answers, variant.persona)
            - own_share(classifier, plain, variant.persona)
        )
        nll = [
            score_completions(
                model,
                tokenizer,
                [ScoreRow(q, a or " ") for q, a in zip(prompts, texts, strict=True)],
            )
            for texts in (steered_answers, plain)
        ]
        mean = [sum(s.nll for s in n) / sum(s.tokens for s in n) for n in nll]
        nll_gains.append(mean[0] - mean[1])
    print(f"\nsteering: own-share gains {gains}, NLL gains {nll_gains}")
    assert sum(gains) / len(gains) >= 0.2 and min(gains) > 0
    assert max(nll_gains) <= tolerance + 0.25  # the guard, with room for other prompts
