"""Cross-persona preference pairs from the sample corpora, and reading pairs.jsonl."""

from __future__ import annotations

import json
import shutil

import pytest

from foundry.config import load_config
from foundry.data.framing import item_prompts
from foundry.data.schemas import PreferencePair
from foundry.data.validation import validate_personas
from foundry.errors import DataError
from foundry.synthesis.corpus_pairs import cross_persona_pairs
from foundry.synthesis.pair_sets import load_pairs
from foundry.training.datasets import TrainingDataError
from tests.conftest import SAMPLE_DIR, make_project

SLUG = "tobias-renn"


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("pairs") / "project")
    shutil.copytree(SAMPLE_DIR, root / "data")
    return load_config(root / "foundry.yaml")


@pytest.fixture(scope="module")
def summary(config):
    return validate_personas(config)


@pytest.fixture(scope="module")
def pairs(summary):
    return cross_persona_pairs(summary, SLUG)


def _items(summary):
    return {(p.slug, item.id): item for p in summary.personas for item in p.items}


def test_pairs_are_deterministic(summary, pairs):
    assert cross_persona_pairs(summary, SLUG) == pairs
    assert cross_persona_pairs(summary, SLUG, max_pairs=20, seed=3) == cross_persona_pairs(
        summary, SLUG, max_pairs=20, seed=3
    )


def test_chosen_is_the_personas_own_text_and_splits_follow_the_items(summary, pairs):
    items = _items(summary)
    own = next(p for p in summary.personas if p.slug == SLUG)
    # Every train and validation item, under the default cap of 200; never a test item.
    assert len(pairs) == own.stats.train + own.stats.validation
    for pair in pairs:
        chosen = items[(SLUG, pair.provenance["chosen_id"])]
        assert (pair.persona, pair.chosen, pair.split) == (SLUG, chosen.text, chosen.split)
        assert pair.strategy == "cross_persona"
    assert sum(p.split == "validation" for p in pairs) == own.stats.validation


def test_no_test_text_is_ever_chosen_or_rejected(summary, pairs):
    test_texts = {i.text for p in summary.personas for i in p.items if i.split == "test"}
    assert test_texts
    assert not test_texts & ({p.chosen for p in pairs} | {p.rejected for p in pairs})


def test_rejected_always_comes_from_another_persona_of_the_same_split(summary, pairs):
    items = _items(summary)
    for pair in pairs:
        persona = pair.provenance["rejected_persona"]
        rejected = items[(persona, pair.provenance["rejected_id"])]
        assert persona != SLUG and rejected.persona == persona
        assert pair.rejected == rejected.text and pair.rejected != pair.chosen
        assert rejected.split == pair.split
    assert len({p.provenance["rejected_persona"] for p in pairs}) >= 2


def test_prompt_is_the_items_debate_prompt_and_rejections_share_its_topic(summary, pairs):
    prompts = {
        (p.slug, item_id): prompt
        for p in summary.personas
        for item_id, prompt in item_prompts(p.items, summary.topic_split.framing).items()
    }
    same_topic = 0
    for pair in pairs:
        assert pair.prompt == prompts[(SLUG, pair.provenance["chosen_id"])]
        assert pair.prompt.startswith("Debate prompt: ")
        rejected_key = (pair.provenance["rejected_persona"], pair.provenance["rejected_id"])
        same_topic += prompts[rejected_key] == pair.prompt
    # Test documents (a third of each corpus) are never rejections, so fewer share the topic.
    assert same_topic >= 0.75 * len(pairs)


def test_corpus_pairs_never_use_held_out_topics(summary, pairs):
    heldout = {f"Debate prompt: {t.prompt}" for t in summary.topic_split.heldout}
    assert heldout and not heldout & {pair.prompt for pair in pairs}


def test_max_pairs_keeps_both_splits(summary):
    capped = cross_persona_pairs(summary, SLUG, max_pairs=20)
    assert len(capped) == 20
    assert {p.split for p in capped} == {"train", "validation"}


def test_unknown_persona_or_no_other_persona_is_an_error(summary):
    with pytest.raises(DataError, match="'nobody' is not among"):
        cross_persona_pairs(summary, "nobody")
    alone = summary.model_copy(update={"personas": [summary.personas[0]]})
    with pytest.raises(DataError, match="need another persona"):
        cross_persona_pairs(alone, summary.personas[0].slug)


def _pair_line(**changes) -> str:
    row = {
        "persona": SLUG,
        "prompt": "Debate prompt: will stablecoins help the dollar?",
        "chosen": "Model the players and their payoffs first.",
        "rejected": "History rhymes: remember Bretton Woods.",
        "strategy": "synthetic-contrast",
        "split": "train",
    }
    return json.dumps(row | changes)


def test_load_pairs_reads_pairs_jsonl(config):
    path = config.data_dir / "synthetic" / SLUG / "pairs.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [_pair_line(), "", _pair_line(split="validation"), _pair_line(split="eval")]
    path.write_text("\n".join(lines) + "\n")
    try:
        pairs = load_pairs(config, SLUG)
    finally:
        path.unlink()
    # `eval` is how files from before the three-way split name the validation split.
    assert [p.split for p in pairs] == ["train", "validation", "validation"]
    assert pairs[0] == PreferencePair.model_validate_json(_pair_line())


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        (_pair_line(rejected=""), r"line 2: not a valid preference pair \(`rejected`"),
        (_pair_line(split="holdout"), r"line 2: not a valid preference pair \(`split`"),
        ('{"persona": ', r"line 2: not valid JSON"),
        (_pair_line(persona="jonah-okafor"), r"line 2: pair is for persona 'jonah-okafor'"),
    ],
)
def test_a_bad_pairs_line_names_file_and_line(config, bad_line, message):
    path = config.data_dir / "synthetic" / SLUG / "pairs.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_pair_line() + "\n" + bad_line + "\n")
    try:
        with pytest.raises(TrainingDataError, match=message) as error:
            load_pairs(config, SLUG)
    finally:
        path.unlink()
    assert str(path) in str(error.value)


def test_load_pairs_without_a_file_builds_cross_persona_pairs(config, summary):
    assert load_pairs(config, SLUG) == cross_persona_pairs(summary, SLUG, seed=config.training.seed)
