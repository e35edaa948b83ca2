"""A derived persona in the evaluation (issue 22): it answers every prompt and gets a landing
record, and the real personas' figures are exactly what they are without it."""

from __future__ import annotations

import shutil

import pytest

from foundry.config import load_config
from foundry.data.derived import compose_contract, write_contract
from foundry.data.personas import require_contract
from foundry.evaluation.run import evaluate
from tests.conftest import SAMPLE_DIR, make_project

pytestmark = pytest.mark.slow

SMALL = """
base_model: {tiny: {pretrain_steps: 10, hidden_size: 64, intermediate_size: 128,
  vocab_size: 800, batch_size: 4}}
evaluation: {prompts_per_persona: 2, max_conflicts: 2, heldout_items: 3, max_new_tokens: 12,
  embeddings: tfidf}
"""
SOURCES = {"jonah-okafor": 0.7, "marguerite-vale": 0.3}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    from foundry.training.base_model import ensure_base

    root = make_project(tmp_path_factory.mktemp("derived-eval") / "project", config_text=SMALL)
    shutil.copytree(SAMPLE_DIR, root / "data")
    config = load_config(root / "foundry.yaml")
    ensure_base(config)
    variants = ["base", "prompt"]
    alone, _ = evaluate(config, variants=variants, out_dir=root / "alone")
    # The second run reuses the real personas' cached batches; every figure is computed again.
    sources = [(require_contract(config.persona_dir(s)), w) for s, w in SOURCES.items()]
    write_contract(
        config.persona_dir("jonah-priya"), compose_contract(sources, "", "jonah-priya", "cat")
    )
    together, folder = evaluate(config, variants=variants)
    return alone, together, folder


def test_real_personas_figures_do_not_change_when_a_derived_persona_is_evaluated(reports):
    alone, together, _ = reports

    assert together.personas == alone.personas and "jonah-priya" not in together.personas
    assert together.derived == {"jonah-priya": "jonah-okafor:0.7,marguerite-vale:0.3 cat"}
    keep = {"created_at", "derived", "metrics"}
    assert together.model_dump(exclude=keep) == alone.model_dump(exclude=keep)
    for variant, metrics in together.metrics.items():
        assert metrics.model_dump(exclude={"landing"}) == alone.metrics[variant].model_dump(
            exclude={"landing"}
        )
        assert set(metrics.landing) == {"jonah-priya"}


def test_the_derived_persona_lands_between_its_sources_with_intervals(reports):
    _, together, folder = reports
    landing = together.metrics["prompt"].landing["jonah-priya"]

    assert landing.answers == len(together.heldout_topics)  # every prompt, conflicts included
    assert landing.fluency.nll_under_base > 0 and landing.memorisation is not None
    assert landing.stance is not None and landing.stance.positions > 0
    jonah, priya = landing.sources["jonah-okafor"], landing.sources["marguerite-vale"]
    assert (jonah.expected_share, priya.expected_share) == (0.7, 0.3)
    for source in (jonah, priya):
        for kind in ("content", "style"):
            share, (low, high) = (
                getattr(source, f"{kind}_share"),
                getattr(source, f"{kind}_interval"),
            )
            assert 0.0 <= low <= share <= high <= 1.0
        # The first two conflicts (max_conflicts) are jonah-okafor vs marguerite-vale.
        assert source.conflicts == 2 and source.conflict_interval is not None
    assert jonah.conflict_share + priya.conflict_share == pytest.approx(1.0)
    # The references: both sources answered the same prompts (the test topics and their two
    # conflicts), so a source's own share is its recall in the attribution's confusion matrix
    # and its floor the other source's answers given to it.
    for kind in ("content", "style"):
        scores = getattr(together.metrics["prompt"], f"attribution_{kind}")
        row = {slug: scores.confusion[scores.labels.index(slug)] for slug in SOURCES}
        for slug, other in (
            ("jonah-okafor", "marguerite-vale"),
            ("marguerite-vale", "jonah-okafor"),
        ):
            source, column = landing.sources[slug], scores.labels.index(slug)
            own = row[slug][column] / sum(row[slug])
            floor = row[other][column] / sum(row[other])
            assert getattr(source, f"{kind}_own") == pytest.approx(own, abs=1e-4)
            assert getattr(source, f"{kind}_floor") == pytest.approx(floor, abs=1e-4)
            position = getattr(source, f"{kind}_position")
            if own > floor:
                share = getattr(source, f"{kind}_share")
                assert position == pytest.approx((share - floor) / (own - floor), abs=1e-3)
            else:  # no scale to place the blend on
                assert position is None
    for source in (jonah, priya):
        assert source.conflict_own in (0.0, 0.5, 1.0, 0.25, 0.75)  # two answers, ties count half
    text = (folder / "report.md").read_text()
    assert "## Derived personas" in text and "| jonah-okafor | 0.70 |" in text
    assert (folder / "plots" / "landing_prompt.png").read_bytes()[:4] == b"\x89PNG"
    assert "(plots/landing_prompt.png)" in text
