"""Faultline import: field mapping, decks, warnings, and all-or-nothing failures on bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from foundry.data.faultline import ImportReport, import_faultline
from foundry.data.personas import load_contract
from foundry.data.validation import prepare_persona, validate_personas
from foundry.errors import DataError
from tests.conftest import FAULTLINE_FIXTURE, SAMPLE_DIR

ADA, BRAM, CYRA = "ada-quill", "bram-okonkwo-reyes", "cyra-lindqvist"
SAMPLE_SLUGS = sorted(p.name for p in (SAMPLE_DIR / "personas").iterdir() if p.is_dir())


def _import(source: Path, config, **kwargs) -> ImportReport:
    def validate(folder: Path):
        return prepare_persona(config, folder.name, persona_dir=folder).problems

    return import_faultline(source, config, validate=validate, **kwargs)


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `root`, by relative path."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2), encoding="utf-8")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A private copy of the Faultline fixture that a test may break."""
    return Path(shutil.copytree(FAULTLINE_FIXTURE, tmp_path / "faultline"))


@pytest.fixture
def imported(config, source: Path) -> ImportReport:
    """The fixture imported once, so data/ already holds Faultline personas."""
    return _import(source, config)


def _assert_refused(source: Path, config, *expected: str) -> str:
    """Import `source`, expect a DataError containing `expected`, and data/ left as it was."""
    before = _snapshot(config.data_dir)
    with pytest.raises(DataError) as caught:
        _import(source, config)
    message = str(caught.value)
    for text in expected:
        assert text in message
    assert _snapshot(config.data_dir) == before
    assert not list(config.personas_dir.glob(".import-*"))
    return message


# Import and field mapping


def test_import_writes_contract_and_keeps_corpus_bytes(config, source: Path) -> None:
    report = _import(source, config)

    assert sorted(p.slug for p in report.personas) == [ADA, BRAM, CYRA]
    for name, slug in (("Ada Quill", ADA), ("Bram Okonkwo-Reyes", BRAM)):
        folder = config.persona_dir(slug)
        assert (folder / "contract.yaml").is_file()
        original = (FAULTLINE_FIXTURE / "corpus" / f"{name}.json").read_bytes()
        assert (folder / "corpus" / "faultline.json").read_bytes() == original
    counts = {p.slug: p.items for p in report.personas}
    assert counts[ADA] == len(_json(FAULTLINE_FIXTURE / "corpus" / "Ada Quill.json"))
    assert counts[BRAM] == len(_json(FAULTLINE_FIXTURE / "corpus" / "Bram Okonkwo-Reyes.json"))
    assert sorted(p.name for p in config.personas_dir.iterdir()) == sorted(
        SAMPLE_SLUGS + [ADA, BRAM, CYRA]
    )


def test_import_maps_faultline_fields_to_the_native_contract(config, imported) -> None:
    raw = _json(FAULTLINE_FIXTURE / "contracts" / "Ada Quill.json")
    written = yaml.safe_load((config.persona_dir(ADA) / "contract.yaml").read_text())

    assert written["name"] == "Ada Quill"
    assert written["slug"] == ADA
    assert written["time_horizon"] == raw["timeHorizon"]
    assert written["flip_conditions"] == raw["flipConditions"]
    assert written["personality"] == raw["personality"]
    assert written["epistemology"] == raw["epistemology"]
    policy = raw["evidencePolicy"]
    assert written["evidence_policy"] == {
        "acceptable": policy["acceptableSources"],
        "unacceptable": policy["unacceptableSources"],
        "weighting": policy["weightingRules"],
        "tool_triggers": policy["toolPullTriggers"],
    }
    assert written["anchor_excerpts"] == raw["anchorExcerpts"]
    assert written["source"] == "faultline"
    assert written["source_id"] == "fl-ada-quill"
    assert written["version"] == "3"
    assert written["handle"] == "@adaquill_fic"
    assert "timeHorizon" not in written and "evidencePolicy" not in written


