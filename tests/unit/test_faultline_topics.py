"""Faultline import writes the deck's debate topics: settling questions, positions and the deck's
topic, grouped so the topic split holds groups out; it replaces only topics no persona uses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from foundry.cli.main import app
from foundry.data.faultline import ImportReport, import_faultline
from foundry.data.faultline_topics import claim_prompt
from foundry.data.personas import load_topics
from foundry.data.validation import prepare_persona, project_topic_split, validate_personas
from foundry.errors import DataError
from tests.conftest import FAULTLINE_FIXTURE, SAMPLE_DIR

ADA, BRAM, CYRA = "ada-quill", "bram-okonkwo-reyes", "cyra-lindqvist"
SAMPLE_SLUGS = sorted(p.name for p in (SAMPLE_DIR / "personas").iterdir() if p.is_dir())
ADA_WORLDVIEW = FAULTLINE_FIXTURE / "worldviews" / "Ada Quill.json"
SAMPLE_TOPIC_IDS = [t.id for t in load_topics(SAMPLE_DIR / "topics.yaml")[0]]
QUESTION_IDS = {
    "conflict-archive-vs-ledger",
    "conflict-freight-vs-household-signal",
    "conflict-influencer-advice-harm",
}
POSITION_IDS = {
    *(f"position-{ADA}-aq-p{i}" for i in (1, 2, 3)),
    *(f"position-{BRAM}-bor-p{i}" for i in (1, 2, 3)),
}
GROUPS = {
    "faultline-conflict-empirical",
    "faultline-conflict-temporal",
    "faultline-conflict-value",
    "faultline-position-causal",
    "faultline-position-empirical",
    "faultline-position-methodological",
    "faultline-position-normative",
    "faultline-position-predictive",
}


def _import(source: Path, config, **kwargs) -> ImportReport:
    def validate(folder: Path):
        return prepare_persona(config, folder.name, persona_dir=folder).problems

    return import_faultline(source, config, validate=validate, **kwargs)


def _topics(config) -> dict:
    topics, problems = load_topics(config.topics_file)
    assert not problems
    return {t.id: t for t in topics}


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2), encoding="utf-8")


def _remove_sample_personas(config) -> None:
    for slug in SAMPLE_SLUGS:
        shutil.rmtree(config.persona_dir(slug))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A private copy of the Faultline fixture that a test may change."""
    return Path(shutil.copytree(FAULTLINE_FIXTURE, tmp_path / "faultline"))


@pytest.fixture
def deck_only(config, source: Path) -> ImportReport:
    """The fixture imported into a project whose sample personas were deleted."""
    _remove_sample_personas(config)
    return _import(source, config)


# What is written


def test_import_writes_settling_questions_and_positions_as_topics(config, deck_only) -> None:
    topics = _topics(config)

    assert set(topics) == QUESTION_IDS | POSITION_IDS
    report = deck_only.topics
    assert (report.questions, report.positions, report.deck_topics) == (3, 6, 0)
    assert report.written == 9 and report.duplicates == 0
    assert {t.group for t in topics.values()} == GROUPS
    assert report.groups == 8
    conflicts = {c["id"]: c for c in _json(FAULTLINE_FIXTURE / "worldviews" / "_conflicts.json")}
    question = topics["conflict-freight-vs-household-signal"]
    assert question.prompt == conflicts["freight-vs-household-signal"]["settlingQuestion"]
    assert question.group == "faultline-conflict-temporal"
    assert question.tags == ["faultline", "settling-question", f"persona:{ADA}", f"persona:{BRAM}"]
    position = topics[f"position-{ADA}-aq-p1"]
    assert position.prompt == (
        "Freight rates lead retail sales by about two quarters. Is that right, and why?"
    )
    assert position.group == "faultline-position-empirical"
    assert position.tags == ["faultline", "position", f"persona:{ADA}"]


def test_imported_prompts_are_questions_without_duplicates(config, deck_only) -> None:
    prompts = [t.prompt for t in _topics(config).values()]

    assert all(p.endswith("?") for p in prompts)
    assert len({p.casefold() for p in prompts}) == len(prompts) == 9
    # The canal conflict names a persona outside the folder: no topic from it.
    assert not any("canal" in p for p in prompts)


