"""Reading corpus files in every supported form, with located errors and bounded chunks."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from foundry.data.corpus_formats import RawRecord, read_corpus_file, text_of
from foundry.errors import Problem
from tests.conftest import SAMPLE_DIR


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def read_ok(path: Path, **options: int | str) -> list[RawRecord]:
    records, problems = read_corpus_file(path, **options)  # type: ignore[arg-type]
    assert problems == []
    return records


def only_problem(path: Path, **options: int | str) -> Problem:
    records, problems = read_corpus_file(path, **options)  # type: ignore[arg-type]
    assert records == []
    assert len(problems) == 1
    return problems[0]


def words_of(text: str) -> list[str]:
    return re.findall(r"\S+", text)


# JSONL


def test_jsonl_yields_one_record_per_line_located_by_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "posts.jsonl",
        '{"id": "a", "text": "First."}\n\n{"id": "b", "text": "Second.", "date": "2024-01-02"}\n',
    )
    records = read_ok(path)
    assert [r.fields for r in records] == [
        {"id": "a", "text": "First."},
        {"id": "b", "text": "Second.", "date": "2024-01-02"},
    ]
    assert [r.where for r in records] == ["line 1", "line 3"]
    assert all(r.path == path for r in records)


def test_jsonl_error_names_the_line_number(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "posts.jsonl",
        '{"id": "a", "text": "ok"}\n{"id": "b", "text": "ok"}\n{"id": "c", "text": \n',
    )
    records, problems = read_corpus_file(path)
    assert [r.where for r in records] == ["line 1", "line 2"]
    assert len(problems) == 1
    problem = problems[0]
    assert (problem.level, problem.path, problem.where) == ("error", path, "line 3")
    assert "not valid JSON" in problem.message
    assert str(problem).startswith(f"{path}, line 3: not valid JSON")
    assert "each line must be one complete JSON object" in str(problem)


def test_jsonl_line_that_is_an_array_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "posts.jsonl", '{"id": "a", "text": "ok"}\n["b", "not an object"]\n')
    records, problems = read_corpus_file(path)
    assert len(records) == 1
    assert [(p.level, p.where) for p in problems] == [("error", "line 2")]
    assert "expected a JSON object, got list" in problems[0].message
    assert '{"id": ..., "text": ...}' in problems[0].fix


def test_jsonl_keeps_line_separator_characters_inside_strings(tmp_path: Path) -> None:
    texts = ["one\u2028two", "three\x85four", "five\u2029six"]
    lines = [json.dumps({"id": str(i), "text": t}, ensure_ascii=False) for i, t in enumerate(texts)]
    path = write(tmp_path, "posts.jsonl", "\n".join(lines) + "\n")
    records = read_ok(path)
    assert [r.fields["text"] for r in records] == texts
    assert [r.where for r in records] == ["line 1", "line 2", "line 3"]


def test_jsonl_with_windows_line_endings_is_read(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b'{"id": "a", "text": "x"}\r\n{"id": "b", "text": "y"}\r\n')
    assert [r.fields["id"] for r in read_ok(path)] == ["a", "b"]


# JSON array


def test_json_array_yields_records_located_by_index(tmp_path: Path) -> None:
    items = [{"id": "a", "text": "First."}, {"id": "b", "text": "Second."}]
    path = write(tmp_path, "posts.json", json.dumps(items))
    records = read_ok(path)
    assert [r.fields for r in records] == items
    assert [r.where for r in records] == ["record 0", "record 1"]


def test_json_array_accepts_faultline_content_records(tmp_path: Path) -> None:
    items = [
        {"id": "fl-1", "content": "Rates drive everything.", "platform": "x", "date": "2024-05-01"},
        {"id": "fl-2", "content": "Gold is money.", "platform": "substack"},
    ]
    path = write(tmp_path, "corpus.json", json.dumps(items))
    records = read_ok(path)
    assert [text_of(r.fields) for r in records] == ["Rates drive everything.", "Gold is money."]
    assert records[0].fields["platform"] == "x"


def test_json_array_element_that_is_not_an_object_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "posts.json", '[{"id": "a", "text": "x"}, "stray", 3]')
    records, problems = read_corpus_file(path)
    assert [r.where for r in records] == ["record 0"]
    assert [(p.level, p.where) for p in problems] == [("error", "record 1"), ("error", "record 2")]
    assert "expected an object, got str" in problems[0].message


def test_json_object_instead_of_array_is_an_error_saying_it_must_be_an_array(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "posts.json", '{"id": "a", "text": "x"}')
    problem = only_problem(path)
    assert (problem.level, problem.path) == ("error", path)
    assert "must be an array of records, got dict" in problem.message
    assert "use .jsonl" in problem.fix


def test_json_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "posts.json", '[\n  {"id": "a", "text": "x"},\n  {"id": "b",,}\n]\n')
    problem = only_problem(path)
    assert (problem.level, problem.where) == ("error", "line 3")
    assert "not valid JSON" in problem.message


# CSV


def test_csv_reads_the_text_column_and_other_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "posts.csv",
        'id,text,date\na,"Hello, world.",2024-01-01\nb,"Line one\nline two",2024-01-02\n',
    )
    records = read_ok(path)
    assert [r.fields for r in records] == [
        {"id": "a", "text": "Hello, world.", "date": "2024-01-01"},
        {"id": "b", "text": "Line one\nline two", "date": "2024-01-02"},
    ]
    assert [r.where for r in records] == ["line 2", "line 3"]


def test_csv_locations_are_file_lines_even_after_a_multiline_field(tmp_path: Path) -> None:
    path = write(tmp_path, "posts.csv", 'id,text\na,"one\ntwo\nthree"\nb,four\n')
    assert [r.where for r in read_ok(path)] == ["line 2", "line 5"]


def test_csv_reads_a_content_column_as_the_text(tmp_path: Path) -> None:
    path = write(tmp_path, "posts.csv", "id,content\na,From Faultline.\n")
    assert [r.fields for r in read_ok(path)] == [{"id": "a", "text": "From Faultline."}]


def test_csv_reads_the_configured_text_column(tmp_path: Path) -> None:
    path = write(tmp_path, "posts.csv", "id,body,text\na,The body.,a note\n")
    records = read_ok(path, csv_text_column="body")
    assert records[0].fields["text"] == "The body."
    assert records[0].fields["id"] == "a"


def test_csv_without_a_text_column_lists_columns_and_names_the_setting(tmp_path: Path) -> None:
    path = write(tmp_path, "posts.csv", "id,body,date\na,Hello.,2024-01-01\n")
    problem = only_problem(path)
    assert (problem.level, problem.path, problem.where) == ("error", path, "header")
    assert "['id', 'body', 'date']" in problem.message
    assert "`personas.csv_text_column`" in problem.fix
    assert "`text`" in problem.fix


def test_csv_error_names_the_configured_column(tmp_path: Path) -> None:
    path = write(tmp_path, "posts.csv", "id,message\na,Hello.\n")
    problem = only_problem(path, csv_text_column="body")
    assert "`body`" in problem.fix


# Markdown and plain text


def test_markdown_headings_start_documents(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "essays.md",
        "# On Gold\n\nGold has been money for five thousand years.\n\n"
        "## On Rates\n\nRates set the price of time.\n",
    )
    records = read_ok(path, min_chunk_chars=0)
    assert [r.fields for r in records] == [
        {
            "text": "Gold has been money for five thousand years.",
            "source": "essays.md#On Gold",
            "document": "essays.md#1",
        },
        {
            "text": "Rates set the price of time.",
            "source": "essays.md#On Rates",
            "document": "essays.md#2",
        },
    ]
    assert [r.where for r in records] == [
        "document 1 (On Gold), chunk 1",
        "document 2 (On Rates), chunk 1",
    ]
    assert {r.kind_hint for r in records} == {"essay"}


def test_markdown_text_before_the_first_heading_is_an_untitled_document(tmp_path: Path) -> None:
    path = write(tmp_path, "essays.md", "Preface text.\n\n# Title\n\nBody text.\n")
    records = read_ok(path, min_chunk_chars=0)
    assert [(r.fields["text"], r.fields["source"]) for r in records] == [
        ("Preface text.", "essays.md"),
        ("Body text.", "essays.md#Title"),
    ]
    assert records[0].where == "document 1 (untitled), chunk 1"


def test_markdown_paragraphs_longer_than_the_minimum_are_separate_chunks(tmp_path: Path) -> None:
    first, second = "A" * 20 + " first paragraph.", "B" * 20 + " second paragraph."
    path = write(tmp_path, "essays.md", f"# T\n\n{first}\n\n{second}\n")
    records = read_ok(path, min_chunk_chars=10)
    assert [r.fields["text"] for r in records] == [first, second]
    assert [r.where for r in records] == ["document 1 (T), chunk 1", "document 1 (T), chunk 2"]
    assert [r.fields["document"] for r in records] == ["essays.md#1", "essays.md#1"]


def test_txt_documents_are_separated_by_dashes_and_take_title_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "essays.txt",
        "The Curve\n\nAdoption follows an S-curve.\n\n---\n\n"
        "No title here.\n\nA second paragraph.\n\n-----\n\nThird document.\n",
    )
    records = read_ok(path, min_chunk_chars=0)
    assert [(r.fields["text"], r.fields["source"], r.where) for r in records] == [
        ("Adoption follows an S-curve.", "essays.txt#The Curve", "document 1 (The Curve), chunk 1"),
        ("No title here.", "essays.txt", "document 2 (untitled), chunk 1"),
        ("A second paragraph.", "essays.txt", "document 2 (untitled), chunk 2"),
        ("Third document.", "essays.txt", "document 3 (untitled), chunk 1"),
    ]


def test_txt_single_paragraph_without_punctuation_is_not_a_title(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.txt", "just one line without a full stop\n")
    records = read_ok(path)
    assert [(r.fields["text"], r.fields["source"]) for r in records] == [
        ("just one line without a full stop", "notes.txt")
    ]


# Encoding and unsupported files


def test_non_utf8_bytes_error_names_line_and_byte_and_says_resave(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b'{"id": "a", "text": "ok"}\n{"id": "b", "text": "caf\xe9"}\n')
    problem = only_problem(path)
    assert (problem.level, problem.path) == ("error", path)
    assert problem.where == "line 2, byte 50"
    assert "0xe9" in problem.message
    assert "re-save the file as UTF-8" in problem.fix


def test_non_utf8_error_after_a_bom_names_the_real_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a", "text": "ok"}\n{"text": "\xff"}\n')
    problem = only_problem(path)
    assert problem.where == "line 2, byte 39"
    assert "0xff" in problem.message


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("posts.jsonl", '{"id": "a", "text": "ok"}\n'),
        ("posts.json", '[{"id": "a", "text": "ok"}]'),
        ("posts.csv", "id,text\na,ok\n"),
    ],
)
def test_utf8_bom_is_accepted(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + content.encode("utf-8"))
    records = read_ok(path)
    assert [r.fields for r in records] == [{"id": "a", "text": "ok"}]


def test_unsupported_suffix_is_a_warning_that_lists_supported_types(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.docx", "binary")
    problem = only_problem(path)
    assert (problem.level, problem.path) == ("warning", path)
    assert "unsupported file type .docx; skipped" in problem.message
    assert ".jsonl, .json, .csv, .md, .txt" in problem.fix


def test_file_without_suffix_is_a_warning(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "README", "text"))
    assert problem.level == "warning"
    assert "(none)" in problem.message


def test_suffix_is_matched_without_regard_to_case(tmp_path: Path) -> None:
    path = write(tmp_path, "POSTS.JSONL", '{"id": "a", "text": "ok"}\n')
    assert len(read_ok(path)) == 1


# Chunking


def long_paragraph(sentences: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    vocab = ["gold", "rates", "curve", "loop", "price", "money", "growth", "policy", "bank"]
    out = []
    for i in range(sentences):
        body = " ".join(rng.choice(vocab) for _ in range(rng.randint(3, 30)))
        out.append(f"S{i} {body}{rng.choice('.!?')}")
    return " ".join(out)


def test_no_chunk_exceeds_the_bound_for_a_long_paragraph_of_sentences(tmp_path: Path) -> None:
    paragraph = long_paragraph(200)
    path = write(tmp_path, "essay.md", f"# Long\n\n{paragraph}\n")
    records = read_ok(path, max_chunk_chars=200, min_chunk_chars=0)
    chunks = [r.fields["text"] for r in records]
    assert len(chunks) > len(paragraph) // 200
    assert max(len(c) for c in chunks) <= 200
    assert words_of(" ".join(chunks)) == words_of(paragraph)


def test_long_paragraph_is_cut_at_sentence_ends(tmp_path: Path) -> None:
    paragraph = long_paragraph(60, seed=1)
    path = write(tmp_path, "essay.txt", paragraph + "\n")
    for record in read_ok(path, max_chunk_chars=300, min_chunk_chars=0):
        assert record.fields["text"][-1] in ".!?"
        assert record.fields["text"].startswith("S")


def test_no_chunk_exceeds_the_bound_for_one_enormous_sentence(tmp_path: Path) -> None:
    sentence = " ".join(f"word{i}" for i in range(3000))
    path = write(tmp_path, "essay.txt", sentence + "\n")
    chunks = [r.fields["text"] for r in read_ok(path, max_chunk_chars=250, min_chunk_chars=0)]
    assert len(chunks) > 1
    assert max(len(c) for c in chunks) <= 250
    assert words_of(" ".join(chunks)) == words_of(sentence)


def test_no_chunk_exceeds_the_bound_for_a_run_without_spaces(tmp_path: Path) -> None:
    blob = "x" * 1000
    path = write(tmp_path, "essay.txt", blob + "\n")
    chunks = [r.fields["text"] for r in read_ok(path, max_chunk_chars=300, min_chunk_chars=0)]
    assert max(len(c) for c in chunks) <= 300
    assert "".join(chunks) == blob


def test_short_paragraphs_are_merged_up_to_the_bound(tmp_path: Path) -> None:
    paragraphs = [f"Short paragraph number {i}." for i in range(30)]
    path = write(tmp_path, "notes.md", "# Notes\n\n" + "\n\n".join(paragraphs) + "\n")
    chunks = [r.fields["text"] for r in read_ok(path, max_chunk_chars=200, min_chunk_chars=80)]
    assert len(chunks) < len(paragraphs)
    assert max(len(c) for c in chunks) <= 200
    assert all(len(c) >= 80 for c in chunks[:-1])
    assert [p for c in chunks for p in c.split("\n\n")] == paragraphs


def test_a_short_paragraph_is_not_merged_past_the_bound(tmp_path: Path) -> None:
    short, long = "Tiny.", "L" * 190 + " end."
    path = write(tmp_path, "notes.md", f"# T\n\n{short}\n\n{long}\n")
    chunks = [r.fields["text"] for r in read_ok(path, max_chunk_chars=200, min_chunk_chars=80)]
    assert chunks == [short, long]


def test_chunks_do_not_merge_across_documents(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.md", "# A\n\nOne.\n\n# B\n\nTwo.\n")
    records = read_ok(path, min_chunk_chars=80)
    assert [(r.fields["text"], r.fields["source"]) for r in records] == [
        ("One.", "notes.md#A"),
        ("Two.", "notes.md#B"),
    ]


def test_chunking_loses_no_text_in_a_mixed_document(tmp_path: Path) -> None:
    parts = [
        long_paragraph(40, seed=2),
        "Brief.",
        " ".join(f"tok{i}" for i in range(500)),
        "Another brief one!",
        long_paragraph(5, seed=3),
    ]
    document = "\n\n".join(parts)
    path = write(tmp_path, "essay.md", f"# Mixed\n\n{document}\n")
    chunks = [r.fields["text"] for r in read_ok(path, max_chunk_chars=220, min_chunk_chars=60)]
    assert max(len(c) for c in chunks) <= 220
    assert words_of(" ".join(chunks)) == words_of(document)


# Shipped sample


@pytest.mark.parametrize(
    "path", sorted((SAMPLE_DIR / "personas").glob("*/corpus/*")), ids=lambda p: p.name
)
def test_sample_corpus_files_read_without_problems(path: Path) -> None:
    records = read_ok(path)
    assert records
    assert all(isinstance(text_of(r.fields), str) and text_of(r.fields) for r in records)
    if path.suffix in (".md", ".txt"):
        assert max(len(r.fields["text"]) for r in records) <= 1200