def test_imported_contract_loads_as_a_native_contract(config, imported) -> None:
    contract, problems = load_contract(config.persona_dir(BRAM))

    assert contract is not None
    assert [p for p in problems if p.level == "error"] == []
    assert contract.name == "Bram Okonkwo-Reyes"
    assert contract.version == "1.2"
    assert contract.trainable is True
    assert contract.evidence_policy.tool_triggers == ["a claim about household debt"]


def test_worldview_positions_get_confidences_in_unit_interval(config, imported) -> None:
    ada, _ = load_contract(config.persona_dir(ADA))
    bram, _ = load_contract(config.persona_dir(BRAM))

    ada_view = _json(FAULTLINE_FIXTURE / "worldviews" / "Ada Quill.json")["positions"]
    assert [p.id for p in ada.positions] == [p["id"] for p in ada_view]
    assert [p.claim for p in ada.positions] == [p["claim"] for p in ada_view]
    assert [p.type for p in ada.positions] == [p["type"] for p in ada_view]
    assert {p.stance for p in ada.positions + bram.positions} == {"agree"}
    confidence = {p.id: p.confidence for p in ada.positions + bram.positions}
    assert confidence["aq-p1"] == pytest.approx(0.8)  # a number in [0, 1] is kept
    assert confidence["aq-p2"] == pytest.approx(0.65)  # 65 is a percentage
    assert confidence["bor-p3"] == pytest.approx(0.9)  # "90%"
    assert confidence["bor-p2"] == pytest.approx(0.4)
    assert 0.75 <= confidence["aq-p3"] <= 1.0  # "high"
    assert 0.5 <= confidence["bor-p1"] < confidence["aq-p3"]  # "medium" sits below "high"


def test_persona_without_corpus_is_imported_not_trainable_with_a_warning(config, imported) -> None:
    cyra = next(p for p in imported.personas if p.slug == CYRA)
    written = yaml.safe_load((config.persona_dir(CYRA) / "contract.yaml").read_text())

    assert cyra.trainable is False
    assert cyra.items == 0
    assert written["trainable"] is False
    assert list((config.persona_dir(CYRA) / "corpus").iterdir()) == []
    warning = next(w for w in imported.warnings if "no corpus/Cyra Lindqvist.json" in w)
    assert "Cyra Lindqvist.json" in warning and "not trainable" in warning


def test_unknown_faultline_field_warns_naming_the_field(config, imported) -> None:
    warnings = [w for w in imported.warnings if "avatarUrl" in w]

    assert len(warnings) == 1
    assert "contracts/Bram Okonkwo-Reyes.json" in warnings[0]
    assert "field avatarUrl" in warnings[0]
    assert "avatarUrl" not in (config.persona_dir(BRAM) / "contract.yaml").read_text()


def test_validation_warnings_name_files_that_exist_after_the_import(config, imported) -> None:
    assert imported.warnings
    assert not any(".import-" in w for w in imported.warnings)
    trainable = next(w for w in imported.warnings if "field trainable" in w)
    assert str(config.persona_dir(CYRA) / "contract.yaml") in trainable


def test_imported_personas_pass_validate_personas(config, imported) -> None:
    summary = validate_personas(config, [ADA, BRAM, CYRA])

    assert summary.error_count == 0
    by_slug = {p.slug: p for p in summary.personas}
    assert by_slug[ADA].stats.items == len(_json(FAULTLINE_FIXTURE / "corpus" / "Ada Quill.json"))
    assert by_slug[BRAM].stats.items == len(
        _json(FAULTLINE_FIXTURE / "corpus" / "Bram Okonkwo-Reyes.json")
    )
    cyra_warnings = [str(p) for p in by_slug[CYRA].problems if p.level == "warning"]
    assert any("field trainable" in w and "not trainable" in w for w in cyra_warnings)


# Decks


