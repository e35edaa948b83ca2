"""The whole evaluation against a planted cheat: a "model" that answers every held-out prompt
with one of its persona's training paragraphs, verbatim.

Attribution alone would crown it (a recited paragraph is the persona's own text); the memorisation
guard must flag it and the promotion gate must refuse it.
"""

from __future__ import annotations

import itertools
import shutil

import pytest

from foundry.config import load_config
from foundry.evaluation.run import evaluate
from foundry.steering.variants import resolve_variant
from registry.config import PromotionConfig
from registry.promotion import decide, persona_metrics
from tests.conftest import SAMPLE_DIR, make_project

pytestmark = pytest.mark.slow
SMALL = """
base_model: {tiny: {pretrain_steps: 10, hidden_size: 64, intermediate_size: 128,
  vocab_size: 800, batch_size: 4}}
evaluation: {prompts_per_persona: 4, max_conflicts: 2, heldout_items: 3, max_new_tokens: 12,
  embeddings: tfidf, variants: [base, prompt]}
"""
HONEST = "Nobody can say for sure; it depends on many things that are hard to know today."


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The evaluation report when the `prompt` variant recites and `base` answers honestly."""
    import foundry.evaluation.answers as answers
    from foundry.data.validation import validate_personas
    from foundry.training.base_model import ensure_base

    root = make_project(tmp_path_factory.mktemp("planted") / "repo", config_text=SMALL)
    shutil.copytree(SAMPLE_DIR, root / "data")
    config = load_config(root / "foundry.yaml")
    ensure_base(config)
    summary = validate_personas(config)
    recital = {
        resolve_variant(config, p.contract, "prompt").system: itertools.cycle(
            [i.text for i in p.items if i.split == "train" and len(i.text.split()) >= 20]
        )
        for p in summary.personas
    }

    def reciter(load, requests, params):
        return lambda: [next(recital[r.system]) if r.system else HONEST for r in requests]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(answers, "_generator", reciter)
        report, _ = evaluate(config, out_dir=root / "report", cache=False)
    return report


def test_the_reciter_tops_attribution(planted):
    recited, honest = planted.metrics["prompt"], planted.metrics["base"]
    assert recited.attribution_content.accuracy >= 0.8
    assert recited.attribution_content.accuracy > honest.attribution_content.accuracy
    assert recited.attribution_style.accuracy > honest.attribution_style.accuracy


def test_the_copy_rate_flags_every_recited_answer_and_no_honest_one(planted):
    recited, honest = planted.metrics["prompt"], planted.metrics["base"]
    assert recited.memorisation.copy_rate == 1.0
    assert recited.memorisation.max_run >= 20
    assert recited.memorisation.content_accuracy_without_copies is None  # nothing honest left
    assert honest.memorisation.copy_rate == 0.0


def test_the_copy_rate_gate_refuses_the_reciter_for_every_persona(planted):
    policy = PromotionConfig()
    for slug in planted.personas:
        decision = decide(persona_metrics(planted, "prompt", slug), None, policy)
        assert not decision.promote, slug
        assert f"copy_rate 1.00 > {policy.max_copy_rate:.2f} allowed" in decision.reasons
