"""Slug rule, persona contract, corpus item and topic file validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from foundry.data.schemas import CorpusItem, PersonaContract, TopicFile
from foundry.slugs import MAX_SLUG_CHARS, check_slug, slugify
from tests.conftest import SAMPLE_DIR

SAMPLE_CONTRACTS = sorted((SAMPLE_DIR / "personas").glob("*/contract.yaml"))


# slugify


def test_slugify_lowercases_and_joins_words_with_dashes() -> None:
    assert slugify("Dylan Patel") == "dylan-patel"


def test_slugify_turns_accented_letters_into_ascii() -> None:
    assert slugify("Zoë Ångström-Niño") == "zoe-angstrom-nino"


def test_slugify_collapses_runs_of_punctuation_into_one_dash() -> None:
    assert slugify("  Dr. J. -- O'Brien!!  ") == "dr-j-o-brien"


def test_slugify_makes_a_path_traversal_name_harmless() -> None:
    assert slugify("../../etc") == "etc"


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "a/../b", "..\\..\\windows", "/root/..", "x/./y"]
)
def test_slugify_never_yields_a_separator_or_parent_reference(name: str) -> None:
    slug = slugify(name)
    assert "/" not in slug
    assert "\\" not in slug
    assert ".." not in slug
    assert check_slug(slug) == slug


def test_slugify_cuts_long_names_to_the_limit_without_a_trailing_dash() -> None:
    slug = slugify("word " * 40)
    assert len(slug) <= MAX_SLUG_CHARS
    assert not slug.endswith("-")
    assert check_slug(slug) == slug


@pytest.mark.parametrize("name", ["!!!", "..", "../..", "  ", "---", "东京"])
def test_slugify_rejects_a_name_without_letters_or_digits_and_says_how_to_fix(name: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        slugify(name)
    message = str(excinfo.value)
    assert repr(name) in message
    assert "no letters or digits" in message
    assert "set `slug:` explicitly" in message


# check_slug


@pytest.mark.parametrize("slug", ["a", "dylan-patel", "x1", "2024-q3-notes", "a" * MAX_SLUG_CHARS])
def test_check_slug_accepts_valid_slugs(slug: str) -> None:
    assert check_slug(slug) == slug


@pytest.mark.parametrize(
    "slug",
    [
        "",
        "../x",
        "A",
        "Dylan-Patel",
        "a--b",
        "-a",
        "a-",
        "a b",
        "a_b",
        "a.b",
        "a/b",
        "a" * (MAX_SLUG_CHARS + 1),
    ],
)
def test_check_slug_rejects_invalid_slugs(slug: str) -> None:
    with pytest.raises(ValueError, match="is not a valid slug"):
        check_slug(slug)


def test_check_slug_error_suggests_a_valid_slug() -> None:
    with pytest.raises(ValueError) as excinfo:
        check_slug("Dylan Patel")
    message = str(excinfo.value)
    assert "'Dylan Patel'" in message
    assert "lowercase letters, digits and single dashes" in message
    assert "'dylan-patel'" in message


def test_check_slug_error_for_empty_value_still_suggests_a_slug() -> None:
    with pytest.raises(ValueError, match="'my-persona'"):
        check_slug("")


# PersonaContract


def test_contract_derives_the_slug_from_the_name() -> None:
    contract = PersonaContract(name="Dylan Patel")
    assert contract.slug == "dylan-patel"


def test_contract_keeps_an_explicit_valid_slug() -> None:
    contract = PersonaContract(name="Dylan Patel", slug="dp")
    assert contract.slug == "dp"


@pytest.mark.parametrize("slug", ["../x", "Dylan", "a--b", "has space"])
def test_contract_rejects_an_explicit_invalid_slug(slug: str) -> None:
    with pytest.raises(ValidationError, match="is not a valid slug"):
        PersonaContract(name="Dylan Patel", slug=slug)


def test_contract_rejects_a_name_that_gives_no_slug() -> None:
    with pytest.raises(ValidationError, match="cannot make a slug"):
        PersonaContract(name="???")


def test_contract_rejects_an_unknown_field_and_names_it() -> None:
    with pytest.raises(ValidationError) as excinfo:
        PersonaContract(name="Dylan Patel", sumary="typo")
    errors = excinfo.value.errors()
    assert [(e["loc"], e["type"]) for e in errors] == [(("sumary",), "extra_forbidden")]


def test_contract_rejects_an_unknown_field_in_a_nested_section() -> None:
    with pytest.raises(ValidationError) as excinfo:
        PersonaContract(name="X", evidence_policy={"acceptible": ["papers"]})
    assert excinfo.value.errors()[0]["loc"] == ("evidence_policy", "acceptible")


def test_contract_rejects_an_empty_name() -> None:
    with pytest.raises(ValidationError) as excinfo:
        PersonaContract(name="   ")
    assert excinfo.value.errors()[0]["loc"] == ("name",)


@pytest.mark.parametrize("stance", ["agree", "disagree"])
def test_position_accepts_agree_and_disagree(stance: str) -> None:
    contract = PersonaContract(name="X", positions=[{"claim": "c", "stance": stance}])
    assert contract.positions[0].stance == stance


@pytest.mark.parametrize("stance", ["neutral", "Agree", "yes", ""])
def test_position_rejects_any_other_stance(stance: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        PersonaContract(name="X", positions=[{"claim": "c", "stance": stance}])
    assert excinfo.value.errors()[0]["loc"] == ("positions", 0, "stance")


@pytest.mark.parametrize("confidence", [0.0, 0.5, 1.0])
def test_position_accepts_confidence_between_zero_and_one(confidence: float) -> None:
    contract = PersonaContract(name="X", positions=[{"claim": "c", "confidence": confidence}])
    assert contract.positions[0].confidence == confidence


@pytest.mark.parametrize("confidence", [-0.01, 1.01, 70])
def test_position_rejects_confidence_outside_zero_to_one(confidence: float) -> None:
    with pytest.raises(ValidationError) as excinfo:
        PersonaContract(name="X", positions=[{"claim": "c", "confidence": confidence}])
    assert excinfo.value.errors()[0]["loc"] == ("positions", 0, "confidence")


def test_position_defaults_to_agree_with_confidence_0_7() -> None:
    position = PersonaContract(name="X", positions=[{"claim": "c"}]).positions[0]
    assert (position.stance, position.confidence) == ("agree", 0.7)


def test_contract_rejects_duplicate_position_ids_and_names_them() -> None:
    positions = [
        {"id": "p1", "claim": "a"},
        {"id": "p2", "claim": "b"},
        {"id": "p1", "claim": "c"},
        {"id": "p2", "claim": "d"},
    ]
    with pytest.raises(ValidationError, match="position ids must be unique, repeated: p1, p2"):
        PersonaContract(name="X", positions=positions)


def test_contract_allows_several_positions_without_ids() -> None:
    contract = PersonaContract(name="X", positions=[{"claim": "a"}, {"claim": "b"}])
    assert len(contract.positions) == 2


# CorpusItem


def test_corpus_item_accepts_a_slug_persona() -> None:
    item = CorpusItem(id="i1", persona="dylan-patel", text="hello")
    assert (item.persona, item.kind, item.split) == ("dylan-patel", "other", None)


@pytest.mark.parametrize("persona", ["Dylan Patel", "../etc", "", "dylan_patel"])
def test_corpus_item_rejects_a_persona_that_is_not_a_slug(persona: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        CorpusItem(id="i1", persona=persona, text="hello")
    error = excinfo.value.errors()[0]
    assert error["loc"] == ("persona",)
    assert "is not a valid slug" in error["msg"]


def test_corpus_item_rejects_empty_text_and_unknown_split() -> None:
    with pytest.raises(ValidationError) as excinfo:
        CorpusItem(id="i1", persona="p", text="  ", split="holdout")
    assert {e["loc"] for e in excinfo.value.errors()} == {("text",), ("split",)}


# TopicFile


def test_topic_file_accepts_unique_slug_ids() -> None:
    topics = TopicFile(topics=[{"id": "a", "prompt": "A?"}, {"id": "b", "prompt": "B?"}])
    assert [t.id for t in topics.topics] == ["a", "b"]


def test_topic_file_rejects_duplicate_ids_and_names_them() -> None:
    raw = {"topics": [{"id": "a", "prompt": "A?"}, {"id": "a", "prompt": "Again?"}]}
    with pytest.raises(ValidationError, match="topic ids must be unique, repeated: a"):
        TopicFile.model_validate(raw)


@pytest.mark.parametrize("topic_id", ["AI Capex", "../x", "a--b", ""])
def test_topic_id_must_be_a_slug(topic_id: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        TopicFile(topics=[{"id": topic_id, "prompt": "A?"}])
    assert excinfo.value.errors()[0]["loc"] == ("topics", 0, "id")


def test_topic_file_needs_at_least_one_topic() -> None:
    with pytest.raises(ValidationError) as excinfo:
        TopicFile(topics=[])
    assert excinfo.value.errors()[0]["loc"] == ("topics",)


# Shipped samples


def test_sample_has_contracts() -> None:
    assert len(SAMPLE_CONTRACTS) >= 4


@pytest.mark.parametrize("path", SAMPLE_CONTRACTS, ids=lambda p: p.parent.name)
def test_sample_contract_validates_and_its_slug_is_its_folder(path: Path) -> None:
    contract = PersonaContract.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert contract.slug == path.parent.name
    assert contract.reasoning_method is not None
    assert contract.positions


def test_sample_topics_validate() -> None:
    raw = yaml.safe_load((SAMPLE_DIR / "topics.yaml").read_text(encoding="utf-8"))
    topics = TopicFile.model_validate(raw).topics
    assert len(topics) >= 2