def test_deck_imports_only_its_personas(config, source: Path) -> None:
    report = _import(source, config, deck="harbour-economists")

    assert report.deck == "harbour-economists"
    assert sorted(p.slug for p in report.personas) == [ADA, BRAM]
    assert not config.persona_dir(CYRA).exists()


def test_single_persona_deck_imports_one_persona(config, source: Path) -> None:
    report = _import(source, config, deck="lone-archivist")

    assert [p.slug for p in report.personas] == [CYRA]
    assert not config.persona_dir(ADA).exists()
    assert not config.persona_dir(BRAM).exists()


def test_unknown_deck_is_an_error_listing_the_decks(config, source: Path) -> None:
    before = _snapshot(config.data_dir)
    with pytest.raises(DataError) as caught:
        _import(source, config, deck="tech-investors")

    message = str(caught.value)
    assert "personas.json" in message and "'tech-investors'" in message
    assert "harbour-economists" in message and "lone-archivist" in message
    assert _snapshot(config.data_dir) == before


def test_deck_without_personas_json_is_an_error(config, source: Path) -> None:
    (source / "personas.json").unlink()
    before = _snapshot(config.data_dir)
    with pytest.raises(DataError) as caught:
        _import(source, config, deck="harbour-economists")

    message = str(caught.value)
    assert str(source / "personas.json") in message
    assert "'harbour-economists'" in message and "--deck" in message
    assert _snapshot(config.data_dir) == before


def test_folder_without_contracts_is_an_error(config, tmp_path: Path) -> None:
    empty = tmp_path / "not-faultline"
    empty.mkdir()
    with pytest.raises(DataError, match="no contracts/ folder"):
        _import(empty, config)


# Bad input: an error naming file and record, and data/ left as it was


def test_corpus_json_that_is_not_an_array_is_refused(config, imported, source: Path) -> None:
    corpus = source / "corpus" / "Ada Quill.json"
    _write_json(corpus, {"id": "aq-001", "content": "One record, not a list."})

    _assert_refused(source, config, str(corpus), "must be an array of records, got dict")


def test_malformed_json_contract_names_the_line(config, imported, source: Path) -> None:
    contract = source / "contracts" / "Ada Quill.json"
    contract.write_text('{\n  "personaId": "fl-ada-quill",\n  "version": 3,,\n}\n')

    message = _assert_refused(source, config, f"{contract}, line 3", "not valid JSON")
    assert "fix the JSON syntax" in message


def test_corpus_record_without_content_names_the_record(config, imported, source: Path) -> None:
    corpus = source / "corpus" / "Ada Quill.json"
    records = _json(corpus)
    del records[2]["content"]
    _write_json(corpus, records)

    message = _assert_refused(source, config, f"{corpus}, record 2: record has no text")
    assert message.count("record has no text") == 1  # reported once, not by both checks


def test_duplicate_corpus_ids_with_different_text_are_caught_by_validation(
    config, imported, source: Path
) -> None:
    corpus = source / "corpus" / "Bram Okonkwo-Reyes.json"
    records = _json(corpus)
    records[4]["id"] = records[0]["id"]
    _write_json(corpus, records)

    message = _assert_refused(
        source, config, f"{corpus}, record 4", f"duplicate id {records[0]['id']!r}", "record 0"
    )
    assert ".import-" not in message


def test_non_utf8_corpus_names_the_line(config, imported, source: Path) -> None:
    corpus = source / "corpus" / "Ada Quill.json"
    corpus.write_bytes(b'[\n  {"id": "aq-1",\n   "content": "caf\xe9 au lait"}\n]\n')

    _assert_refused(source, config, f"{corpus}, line 3", "not UTF-8", "re-save the file as UTF-8")


def test_worldview_position_without_claim_names_the_position(
    config, imported, source: Path
) -> None:
    worldview = source / "worldviews" / "Ada Quill.json"
    view = _json(worldview)
    view["positions"][1]["claim"] = "  "
    _write_json(worldview, view)

    _assert_refused(source, config, f"{worldview}, positions[1]", "position has no claim")


