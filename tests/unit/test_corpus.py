"""Corpus preparation: reading, dropping, splitting and the problems reported for bad personas."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from foundry.config import load_config
from foundry.data.personas import select_personas
from foundry.data.validation import prepare_persona, validate_personas
from foundry.errors import DataError
from tests.conftest import SAMPLE_DIR

SAMPLE_SLUGS = sorted(p.name for p in (SAMPLE_DIR / "personas").iterdir() if p.is_dir())

FULL_CONTRACT = """\
name: Wren Halloway
summary: A fictional lighthouse economist.
reasoning_method:
  name: ledger reading
  description: Starts from dated records.
  steps: [find the ledger, compare the dates]
constitution:
  - Cite a dated record for every claim.
positions:
  - id: wh-p1
    claim: Dated ledgers are more reliable than recollections.
    confidence: 0.8
"""


def _config(tmp_path: Path, text: str = ""):
    """A project in tmp_path with an empty data/personas/ and `text` as foundry.yaml."""
    root = tmp_path / "project"
    (root / "data" / "personas").mkdir(parents=True)
    (root / "foundry.yaml").write_text(text)
    return load_config(root / "foundry.yaml")


def _texts(count: int, start: int = 0) -> list[str]:
    """Texts that share no word 3-gram, so none is a near duplicate of another."""
    return [
        f"Entry {i}: " + " ".join(f"w{i}n{j}" for j in range(8))
        for i in range(start, start + count)
    ]


def _records(count: int, start: int = 0) -> list[dict]:
    return [
        {"id": f"r{i}", "text": text}
        for i, text in zip(range(start, start + count), _texts(count, start), strict=True)
    ]


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def _persona(
    config,
    slug: str = "wren-halloway",
    contract: str | None = FULL_CONTRACT,
    files: dict[str, str] | None = None,
) -> Path:
    folder = config.personas_dir / slug
    folder.mkdir(parents=True)
    if contract is not None:
        (folder / "contract.yaml").write_text(contract)
    if files is not None:
        (folder / "corpus").mkdir()
        for name, text in files.items():
            (folder / "corpus" / name).write_text(text)
    return folder


def _errors(prepared) -> list:
    return [p for p in prepared.problems if p.level == "error"]


def _warnings(prepared) -> list:
    return [p for p in prepared.problems if p.level == "warning"]


# The shipped sample and the split


@pytest.mark.parametrize("slug", SAMPLE_SLUGS)
def test_sample_persona_has_enough_items_in_every_split(config, slug: str) -> None:
    prepared = prepare_persona(config, slug)
    stats = prepared.stats

    assert _errors(prepared) == []
    assert stats.items >= 80
    assert stats.items == len(prepared.items) == stats.train + stats.validation + stats.test
    assert stats.train == sum(i.split == "train" for i in prepared.items) > stats.items / 3
    assert stats.validation == sum(i.split == "validation" for i in prepared.items) >= 5
    assert stats.test == sum(i.split == "test" for i in prepared.items) >= 5
    assert 0 < stats.test_by_topic <= stats.test
    assert sum(stats.by_kind.values()) == stats.items
    assert stats.by_kind == dict(Counter(i.kind for i in prepared.items))
    assert stats.files == len(list(config.persona_dir(slug).glob("corpus/*")))
    assert {i.persona for i in prepared.items} == {slug}
    assert len({i.id for i in prepared.items}) == stats.items


def test_split_is_deterministic(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _persona(config, files={"posts.jsonl": _jsonl(_records(40))})

    first = [(i.id, i.split) for i in prepare_persona(config, "wren-halloway").items]
    second = [(i.id, i.split) for i in prepare_persona(config, "wren-halloway").items]

    assert first == second


def test_item_split_does_not_change_when_other_items_come_and_go(tmp_path: Path) -> None:
    config = _config(tmp_path)
    corpus = _persona(config, files={"posts.jsonl": _jsonl(_records(40))}) / "corpus"
    before = {i.id: i.split for i in prepare_persona(config, "wren-halloway").items}

    (corpus / "posts.jsonl").write_text(_jsonl(_records(50, start=10)))  # drop 0-9, add 40-59
    after = {i.id: i.split for i in prepare_persona(config, "wren-halloway").items}

    assert set(before.values()) == set(after.values()) == {"train", "validation", "test"}
    shared = sorted(set(before) & set(after))
    assert len(shared) == 30
    assert {k: before[k] for k in shared} == {k: after[k] for k in shared}


def test_tiny_fractions_still_hold_out_one_document_each(tmp_path: Path) -> None:
    config = _config(
        tmp_path, "personas:\n  test_fraction: 0.000001\n  validation_fraction: 0.000001\n"
    )
    _persona(config, files={"posts.jsonl": _jsonl(_records(20))})

    prepared = prepare_persona(config, "wren-halloway")

    assert (prepared.stats.test, prepared.stats.validation, prepared.stats.train) == (1, 1, 18)
    assert [i.split for i in prepared.items].count("test") == 1


# Records


def test_record_without_text_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    config = _config(tmp_path)
    records = _records(4)
    del records[1]["text"]
    corpus = _persona(config, files={"posts.jsonl": _jsonl(records)}) / "corpus"

    prepared = prepare_persona(config, "wren-halloway")

    [error] = _errors(prepared)
    assert error.path == corpus / "posts.jsonl"
    assert error.where == "line 2"
    assert str(error).startswith(f"{corpus / 'posts.jsonl'}, line 2: record has no text")
    assert "add a `text`" in error.fix
    assert prepared.stats.items == 3


def test_empty_text_is_a_warning_and_dropped(tmp_path: Path) -> None:
    config = _config(tmp_path)
    records = _records(5)
    records[2]["text"] = "  \u200b \n\n "
    corpus = _persona(config, files={"posts.jsonl": _jsonl(records)}) / "corpus"

    prepared = prepare_persona(config, "wren-halloway")

    assert _errors(prepared) == []
    [warning] = [w for w in _warnings(prepared) if "empty text" in w.message]
    assert (warning.path, warning.where) == (corpus / "posts.jsonl", "line 3")
    assert prepared.stats.empty_dropped == 1
    assert prepared.stats.items == 4
    assert "r2" not in {i.id for i in prepared.items}


def test_duplicate_ids_in_two_files_name_both_places(tmp_path: Path) -> None:
    config = _config(tmp_path)
    first = _records(3)
    second = _records(3, start=10)
    second[1]["id"] = "r0"
    corpus = _persona(config, files={"a.jsonl": _jsonl(first), "b.jsonl": _jsonl(second)})
    corpus = corpus / "corpus"

    [error] = _errors(prepare_persona(config, "wren-halloway"))

    assert (error.path, error.where) == (corpus / "b.jsonl", "line 2")
    assert "duplicate id 'r0'" in error.message
    assert "a.jsonl, line 1" in error.message
    assert "unique id" in error.fix


def test_duplicate_ids_in_one_file_name_both_lines(tmp_path: Path) -> None:
    config = _config(tmp_path)
    records = _records(5)
    records[4]["id"] = "r1"
    _persona(config, files={"posts.jsonl": _jsonl(records)})

    [error] = _errors(prepare_persona(config, "wren-halloway"))

    assert error.where == "line 5"
    assert "duplicate id 'r1' (first at line 2)" in error.message


def test_same_id_with_same_text_is_dropped_as_exact_duplicate(tmp_path: Path) -> None:
    config = _config(tmp_path)
    records = _records(5)
    records.append(dict(records[3]))
    _persona(config, files={"posts.jsonl": _jsonl(records)})

    prepared = prepare_persona(config, "wren-halloway")

    assert _errors(prepared) == []
    assert prepared.stats.exact_duplicates == 1
    assert sorted(i.id for i in prepared.items) == ["r0", "r1", "r2", "r3", "r4"]
    # A repeated record is reported like any other repeat, at the persona's corpus folder.
    [warning] = [w for w in _warnings(prepared) if "duplicate" in w.message]
    assert "1 duplicate item(s) dropped (1 exact, 0 near)" in warning.message
    assert warning.path == config.persona_dir("wren-halloway") / "corpus"


def test_near_duplicate_texts_are_dropped_and_counted(tmp_path: Path) -> None:
    config = _config(tmp_path)
    words = " ".join(f"harbour{j}" for j in range(30))
    records = _records(4) + [
        {"id": "long-a", "text": f"{words} ending one"},
        {"id": "long-b", "text": f"{words} ending two"},
    ]
    _persona(config, files={"posts.jsonl": _jsonl(records)})

    prepared = prepare_persona(config, "wren-halloway")

    assert prepared.stats.near_duplicates == 1
    assert prepared.stats.exact_duplicates == 0
    ids = {i.id for i in prepared.items}
    assert "long-a" in ids and "long-b" not in ids
    [warning] = [w for w in _warnings(prepared) if "duplicate" in w.message]
    assert "1 duplicate item(s) dropped (0 exact, 1 near; first: 'long-b' repeats 'long-a')" in (
        warning.message
    )


def test_unknown_kind_is_a_warning_and_the_kind_is_guessed(tmp_path: Path) -> None:
    config = _config(tmp_path)
    records = _records(3)
    records[1]["kind"] = "podcast"
    corpus = _persona(config, files={"posts.jsonl": _jsonl(records)}) / "corpus"

    prepared = prepare_persona(config, "wren-halloway")

    assert _errors(prepared) == []
    [warning] = [w for w in _warnings(prepared) if "kind" in w.message]
    assert (warning.path, warning.where) == (corpus / "posts.jsonl", "line 2")
    assert "unknown kind 'podcast'" in warning.message
    assert "tweet" in warning.fix and "essay" in warning.fix
    assert {i.id: i.kind for i in prepared.items}["r1"] == "tweet"


def test_kind_is_guessed_from_platform_and_length(tmp_path: Path) -> None:
    config = _config(tmp_path)
    long_text = " ".join(f"paragraph{j}" for j in range(60))
    assert len(long_text) > 280
    records = [
        {"id": "short", "text": "A short post about tides."},
        {"id": "long-x", "text": long_text, "platform": "x"},
        {"id": "long-blog", "text": long_text.replace("paragraph", "section")},
        {"id": "given", "text": "Transcript of the harbour meeting.", "kind": "Transcript"},
    ]
    _persona(config, files={"posts.jsonl": _jsonl(records)})

    kinds = {i.id: i.kind for i in prepare_persona(config, "wren-halloway").items}

    assert kinds == {
        "short": "tweet",
        "long-x": "tweet",
        "long-blog": "essay",
        "given": "transcript",
    }


# Persona-level problems


def test_persona_without_corpus_is_an_error(tmp_path: Path) -> None:
    config = _config(tmp_path)
    folder = _persona(config)

    [error] = _errors(prepare_persona(config, "wren-halloway"))

    assert error.path == folder / "corpus"
    assert "empty persona" in error.message
    assert "trainable: false" in error.fix


def test_not_trainable_persona_gives_only_a_warning(tmp_path: Path) -> None:
    config = _config(tmp_path)
    folder = _persona(config, contract=FULL_CONTRACT + "trainable: false\n")

    prepared = prepare_persona(config, "wren-halloway")

    assert _errors(prepared) == []
    [warning] = _warnings(prepared)
    assert (warning.path, warning.where) == (folder / "contract.yaml", "field trainable")
    assert "not trainable" in warning.message


def test_fewer_than_min_items_is_an_error(tmp_path: Path) -> None:
    config = _config(tmp_path, "personas:\n  min_items: 5\n")
    folder = _persona(config, files={"posts.jsonl": _jsonl(_records(3))})

    [error] = _errors(prepare_persona(config, "wren-halloway"))

    assert error.path == folder / "corpus"
    assert "only 3 usable item(s); at least 5 needed" in error.message


def test_unknown_contract_field_names_it_and_suggests_the_close_one(tmp_path: Path) -> None:
    config = _config(tmp_path)
    contract = FULL_CONTRACT + "time_horizn: 5 years\nevidence_policy:\n  acceptible: [ledgers]\n"
    folder = _persona(config, contract=contract, files={"p.jsonl": _jsonl(_records(3))})

    errors = _errors(prepare_persona(config, "wren-halloway"))

    by_field = {e.where: e for e in errors}
    assert set(by_field) == {"field time_horizn", "field evidence_policy.acceptible"}
    assert all(e.path == folder / "contract.yaml" for e in errors)
    assert "unknown field" in by_field["field time_horizn"].message
    assert "did you mean `time_horizon`?" in by_field["field time_horizn"].fix
    assert "did you mean `acceptable`?" in by_field["field evidence_policy.acceptible"].fix


def test_contract_that_is_not_yaml_names_the_line(tmp_path: Path) -> None:
    config = _config(tmp_path)
    folder = _persona(config, contract="name: Wren\nsummary: [unclosed\n", files={})

    errors = _errors(prepare_persona(config, "wren-halloway"))

    assert errors[0].path == folder / "contract.yaml"
    assert errors[0].where.startswith("line ")
    assert "not valid YAML" in errors[0].message


def test_missing_contract_is_an_error(tmp_path: Path) -> None:
    config = _config(tmp_path)
    folder = _persona(config, contract=None, files={"p.jsonl": _jsonl(_records(3))})

    prepared = prepare_persona(config, "wren-halloway")

    assert prepared.contract is None
    [error] = _errors(prepared)
    assert error.path == folder / "contract.yaml"
    assert error.message == "missing contract"


def test_folder_name_that_is_not_a_slug_is_an_error(tmp_path: Path) -> None:
    config = _config(tmp_path)
    folder = _persona(config, slug="Wren_Halloway", files={"p.jsonl": _jsonl(_records(3))})

    summary = validate_personas(config)

    [persona] = summary.personas
    [error] = _errors(persona)
    assert error.path == folder
    assert "'Wren_Halloway' is not a slug" in error.message
    assert "lowercase" in error.fix


def test_folder_name_that_is_not_a_slug_is_an_error_with_explicit_folder(tmp_path: Path) -> None:
    config = _config(tmp_path)
    folder = _persona(config, slug="Wren Halloway", files={"p.jsonl": _jsonl(_records(3))})

    prepared = prepare_persona(config, "wren-halloway", persona_dir=folder)

    assert any("'Wren Halloway' is not a slug" in e.message for e in _errors(prepared))


def test_contract_slug_differing_from_folder_is_an_error(tmp_path: Path) -> None:
    config = _config(tmp_path)
    contract = FULL_CONTRACT + "slug: wren-h\n"
    folder = _persona(config, contract=contract, files={"p.jsonl": _jsonl(_records(3))})

    [error] = _errors(prepare_persona(config, "wren-halloway"))

    assert (error.path, error.where) == (folder / "contract.yaml", "field slug")
    assert "'wren-h'" in error.message and "'wren-halloway'" in error.message


def test_missing_reasoning_method_and_constitution_are_warnings(tmp_path: Path) -> None:
    config = _config(tmp_path, "personas:\n  min_split_items: 1\n")
    contract = "name: Wren Halloway\npositions:\n  - claim: Ledgers outlast memories.\n"
    _persona(config, contract=contract, files={"p.jsonl": _jsonl(_records(3))})

    prepared = prepare_persona(config, "wren-halloway")

    assert _errors(prepared) == []
    assert sorted(w.where for w in _warnings(prepared)) == [
        "field constitution",
        "field reasoning_method",
    ]


# Selection and topics


def test_select_personas_unknown_slug_suggests_the_close_one(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        select_personas(SAMPLE_SLUGS, ["jonah-okafr"], tmp_path)

    message = str(caught.value)
    assert "`jonah-okafr` (did you mean `jonah-okafor`?)" in message
    assert all(slug in message for slug in SAMPLE_SLUGS)


def test_validate_personas_with_an_unknown_slug_raises(config) -> None:
    with pytest.raises(DataError, match="did you mean `tobias-renn`"):
        validate_personas(config, ["tobias-ren"])


def test_missing_topics_file_is_a_warning(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _persona(config, files={"p.jsonl": _jsonl(_records(3))})

    summary = validate_personas(config)

    [problem] = summary.topic_problems
    assert (problem.level, problem.path) == ("warning", config.topics_file)
    assert summary.error_count == 0


def test_duplicate_topic_ids_are_an_error(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _persona(config, files={"p.jsonl": _jsonl(_records(3))})
    config.topics_file.write_text(
        "topics:\n"
        '  - {id: harbour-fees, prompt: "Should harbour fees rise?"}\n'
        '  - {id: lighthouse-funding, prompt: "Who should fund lighthouses?"}\n'
        '  - {id: harbour-fees, prompt: "Are harbour fees too high?"}\n'
    )

    summary = validate_personas(config)

    [problem] = summary.topic_problems
    assert (problem.level, problem.path) == ("error", config.topics_file)
    assert "repeated: harbour-fees" in problem.message
    assert summary.error_count == 1
