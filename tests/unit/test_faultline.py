"""Faultline import: field mapping, reasoning and constitution, slugs from ids, conflicts, belief
graphs, decks, warnings, `foundry personas show`, and all-or-nothing failures on bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from foundry.cli.main import app
from foundry.data.beliefs import BeliefGraph, load_beliefs
from foundry.data.conflicts import load_conflicts
from foundry.data.faultline import ImportReport, import_faultline
from foundry.data.faultline_conflicts import strip_index_tag
from foundry.data.faultline_mapping import constitution, reasoning_method, split_items
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
    assert written["source_id"] == "Ada Quill"
    assert written["version"] == "3"
    assert written["handle"] == "@adaquill_fic"
    assert "timeHorizon" not in written and "evidencePolicy" not in written


def test_imported_contract_loads_as_a_native_contract(config, imported) -> None:
    contract, problems = load_contract(config.persona_dir(BRAM))

    assert contract is not None
    assert [p for p in problems if p.level == "error"] == []
    assert contract.name == "Household Ledger"
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


def _set_persona_id(source: Path, stem: str, persona_id: str) -> None:
    path = source / "contracts" / f"{stem}.json"
    _write_json(path, {**_json(path), "personaId": persona_id})


def test_two_personas_with_the_same_slug_are_refused(config, imported, source: Path) -> None:
    _set_persona_id(source, "Bram Okonkwo-Reyes", "ADA  quill!")

    _assert_refused(source, config, "same slug 'ada-quill'", "another `personaId`")


def test_id_without_letters_is_refused_naming_the_contract(config, imported, source: Path) -> None:
    _set_persona_id(source, "Cyra Lindqvist", "../..")

    _assert_refused(source, config, str(source / "contracts" / "Cyra Lindqvist.json"), "slug")


# Paths, replacement and re-import


def test_id_made_of_path_characters_stays_under_data_personas(
    config, project: Path, source: Path
) -> None:
    _set_persona_id(source, "Cyra Lindqvist", "../../etc")
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


# Reasoning method and constitution from the contract


def test_numbered_epistemology_lines_become_reasoning_steps(config, imported) -> None:
    ada, problems = load_contract(config.persona_dir(ADA))

    assert ada.reasoning_method.name == "The epistemology of Ada Quill"
    assert ada.reasoning_method.steps == [
        "Find the physical flow the claim is about (boxes, tonnes, berths).",
        "Compare the flow with the price quoted for moving it.",
        "Discount whatever an executive said about either.",
    ]
    assert ada.reasoning_method.description.startswith(
        "A claim holds when the bills of lading agree with it. She tests every forecast in order:"
    )
    assert ada.reasoning_method.description.endswith(
        "Discount whatever an executive said about either."
    )
    assert (
        ada.epistemology
        == _json(FAULTLINE_FIXTURE / "contracts" / "Ada Quill.json")["epistemology"]
    )


def test_list_epistemology_becomes_steps_and_plain_text_a_description(config, imported) -> None:
    bram, _ = load_contract(config.persona_dir(BRAM))
    cyra, _ = load_contract(config.persona_dir(CYRA))

    raw = _json(FAULTLINE_FIXTURE / "contracts" / "Bram Okonkwo-Reyes.json")["epistemology"]
    assert bram.reasoning_method.steps == raw
    assert bram.reasoning_method.description == " ".join(raw)
    assert bram.reasoning_method.name == "The epistemology of Household Ledger"
    assert bram.epistemology == " ".join(raw)
    assert cyra.reasoning_method.steps == []
    assert cyra.reasoning_method.description == "Primary documents first, recollections last."


def test_evidence_policy_becomes_one_principle_per_rule_and_rejected_source(
    config, imported
) -> None:
    ada, _ = load_contract(config.persona_dir(ADA))
    bram, _ = load_contract(config.persona_dir(BRAM))

    assert ada.constitution == [
        "Weigh evidence by this rule: Physical throughput outranks prices; "
        "prices outrank opinions.",
        "Do not rest an argument on executive interviews.",
        "Do not rest an argument on anonymous forum posts.",
    ]
    assert bram.constitution == [
        "Weigh evidence by this rule: Panel data over cross-sections.",
        "Weigh evidence by this rule: Medians over means.",
        "Do not rest an argument on influencer budgeting tips.",
    ]
    assert bram.evidence_policy.weighting == "Panel data over cross-sections. Medians over means."


def test_import_no_longer_warns_reasoning_method_or_constitution_missing(imported) -> None:
    missing = [
        w for w in imported.warnings if "field reasoning_method" in w or "field constitution" in w
    ]

    assert missing == []


def test_contract_without_epistemology_or_policy_still_warns(config, source: Path) -> None:
    path = source / "contracts" / "Cyra Lindqvist.json"
    raw = _json(path)
    del raw["epistemology"], raw["evidencePolicy"]
    _write_json(path, raw)

    report = _import(source, config)

    cyra_contract = str(config.persona_dir(CYRA) / "contract.yaml")
    assert any(
        cyra_contract in w and "field reasoning_method: missing" in w for w in report.warnings
    )
    assert any(cyra_contract in w and "field constitution: missing" in w for w in report.warnings)


@pytest.mark.parametrize(
    ("text", "steps", "intro"),
    [
        (
            "Reads ledgers.\n- first this\n- then that",
            ["first this", "then that"],
            "Reads ledgers.",
        ),
        ("* a\n* b\n* c", ["a", "b", "c"], ""),
        (
            "Order: 1) read the ledger; 2) compare rates.",
            ["read the ledger", "compare rates."],
            "Order:",
        ),
        ("Rates rose 3) percent and 7) more.", [], "Rates rose 3) percent and 7) more."),
        ("One line only.", [], "One line only."),
    ],
)
def test_split_items_finds_bulleted_and_numbered_lists(text, steps, intro) -> None:
    assert split_items(text) == (steps, intro)


def test_reasoning_method_and_constitution_of_empty_input() -> None:
    assert reasoning_method(None, "X") is None
    assert reasoning_method("  ", "X") is None
    assert reasoning_method([], "X") is None
    assert constitution({}) == []
    assert constitution({"unacceptableSources": ["Press releases", "AI summaries", " "]}) == [
        "Do not rest an argument on press releases.",
        "Do not rest an argument on AI summaries.",
    ]


# Slugs from the Faultline id


def test_slug_comes_from_the_id_and_the_display_name_is_kept(config, imported) -> None:
    written = yaml.safe_load((config.persona_dir(BRAM) / "contract.yaml").read_text())

    assert not config.persona_dir("household-ledger").exists()
    assert written["slug"] == BRAM
    assert written["name"] == "Household Ledger"
    assert written["handle"] == "@bramokre_fic"
    assert written["source_id"] == "Bram Okonkwo-Reyes"
    bram = next(p for p in imported.personas if p.slug == BRAM)
    assert (bram.name, bram.source_id) == ("Household Ledger", "Bram Okonkwo-Reyes")


def test_contract_without_persona_id_takes_the_id_from_the_file_name(config, source: Path) -> None:
    path = source / "contracts" / "Ada Quill.json"
    raw = _json(path)
    del raw["personaId"]
    _write_json(path, raw)
    index = _json(source / "personas.json")
    index["personas"][0]["name"] = "Quill Freight Notes"
    _write_json(source / "personas.json", index)

    report = _import(source, config)

    ada = next(p for p in report.personas if p.source_id == "Ada Quill")
    assert (ada.slug, ada.name) == (ADA, "Quill Freight Notes")


def test_persona_imported_before_under_another_slug_is_named_in_a_warning(
    config, source: Path
) -> None:
    old = config.persona_dir("household-ledger")
    (old / "corpus").mkdir(parents=True)
    (old / "contract.yaml").write_text(
        "name: Household Ledger\nsource: faultline\nsource_id: Bram Okonkwo-Reyes\n"
    )

    report = _import(source, config)

    warning = next(w for w in report.warnings if "imported before as 'household-ledger'" in w)
    assert str(old) in warning and f"now '{BRAM}'" in warning


# Conflicts


def _conflicts(config) -> list[dict]:
    return yaml.safe_load(config.conflicts_file.read_text())["conflicts"]


def test_conflicts_between_imported_personas_are_written_with_tags_stripped(
    config, source: Path
) -> None:
    before = _conflicts(config)

    report = _import(source, config)

    written = _conflicts(config)
    assert written[: len(before)] == before  # the sample's conflicts stay, in place
    new = written[len(before) :]
    # Most relevant first: 0.9, 0.6, 0.4; the one naming Zed Ortolan is skipped.
    assert [c["id"] for c in new] == [
        "archive-vs-ledger",
        "freight-vs-household-signal",
        "influencer-advice-harm",
    ]
    assert new[1] == {
        "id": "freight-vs-household-signal",
        "persona_a": ADA,
        "assumption_a": "Freight bookings reveal a downturn before any household data does.",
        "persona_b": BRAM,
        "assumption_b": "Household surveys show a downturn first, because families cut "
        "postponable spending before trade volumes fall.",
        "question": "In the last three downturns, did container volumes or household spending "
        "surveys turn down first?",
        "kind": "temporal",
    }
    assert not any(c["assumption_a"].startswith(("A[", "B[")) for c in new)
    assert report.conflicts.model_dump() == {
        "path": str(config.conflicts_file),
        "found": 4,
        "written": 3,
        "replaced": 0,
        "kept": len(before),
        "outside": 1,
        "outside_personas": ["Zed Ortolan"],
        "invalid": 0,
    }
    slugs = [p.name for p in config.personas_dir.iterdir()]
    loaded, problems = load_conflicts(config.conflicts_file, slugs)
    assert [p for p in problems if p.level == "error"] == []
    assert len(loaded) == len(before) + 3


def test_conflict_with_the_same_id_is_replaced_in_place(config, source: Path) -> None:
    config.conflicts_file.write_text(
        yaml.safe_dump(
            {
                "conflicts": [
                    {
                        "id": "freight-vs-household-signal",
                        "persona_a": ADA,
                        "assumption_a": "An older wording.",
                        "persona_b": BRAM,
                        "assumption_b": "Another older wording.",
                        "question": "An older question?",
                        "kind": "causal",
                    },
                    {
                        "id": "hand-written",
                        "persona_a": "jonah-okafor",
                        "assumption_a": "Curves bend.",
                        "persona_b": "tobias-renn",
                        "assumption_b": "Players defect.",
                        "question": "Which comes first?",
                        "kind": "value",
                    },
                ]
            }
        )
    )

    report = _import(source, config)

    written = _conflicts(config)
    assert [c["id"] for c in written] == [
        "freight-vs-household-signal",
        "hand-written",
        "archive-vs-ledger",
        "influencer-advice-harm",
    ]
    assert written[0]["kind"] == "temporal" and written[0]["question"].startswith("In the last")
    assert written[1]["assumption_a"] == "Curves bend."
    assert (report.conflicts.replaced, report.conflicts.kept) == (1, 1)


def test_deck_import_skips_conflicts_with_personas_outside_it(config, source: Path) -> None:
    before = _conflicts(config)

    report = _import(source, config, deck="harbour-economists")

    assert [c["id"] for c in _conflicts(config)[len(before) :]] == ["freight-vs-household-signal"]
    assert report.conflicts.outside == 3
    assert report.conflicts.outside_personas == ["Cyra Lindqvist", "Zed Ortolan"]
    assert "skipped 3 naming personas not imported (Cyra Lindqvist, Zed Ortolan)" in (
        report.conflicts.summary()
    )


def test_later_deck_gets_conflicts_with_a_deck_imported_before(config, source: Path) -> None:
    _import(source, config, deck="harbour-economists")

    report = _import(source, config, deck="lone-archivist")

    ids = [c["id"] for c in _conflicts(config)]
    assert {"archive-vs-ledger", "influencer-advice-harm"} <= set(ids)
    assert report.conflicts.outside_personas == ["Zed Ortolan"]


def test_invalid_conflict_record_is_skipped_with_a_warning(config, source: Path) -> None:
    path = source / "worldviews" / "_conflicts.json"
    records = _json(path)
    records[1]["conflictType"] = "definitional"
    _write_json(path, records)

    report = _import(source, config)

    warning = next(w for w in report.warnings if "_conflicts.json" in w)
    assert f"{path}, [1] (id archive-vs-ledger): conflictType:" in warning
    assert "archive-vs-ledger" not in [c["id"] for c in _conflicts(config)]
    assert (report.conflicts.written, report.conflicts.invalid) == (2, 1)


def test_conflicts_file_that_is_not_a_list_is_refused(config, source: Path) -> None:
    path = source / "worldviews" / "_conflicts.json"
    _write_json(path, {"id": "one-conflict"})

    _assert_refused(source, config, str(path), "expected a list of conflicts")


def test_unreadable_project_conflicts_file_refuses_the_import(config, source: Path) -> None:
    config.conflicts_file.write_text("conflicts: [unclosed\n")

    _assert_refused(source, config, str(config.conflicts_file), "not valid YAML")


def test_conflicts_json_is_not_read_as_a_worldview(config, source: Path) -> None:
    (source / "contracts" / "_conflicts.json").write_text(
        json.dumps({"personaId": "Underscore", "epistemology": "Reads lists."})
    )

    report = _import(source, config)

    underscore = next(p for p in report.personas if p.source_id == "Underscore")
    assert underscore.positions == 0


def test_strip_index_tag_removes_only_a_leading_tag() -> None:
    assert strip_index_tag("A[3] Rates lead.") == "Rates lead."
    assert strip_index_tag("  B[12]Rates lead.") == "Rates lead."
    assert strip_index_tag("Rates lead A[3] sales.") == "Rates lead A[3] sales."
    assert strip_index_tag(None) == ""


# Belief graphs


def test_belief_graphs_are_written_in_the_native_layout(config, imported) -> None:
    path = config.persona_dir(ADA) / "beliefs.json"
    raw = _json(path)

    assert set(raw) == {"persona_id", "persona_name", "nodes", "edges", "extracted_at"}
    assert raw["edges"][3] == {
        "from_node": "n5",
        "to_node": "n1",
        "polarity": -1,
        "confidence": 0.55,
        "source_chunks": ["aq-007"],
    }
    native, problems = load_beliefs(path)
    faultline, _ = load_beliefs(FAULTLINE_FIXTURE / "beliefs" / "Ada Quill.json")
    assert problems == []
    assert native == faultline
    assert native.node_counts() == {
        "inference": 2,
        "factual_claim": 1,
        "core_value": 1,
        "assumption": 1,
    }
    ada = next(p for p in imported.personas if p.slug == ADA)
    assert (ada.belief_nodes, ada.belief_edges) == (5, 4)
    assert not (config.persona_dir(CYRA) / "beliefs.json").exists()


def test_grounding_outside_the_corpus_is_a_warning_listing_the_ids(imported) -> None:
    warnings = [w for w in imported.warnings if "grounding id" in w]

    assert len(warnings) == 1
    assert str(FAULTLINE_FIXTURE.name) in warnings[0] and "beliefs/Ada Quill.json" in warnings[0]
    assert "1 grounding id(s) are not corpus item ids of this persona: aq-404" in warnings[0]


def test_edge_naming_a_missing_node_is_refused_naming_the_edge(
    config, imported, source: Path
) -> None:
    path = source / "beliefs" / "Ada Quill.json"
    graph = _json(path)
    graph["edges"][2]["to"] = "n9"
    _write_json(path, graph)
    before = (config.persona_dir(ADA) / "beliefs.json").read_bytes()

    _assert_refused(
        source, config, f"{path}, edges[2]: `to` names node 'n9', which is not in `nodes`"
    )
    assert (config.persona_dir(ADA) / "beliefs.json").read_bytes() == before


def test_belief_node_of_unknown_type_is_refused_naming_the_node(config, source: Path) -> None:
    path = source / "beliefs" / "Bram Okonkwo-Reyes.json"
    graph = _json(path)
    graph["nodes"][1]["type"] = "hunch"
    _write_json(path, graph)

    _assert_refused(source, config, f"{path}, field nodes[1].type", "'hunch'")


def test_load_beliefs_flags_repeated_node_ids(tmp_path: Path) -> None:
    path = tmp_path / "beliefs.json"
    node = {"id": "n1", "concept": "rates lead", "type": "inference"}
    _write_json(path, {"nodes": [node, {**node, "concept": "again"}], "edges": []})

    graph, problems = load_beliefs(path)

    assert isinstance(graph, BeliefGraph)
    assert [str(p) for p in problems] == [
        f"{path}, nodes[1]: node id 'n1' repeats nodes[0]; give each node its own id"
    ]


def test_worldview_positions_with_assumptions_and_clusters_import_quietly(imported) -> None:
    ada = next(p for p in imported.personas if p.slug == ADA)

    assert ada.positions == 3
    assert not any(
        "implicitAssumptions" in w or "groundingClusters" in w for w in imported.warnings
    )
    assert not any("worldviews/Ada Quill.json" in w for w in imported.warnings)


# foundry personas show


@pytest.fixture
def wide_console(monkeypatch):
    """Rich wraps lines at the terminal width; a wide console keeps each on one line."""
    import foundry.cli.common

    for console in (foundry.cli.common.console, foundry.cli.common.err_console):
        monkeypatch.setattr(console, "width", 400)


def _show(project: Path, *args: str):
    return CliRunner().invoke(
        app, ["personas", "show", *args, "--config", str(project / "foundry.yaml")]
    )


def test_personas_show_prints_contract_and_belief_graph(project, imported, wide_console) -> None:
    result = _show(project, ADA, "--edges", "2")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for expected in (
        "Ada Quill (ada-quill)",
        "handle: @adaquill_fic",
        "source: faultline, id Ada Quill",
        "reasoning method: The epistemology of Ada Quill",
        "  1. Find the physical flow the claim is about (boxes, tonnes, berths).",
        "constitution: 3 principle(s)",
        "  - Do not rest an argument on executive interviews.",
        "positions: 3",
        "corpus items: 10",
        "belief graph: 5 node(s) (inference 2, factual_claim 1, core_value 1, assumption 1), "
        "4 edge(s)",
        "  container volumes are falling --supports (0.80)--> a recession is near",
        "  freight rates lead retail sales --supports (0.70)--> a recession is near",
        "  ... 2 more",
    ):
        assert expected in lines
    assert "payment is the most honest signal" not in result.output


def test_personas_show_prints_opposing_edges(project, imported, wide_console) -> None:
    result = _show(project, ADA)

    assert result.exit_code == 0, result.output
    assert (
        "  port automation changes the demand signal --opposes (0.55)--> "
        "freight rates lead retail sales" in result.output.splitlines()
    )
    assert "more" not in result.output


def test_personas_show_without_beliefs_says_so(project, imported, wide_console) -> None:
    result = _show(project, CYRA)

    assert result.exit_code == 0, result.output
    assert "corpus items: 0" in result.output
    assert "belief graph: none" in result.output


def test_personas_show_unknown_slug_exits_1(project, imported, wide_console) -> None:
    result = _show(project, "ada-quil")

    assert result.exit_code == 1
    assert (
        "unknown persona `ada-quil`" in result.output
        and "did you mean `ada-quill`" in result.output
    )


def test_personas_show_help_has_an_example() -> None:
    result = CliRunner().invoke(app, ["personas", "show", "--help"], terminal_width=200)

    assert result.exit_code == 0
    assert "Example: foundry personas show" in result.output