def test_two_personas_with_the_same_slug_are_refused(config, imported, source: Path) -> None:
    index = _json(source / "personas.json")
    index["personas"][1]["name"] = "ADA  quill!"
    _write_json(source / "personas.json", index)

    _assert_refused(source, config, "same slug 'ada-quill'", "rename one of them")


def test_name_without_letters_is_refused_naming_the_contract(
    config, imported, source: Path
) -> None:
    index = _json(source / "personas.json")
    index["personas"][2]["name"] = "../.."
    _write_json(source / "personas.json", index)

    _assert_refused(source, config, str(source / "contracts" / "Cyra Lindqvist.json"), "slug")


# Paths, replacement and re-import


def test_name_made_of_path_characters_stays_under_data_personas(
    config, project: Path, source: Path
) -> None:
    index = _json(source / "personas.json")
    index["personas"][2]["name"] = "../../etc"
    _write_json(source / "personas.json", index)
    outside_before = {p for p in project.parent.rglob("*") if config.personas_dir not in p.parents}

    report = _import(source, config)

    assert sorted(p.slug for p in report.personas) == [ADA, BRAM, "etc"]
    contract = yaml.safe_load((config.personas_dir / "etc" / "contract.yaml").read_text())
    assert contract["name"] == "../../etc" and contract["slug"] == "etc"
    outside_after = {p for p in project.parent.rglob("*") if config.personas_dir not in p.parents}
    assert outside_after == outside_before
    assert sorted(p.name for p in config.personas_dir.iterdir()) == sorted(
        SAMPLE_SLUGS + [ADA, BRAM, "etc"]
    )


@pytest.fixture
def native_ada(config) -> Path:
    """A hand-made (native) persona whose slug collides with Ada Quill's."""
    folder = config.persona_dir(ADA)
    (folder / "corpus").mkdir(parents=True)
    (folder / "contract.yaml").write_text("name: Ada Quill\nsummary: written by hand\n")
    (folder / "corpus" / "posts.jsonl").write_text('{"id": "n1", "text": "Native words."}\n')
    return folder


def test_replacing_a_native_persona_is_refused_without_force(
    config, source: Path, native_ada: Path
) -> None:
    _assert_refused(
        source,
        config,
        str(native_ada / "contract.yaml"),
        "was not imported from Faultline",
        "--force",
    )
    assert (native_ada / "corpus" / "posts.jsonl").is_file()


def test_replacing_a_native_persona_is_allowed_with_force(
    config, source: Path, native_ada: Path
) -> None:
    report = _import(source, config, force=True)

    ada = next(p for p in report.personas if p.slug == ADA)
    assert ada.replaced is True
    contract = yaml.safe_load((native_ada / "contract.yaml").read_text())
    assert contract["source"] == "faultline"
    assert sorted(p.name for p in (native_ada / "corpus").iterdir()) == ["faultline.json"]


def test_unreadable_existing_contract_is_treated_as_native(config, source: Path) -> None:
    folder = config.persona_dir(ADA)
    folder.mkdir(parents=True)
    (folder / "contract.yaml").write_text("name: [unclosed\n")

    _assert_refused(source, config, str(folder / "contract.yaml"), "--force")


def test_reimport_replaces_a_previously_imported_persona(config, imported, source: Path) -> None:
    folder = config.persona_dir(ADA)
    (folder / "corpus" / "stale.jsonl").write_text('{"id": "s1", "text": "Left over."}\n')
    corpus = source / "corpus" / "Ada Quill.json"
    _write_json(corpus, _json(corpus)[:-1])

    report = _import(source, config)

    ada = next(p for p in report.personas if p.slug == ADA)
    assert ada.replaced is True
    assert ada.items == 9
    assert sorted(p.name for p in (folder / "corpus").iterdir()) == ["faultline.json"]
    assert (folder / "corpus" / "faultline.json").read_bytes() == corpus.read_bytes()
    leftovers = [p.name for p in config.personas_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []
