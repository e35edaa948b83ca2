"""`build_pairs` from offline turns, with generic negatives by the local base model."""

from __future__ import annotations

import json
import shutil

import pytest

from foundry.config import Settings, load_config
from foundry.data.schemas import DebateTurn
from foundry.data.validation import validate_personas
from foundry.synthesis.jobs import SynthesisError
from foundry.synthesis.pair_building import build_pairs
from foundry.synthesis.pair_sets import export_pairs, load_pairs
from foundry.synthesis.turn_synthesis import synthesize
from foundry.training.base_model import ensure_base
from tests.conftest import SAMPLE_DIR, make_project

pytestmark = pytest.mark.slow

NO_KEY = Settings(anthropic_api_key=None)
SMALL_BASE = """
base_model: {tiny: {pretrain_steps: 10, hidden_size: 64, intermediate_size: 128,
  vocab_size: 800, batch_size: 4}}
synthesis: {pairs: {mix: {cross_persona: 0.5, generic: 0.5}}}
"""


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("pairs") / "project", config_text=SMALL_BASE)
    shutil.copytree(SAMPLE_DIR, root / "data")
    config = load_config(root / "foundry.yaml")
    synthesize(config, NO_KEY, count=16)
    summary = build_pairs(config, NO_KEY, load_base=lambda: ensure_base(config))
    return config, summary


def _turns(config, slug):
    path = config.data_dir / "synthetic" / slug / "turns.jsonl"
    return {t.key: t for t in map(DebateTurn.model_validate_json, path.read_text().splitlines())}


def test_pairs_follow_the_mix_and_their_invariants(paired):
    config, summary = paired
    assert summary.provider == "local"
    all_turns = {k: t for p in summary.personas for k, t in _turns(config, p).items()}
    for slug, counts in summary.personas.items():
        pairs = load_pairs(config, slug)
        assert len(pairs) == sum(v for k, v in counts.items() if k != "validation") >= 10
        assert counts.get("cross_persona", 0) >= 4 and counts.get("generic", 0) >= 4
        for pair in pairs:
            chosen = all_turns[pair.provenance["chosen_key"]]
            assert (pair.persona, pair.chosen, pair.prompt) == (slug, chosen.text, chosen.prompt)
            assert pair.chosen != pair.rejected
            if pair.strategy == "cross_persona":
                rejected = all_turns[pair.provenance["rejected_key"]]
                assert rejected.persona == pair.provenance["rejected_persona"] != slug
                assert rejected.text == pair.rejected and rejected.topic_id == chosen.topic_id


def test_no_prompt_is_in_both_train_and_validation_pairs(paired):
    config, summary = paired
    pairs = [p for slug in summary.personas for p in load_pairs(config, slug)]
    train = {p.prompt for p in pairs if p.split == "train"}
    evaluation = {p.prompt for p in pairs if p.split == "validation"}
    assert evaluation and not train & evaluation
    heldout = {t.prompt for t in validate_personas(config).topic_split.heldout}
    assert not any(h in p.prompt for p in pairs for h in heldout)


def test_generic_negatives_are_the_base_models_answers_and_are_cached(paired):
    config, summary = paired
    slug = "marguerite-vale"
    generations = [
        json.loads(line)
        for line in (config.data_dir / "synthetic" / slug / "generations.jsonl")
        .read_text()
        .splitlines()
    ]
    generic = {r["key"]: r for r in generations if r.get("kind") == "generic"}
    pairs = [p for p in load_pairs(config, slug) if p.strategy == "generic"]
    assert pairs and all(generic[p.provenance["rejected_key"]]["text"] == p.rejected for p in pairs)
    assert all(generic[p.provenance["rejected_key"]]["provider"] == "local" for p in pairs)

    def no_base():
        raise AssertionError("a rerun must not need the base model")

    again = build_pairs(config, NO_KEY, personas=[slug], load_base=no_base)
    assert again.personas[slug] == summary.personas[slug]


def test_exports_write_one_row_per_pair(paired, tmp_path):
    config, summary = paired
    out = tmp_path / "together.jsonl"
    count = export_pairs(config, ["tobias-renn"], "together", out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    pairs = load_pairs(config, "tobias-renn")
    assert count == len(rows) == len(pairs)
    assert rows[0]["preferred_output"][0]["content"] == pairs[0].chosen
    assert rows[0]["non_preferred_output"][0]["content"] == pairs[0].rejected


def test_pairs_without_turns_say_to_run_synth_first(tmp_path):
    root = make_project(tmp_path / "p")
    shutil.copytree(SAMPLE_DIR, root / "data")
    config = load_config(root / "foundry.yaml")
    with pytest.raises(SynthesisError, match="no synthetic turns .*`foundry synth --persona"):
        build_pairs(config, NO_KEY, personas=["tobias-renn"])
    assert not (config.data_dir / "synthetic" / "tobias-renn" / "pairs.jsonl").exists()