def test_split_of_the_imported_topics_holds_out_whole_groups(config, deck_only) -> None:
    _, split, problems = project_topic_split(config)

    assert not problems
    # The 3 settling questions' groups are the conflicts' (asked as them, never trained on); of
    # the 5 other groups round(5 x 25%) = 1 is held out.
    assert deck_only.topics.heldout_groups == 1 and deck_only.topics.conflict_groups == 3
    heldout = {t.group_key for t in split.heldout}
    assert len(heldout) == 1 and split.dev and split.train
    questions = [t for t in _topics(config).values() if "settling-question" in t.tags]
    assert len(questions) == 3 and split.conflict_topics == questions
    assert all(split.role(t.id) == "heldout" for t in questions)
    for role in ("train", "dev"):
        assert not heldout & {t.group_key for t in getattr(split, role)}
    assert validate_personas(config).topic_split.heldout == split.heldout


def test_positions_of_one_type_become_their_own_groups(config, source: Path) -> None:
    for stem in ("Ada Quill", "Bram Okonkwo-Reyes"):
        path = source / "worldviews" / f"{stem}.json"
        worldview = _json(path)
        for position in worldview["positions"]:
            position["type"] = "empirical"
        _write_json(path, worldview)
    (source / "worldviews" / "_conflicts.json").unlink()
    _remove_sample_personas(config)

    report = _import(source, config)

    topics = _topics(config)
    assert set(topics) == POSITION_IDS
    assert all(t.group == "" for t in topics.values())  # one group would hold nothing out
    assert (report.topics.groups, report.topics.heldout_groups) == (6, 2)
    assert project_topic_split(config)[1].heldout


def test_deck_topic_from_personas_json(config, source: Path) -> None:
    index = _json(source / "personas.json")
    index["decks"][0]["topic"] = "Shipping data against household data as a recession signal"
    _write_json(source / "personas.json", index)
    _remove_sample_personas(config)

    report = _import(source, config, deck="harbour-economists")

    topic = _topics(config)["deck-harbour-economists"]
    assert topic.prompt == (
        "Shipping data against household data as a recession signal: where do you stand, and why?"
    )
    assert topic.group == "faultline-deck-harbour-economists"
    assert "deck:harbour-economists" in topic.tags and f"persona:{BRAM}" in topic.tags
    # Only the deck's own conflict (Ada vs Bram): the others name Cyra, outside the deck.
    assert (report.topics.deck_topics, report.topics.questions, report.topics.positions) == (
        1,
        1,
        6,
    )


def test_claim_prompt_keeps_the_claim_and_asks() -> None:
    assert claim_prompt("Rates lead sales.") == "Rates lead sales. Is that right, and why?"
    assert claim_prompt("Rates  lead\nsales") == "Rates lead sales. Is that right, and why?"
    assert claim_prompt("Do rates lead sales?") == "Do rates lead sales?"


# What is replaced


def test_sample_topics_are_replaced_when_only_imported_personas_remain(config, deck_only) -> None:
    assert deck_only.topics.sample_replaced == len(SAMPLE_TOPIC_IDS) == 63
    assert deck_only.topics.kept == 0
    assert not set(SAMPLE_TOPIC_IDS) & set(_topics(config))


def test_sample_topics_stay_while_a_sample_persona_remains(config, source: Path) -> None:
    for slug in SAMPLE_SLUGS[1:]:
        shutil.rmtree(config.persona_dir(slug))

    report = _import(source, config)

    ids = list(_topics(config))
    assert ids[: len(SAMPLE_TOPIC_IDS)] == SAMPLE_TOPIC_IDS
    assert set(ids[len(SAMPLE_TOPIC_IDS) :]) == QUESTION_IDS | POSITION_IDS
    assert (report.topics.sample_replaced, report.topics.kept) == (0, 63)


def test_hand_written_topic_is_kept_and_not_repeated(config, source: Path) -> None:
    raw = yaml.safe_load(config.topics_file.read_text(encoding="utf-8"))
    raw["topics"] += [
        {"id": "my-freight", "prompt": "Do freight rates lead retail sales by two quarters?"},
        {"id": "my-rates", "prompt": claim_prompt(_json(ADA_WORLDVIEW)["positions"][0]["claim"])},
    ]
    config.topics_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    _remove_sample_personas(config)

    report = _import(source, config)

    topics = _topics(config)
    assert list(topics)[:2] == ["my-freight", "my-rates"]
    assert f"position-{ADA}-aq-p1" not in topics  # its prompt is my-rates'
    assert (report.topics.kept, report.topics.duplicates, report.topics.positions) == (2, 1, 5)
    assert report.topics.sample_replaced == 63


