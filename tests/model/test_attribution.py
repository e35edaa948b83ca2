"""Trained adapters speak as their persona: a TF-IDF classifier trained on the real corpora
attributes their generations to their own persona far above chance and above the base model."""

from __future__ import annotations

import shutil

import pytest

from foundry.attribution import fit_attribution, largest_share, own_share
from foundry.config import load_config
from foundry.framing import debate_prompt
from tasks.corpus import validate_personas
from tests.conftest import SAMPLE_DIR, make_project

pytestmark = pytest.mark.slow
PROMPTS_PER_PERSONA = 24
MIN_OWN_SHARE = 0.6  # chance is 0.25 with four personas
MIN_MARGIN_OVER_BASE = 0.15


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The sample's four personas with SFT and DPO adapters on the default tiny base."""
    from tasks.train import ensure_base, train_dpo, train_sft

    root = make_project(tmp_path_factory.mktemp("attribution") / "project")
    shutil.copytree(SAMPLE_DIR, root / "data")
    config = load_config(root / "foundry.yaml")
    summary = validate_personas(config)
    ensure_base(config)
    for persona in summary.personas:
        train_sft(config, persona.slug)
        train_dpo(config, persona.slug)
    return config, summary


@pytest.fixture(scope="module")
def generations(trained):
    """Answers of every variant to the same debate prompts (sampled, fixed seed)."""
    from foundry.generation import (
        GenerationParams,
        GenerationRequest,
        generate,
        load_for_generation,
    )

    config, summary = trained
    prompts = [debate_prompt(t) for t in summary.topics[:PROMPTS_PER_PERSONA]]
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


@pytest.fixture(scope="module")
def classifier(trained):
    _, summary = trained
    train = [(i.text, p.slug) for p in summary.personas for i in p.items if i.split == "train"]
    return fit_attribution([t for t, _ in train], [s for _, s in train])


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_each_adapter_is_attributed_to_its_own_persona(trained, generations, classifier, stage):
    _, summary = trained
    base_persona, base_share = largest_share(classifier, generations["__base__"])
    shares = {
        p.slug: own_share(classifier, generations[f"{p.slug}-{stage}"], p.slug)
        for p in summary.personas
    }
    print(f"\n{stage} own-persona shares: {shares}; base's largest: {base_persona} {base_share}")
    for slug, share in shares.items():
        assert share >= MIN_OWN_SHARE, (slug, share)
        assert share >= base_share + MIN_MARGIN_OVER_BASE, (slug, share, base_share)


def test_generations_are_text_not_copies_of_one_answer(generations):
    for name, answers in generations.items():
        assert all(answer.strip() for answer in answers), name
        assert len(set(answers)) > len(answers) // 2, name


@pytest.fixture(scope="module")
def evaluation(trained, tmp_path_factory):
    from tasks.evaluate import evaluate

    config, _ = trained
    return evaluate(config, out_dir=tmp_path_factory.mktemp("eval") / "report")


def test_evaluation_sees_trained_adapters_where_base_and_prompt_are_not(evaluation):
    report, _ = evaluation
    assert report.variants == ["base", "prompt", "sft", "dpo"] and not report.skipped
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
    from foundry.eval_schema import EvalReport

    report, folder = evaluation
    reread = EvalReport.model_validate_json((folder / "metrics.json").read_text())
    assert reread == report
    markdown = (folder / "report.md").read_text()
    assert all(f"| {variant} " in markdown for variant in report.variants)
    plots = sorted(p.name for p in (folder / "plots").glob("*.png"))
    assert "variants.png" in plots and any(p.startswith("confusion_") for p in plots)
    answers = (folder / "answers.jsonl").read_text().splitlines()
    assert len(answers) == len(report.variants) * len(report.personas) * len(report.heldout_topics)
