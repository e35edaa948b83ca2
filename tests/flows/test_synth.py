"""`synthesize` end to end with the offline provider: files, provenance, splits, resume, errors."""

from __future__ import annotations

import json
import shutil

import pytest

from foundry.config import Settings, load_config
from foundry.data.schemas import DebateTurn
from foundry.data.validation import validate_personas
from foundry.synthesis.config import MOVES
from foundry.synthesis.jobs import SynthesisError
from foundry.synthesis.system_prompts import export_system_prompts
from foundry.synthesis.turn_synthesis import synthesize
from tests.conftest import SAMPLE_DIR, make_project

NO_KEY = Settings(anthropic_api_key=None)


def _project(root, config_text: str = ""):
    make_project(root, config_text=config_text)
    shutil.copytree(SAMPLE_DIR, root / "data")
    return load_config(root / "foundry.yaml")


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    config = _project(tmp_path_factory.mktemp("synth") / "project")
    summary = synthesize(config, NO_KEY, count=20)
    return config, summary


def test_auto_without_a_key_writes_offline_turns_with_provenance(synthesized):
    config, summary = synthesized
    assert summary.provider == "offline" and summary.cost_usd == 0
    for slug, counts in summary.personas.items():
        assert counts.planned == counts.generated == 20
        folder = config.data_dir / "synthetic" / slug
        turns = [DebateTurn.model_validate(r) for r in _rows(folder / "turns.jsonl")]
        rejected = _rows(folder / "rejected.jsonl")
        assert len(turns) == counts.accepted and len(rejected) == 20 - counts.accepted
        assert counts.accepted >= 15
        assert all(t.persona == slug and t.provider == "offline" for t in turns)
        assert all(len(t.prompt_hash) == 64 and t.passage_ids for t in turns)
        assert all(r["reasons"] for r in rejected)
        cached = _rows(folder / "generations.jsonl")
        assert {r["key"] for r in cached} == {t.key for t in turns} | {r["key"] for r in rejected}


def test_turns_use_train_and_dev_topics_only_and_dev_turns_are_eval(synthesized):
    config, _ = synthesized
    split = validate_personas(config).topic_split
    roles = {t.id: role for role in ("train", "dev", "heldout") for t in getattr(split, role)}
    turns = [
        DebateTurn.model_validate(r)
        for slug in ("tobias-renn", "jonah-okafor")
        for r in _rows(config.data_dir / "synthetic" / slug / "turns.jsonl")
    ]
    assert {roles[t.topic_id] for t in turns} <= {"train", "dev"}
    assert all((t.split == "validation") == (roles[t.topic_id] == "dev") for t in turns)
    assert {t.move for t in turns} == set(MOVES)
    challenges = [t for t in turns if t.move == "challenge"]
    assert challenges and all(t.opponent and t.opponent != t.persona for t in challenges)


def test_a_rerun_reuses_every_generation_and_writes_the_same_turns(synthesized):
    config, _ = synthesized
    path = config.data_dir / "synthetic" / "priya-castellanos" / "turns.jsonl"
    before = [{k: v for k, v in r.items() if k != "created_at"} for r in _rows(path)]

    again = synthesize(config, NO_KEY, count=20)

    assert all(c.generated == 0 and c.reused == 20 for c in again.personas.values())
    after = [{k: v for k, v in r.items() if k != "created_at"} for r in _rows(path)]
    assert after == before


def test_offline_synthesis_is_deterministic_across_projects(synthesized, tmp_path):
    config, _ = synthesized
    other = _project(tmp_path / "other")
    synthesize(other, NO_KEY, personas=["tobias-renn"], count=20)
    texts = [
        [r["text"] for r in _rows(c.data_dir / "synthetic" / "tobias-renn" / "generations.jsonl")]
        for c in (config, other)
    ]
    # The other project has no opponent turns yet, so only the opening turns must agree.
    assert set(texts[1]) & set(texts[0]) and len(set(texts[1]) & set(texts[0])) >= 14


def test_rejected_turns_are_kept_with_their_reasons(tmp_path):
    config = _project(tmp_path / "p", "synthesis: {filters: {min_words: 300, max_words: 400}}\n")
    summary = synthesize(config, NO_KEY, personas=["jonah-okafor"], count=5)

    assert summary.personas["jonah-okafor"].accepted == 0
    assert summary.personas["jonah-okafor"].rejected == {"too-short": 5}
    rejected = _rows(config.data_dir / "synthetic" / "jonah-okafor" / "rejected.jsonl")
    assert len(rejected) == 5 and all(r["reasons"][0].startswith("too-short") for r in rejected)
    assert (config.data_dir / "synthetic" / "jonah-okafor" / "turns.jsonl").read_text() == ""


@pytest.mark.parametrize(
    ("kwargs", "config_text", "message"),
    [
        ({"provider": "anthropic"}, "", "ANTHROPIC_API_KEY is not set.*--provider offline"),
        ({"budget_usd": 0}, "", "budget must be more than 0"),
        ({}, "synthesis: {min_corpus_items: 500}\n", r"has \d+ train corpus item\(s\) in .*corpus"),
        ({"personas": ["nobody"]}, "", "unknown persona"),
    ],
)
def test_bad_input_fails_before_anything_is_written(tmp_path, kwargs, config_text, message):
    config = _project(tmp_path / "p", config_text)
    with pytest.raises(SynthesisError, match=message):
        synthesize(config, NO_KEY, count=3, **kwargs)
    assert not (config.data_dir / "synthetic").exists()


def test_a_prompts_file_that_is_not_yaml_names_the_file(tmp_path):
    config = _project(tmp_path / "p")
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text("topics: [\n  - id: x\n   prompt: broken")
    with pytest.raises(SynthesisError, match=r"prompts\.yaml.*(YAML|yaml)"):
        synthesize(config, NO_KEY, count=3, topics_path=prompts)
    assert not (config.data_dir / "synthetic").exists()


def test_a_prompts_file_replaces_the_topics(tmp_path):
    config = _project(tmp_path / "p")
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(
        "topics:\n"
        + "".join(
            f"  - {{id: q{i}, prompt: 'Should cities tax land value {i}?'}}\n" for i in range(3)
        )
    )
    synthesize(config, NO_KEY, personas=["tobias-renn"], count=4, topics_path=prompts)
    rows = _rows(config.data_dir / "synthetic" / "tobias-renn" / "generations.jsonl")
    assert {r["topic_id"] for r in rows} <= {"q0", "q1", "q2"}


def test_system_prompts_export_carries_method_and_constitution(synthesized, tmp_path):
    config, _ = synthesized
    written = export_system_prompts(config, ["tobias-renn"], tmp_path / "prompts")
    assert [p.name for p in written] == ["tobias-renn.md"]
    text = written[0].read_text()
    contract = validate_personas(config, ["tobias-renn"]).personas[0].contract
    assert contract.name in text and contract.reasoning_method.name in text
    assert all(principle in text for principle in contract.constitution)