def test_rerunning_the_import_writes_the_same_file(config, deck_only, source: Path) -> None:
    before = config.topics_file.read_bytes()

    report = _import(source, config)

    assert config.topics_file.read_bytes() == before
    assert report.topics.written == 9
    assert (report.topics.kept, report.topics.removed, report.topics.sample_replaced) == (0, 0, 0)


def test_a_later_deck_keeps_the_earlier_decks_topics(config, source: Path) -> None:
    _remove_sample_personas(config)
    first = _import(source, config, deck="harbour-economists")
    assert first.topics.written == 7

    second = _import(source, config, deck="lone-archivist")

    assert (second.topics.questions, second.topics.positions, second.topics.kept) == (2, 0, 7)
    assert set(_topics(config)) == QUESTION_IDS | POSITION_IDS


def test_topics_of_a_deleted_persona_are_removed(config, deck_only, source: Path) -> None:
    shutil.rmtree(config.persona_dir(CYRA))

    report = _import(source, config, deck="harbour-economists")

    # Both conflicts with Cyra go; Ada and Bram's topics are rewritten in place.
    assert report.topics.removed == 2
    assert (
        set(_topics(config))
        == QUESTION_IDS
        - {
            "conflict-archive-vs-ledger",
            "conflict-influencer-advice-harm",
        }
        | POSITION_IDS
    )


# Failures


def test_failed_import_leaves_topics_file_untouched(config, source: Path) -> None:
    _remove_sample_personas(config)
    before = config.topics_file.read_bytes()
    # Found while staging, after the topics are planned: nothing may be written.
    path = source / "beliefs" / "Ada Quill.json"
    graph = _json(path)
    graph["edges"][0]["to"] = "nowhere"
    _write_json(path, graph)

    with pytest.raises(DataError, match="nowhere"):
        _import(source, config)

    assert config.topics_file.read_bytes() == before
    assert not config.persona_dir(ADA).exists()


def test_unreadable_topics_file_refuses_the_import(config, source: Path) -> None:
    config.topics_file.write_text("topics: [\n", encoding="utf-8")

    with pytest.raises(DataError) as caught:
        _import(source, config)

    assert f"{config.topics_file}" in str(caught.value)
    assert "cannot merge imported topics" in str(caught.value)
    assert config.topics_file.read_text(encoding="utf-8") == "topics: [\n"
    assert not config.persona_dir(ADA).exists()


# The command line and validate


def test_cli_import_says_what_it_did_to_the_topics(project, config, monkeypatch) -> None:
    import foundry.cli.common

    monkeypatch.setattr(foundry.cli.common.console, "width", 400)
    _remove_sample_personas(config)
    args = [
        "import",
        "faultline",
        str(FAULTLINE_FIXTURE),
        "--config",
        str(project / "foundry.yaml"),
    ]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    assert (
        "topics: 9 written from the whole folder (3 settling question(s), 6 position(s)) to "
        f"{config.topics_file}; 63 sample topic(s) replaced, 0 kept; 8 group(s), 1 held out for "
        "evaluation, 3 of conflict questions (asked as the conflicts)"
    ) in " ".join(result.output.split())


def test_validate_reports_a_broken_beliefs_json_naming_the_file(config, deck_only) -> None:
    path = config.persona_dir(ADA) / "beliefs.json"
    graph = _json(path)
    graph["edges"][0]["to_node"] = "nowhere"
    _write_json(path, graph)

    summary = validate_personas(config)

    ada = next(p for p in summary.personas if p.slug == ADA)
    errors = [p for p in ada.problems if p.level == "error"]
    assert [(p.path, p.where) for p in errors] == [(path, "edges[0]")]
    assert "'nowhere'" in errors[0].message
    assert summary.error_count == 1


def test_validate_reports_unreadable_beliefs_json(config, deck_only) -> None:
    path = config.persona_dir(BRAM) / "beliefs.json"
    path.write_text("{", encoding="utf-8")

    bram = next(p for p in validate_personas(config).personas if p.slug == BRAM)

    assert [str(p) for p in bram.problems if p.level == "error"] == [
        f"{path}, line 1: not valid JSON (Expecting property name enclosed in double quotes); "
        "fix the JSON syntax"
    ]
