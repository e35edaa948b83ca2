"""Readers for every corpus file form a persona folder may hold.

`read_corpus_file(path, ...)` returns raw records (a dict of fields plus where it came from) and the
problems found. Forms: JSONL (one object a line), JSON (an array of objects; the Faultline corpus
export is one), CSV (a text column), Markdown and plain text (documents split into paragraph chunks
of bounded size). Records carry `text` or Faultline's `content`.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foundry.errors import Problem

CORPUS_SUFFIXES = (".jsonl", ".json", ".csv", ".md", ".txt")
TEXT_KEYS = ("text", "content")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_TXT_DOC_SEPARATOR = re.compile(r"^\s*-{3,}\s*$", re.MULTILINE)
_MD_HEADING = re.compile(r"^#{1,6}\s+(.*)$")


@dataclass
class RawRecord:
    """A record as read from disk, before normalisation; `where` locates it for messages."""

    fields: dict[str, Any]
    path: Path
    where: str
    kind_hint: str = ""
    problems: list[Problem] = field(default_factory=list)


def read_corpus_file(
    path: Path,
    *,
    csv_text_column: str = "text",
    max_chunk_chars: int = 1200,
    min_chunk_chars: int = 80,
) -> tuple[list[RawRecord], list[Problem]]:
    """Read one corpus file; unknown suffixes are reported as warnings and skipped."""
    suffix = path.suffix.lower()
    if suffix not in CORPUS_SUFFIXES:
        return [], [
            _warn(
                path,
                "",
                f"unsupported file type {suffix or '(none)'}; skipped",
                f"use one of {', '.join(CORPUS_SUFFIXES)}",
            )
        ]
    text, problem = decode_utf8(path)
    if problem:
        return [], [problem]
    if suffix == ".jsonl":
        return _read_jsonl(path, text)
    if suffix == ".json":
        return _read_json_array(path, text)
    if suffix == ".csv":
        return _read_csv(path, text, csv_text_column)
    docs = _split_markdown(text) if suffix == ".md" else _split_plain(text)
    return _chunk_documents(path, docs, max_chunk_chars, min_chunk_chars), []


def decode_utf8(path: Path) -> tuple[str, Problem | None]:
    """Decode a file as UTF-8 (a BOM is allowed); a bad byte is reported with its line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        # utf-8-sig reports positions after a leading BOM; count from the file's first byte.
        start = exc.start + (len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0)
        line = data[:start].count(b"\n") + 1
        return "", _error(
            path,
            f"line {line}, byte {start}",
            f"not UTF-8 text (byte 0x{data[start]:02x})",
            "re-save the file as UTF-8",
        )


def text_of(fields: dict[str, Any]) -> Any:
    """The text of a record: `text`, or Faultline's `content`."""
    for key in TEXT_KEYS:
        if key in fields:
            return fields[key]
    return None


def _read_jsonl(path: Path, text: str) -> tuple[list[RawRecord], list[Problem]]:
    records, problems = [], []
    # Split on "\n" only: str.splitlines() also breaks at U+2028 or U+0085 inside JSON strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(
                _error(
                    path,
                    f"line {number}",
                    f"not valid JSON ({exc.msg})",
                    "each line must be one complete JSON object",
                )
            )
            continue
        if not isinstance(value, dict):
            problems.append(
                _error(
                    path,
                    f"line {number}",
                    f"expected a JSON object, got {type(value).__name__}",
                    'write each line as {"id": ..., "text": ...}',
                )
            )
            continue
        records.append(RawRecord(value, path, f"line {number}"))
    return records, problems


def _read_json_array(path: Path, text: str) -> tuple[list[RawRecord], list[Problem]]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [
            _error(path, f"line {exc.lineno}", f"not valid JSON ({exc.msg})", "fix the JSON syntax")
        ]
    if not isinstance(value, list):
        return [], [
            _error(
                path,
                "",
                f"a .json corpus must be an array of records, got {type(value).__name__}",
                'write [{"id": ..., "text": ...}, ...] or use .jsonl',
            )
        ]
    records, problems = [], []
    for index, item in enumerate(value):
        if isinstance(item, dict):
            records.append(RawRecord(item, path, f"record {index}"))
        else:
            problems.append(
                _error(
                    path,
                    f"record {index}",
                    f"expected an object, got {type(item).__name__}",
                    'each element must be {"id": ..., "text": ...}',
                )
            )
    return records, problems


def _read_csv(path: Path, text: str, text_column: str) -> tuple[list[RawRecord], list[Problem]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    column = next((c for c in (text_column, *TEXT_KEYS) if c in columns), None)
    if column is None:
        return [], [
            _error(
                path,
                "header",
                f"no text column; found columns {columns}",
                f"name the text column `{text_column}` or set "
                "`personas.csv_text_column` in foundry.yaml",
            )
        ]
    records = []
    line = reader.line_num + 1  # the file line where the next record starts
    for row in reader:
        fields = {k: v for k, v in row.items() if k is not None}
        fields["text"] = fields.pop(column, None)  # the configured column is the text
        records.append(RawRecord(fields, path, f"line {line}"))
        line = reader.line_num + 1
    return records, []


def _split_markdown(text: str) -> list[tuple[str, list[str]]]:
    """Documents as (title, paragraphs); a heading line starts a new document."""
    docs: list[tuple[str, list[str]]] = []
    title, block = "", []
    for line in text.splitlines():
        heading = _MD_HEADING.match(line)
        if heading:
            docs.append((title, _paragraphs("\n".join(block))))
            title, block = heading.group(1).strip(), []
        else:
            block.append(line)
    docs.append((title, _paragraphs("\n".join(block))))
    return [(t, p) for t, p in docs if p]


def _split_plain(text: str) -> list[tuple[str, list[str]]]:
    """Documents separated by `---` lines; a short first line without end punctuation is a title."""
    docs = []
    for chunk in _TXT_DOC_SEPARATOR.split(text):
        paragraphs = _paragraphs(chunk)
        title = ""
        first = paragraphs[0] if paragraphs else ""
        if (
            len(paragraphs) > 1
            and "\n" not in first
            and len(first) < 120
            and first[-1] not in ".!?"
        ):
            title, paragraphs = first, paragraphs[1:]
        if paragraphs:
            docs.append((title, paragraphs))
    return docs


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def _chunk_documents(
    path: Path, docs: list[tuple[str, list[str]]], max_chars: int, min_chars: int
) -> list[RawRecord]:
    records = []
    for doc_index, (title, paragraphs) in enumerate(docs, start=1):
        pieces = [piece for p in paragraphs for piece in _bounded_pieces(p, max_chars)]
        for chunk_index, chunk in enumerate(_merge_short(pieces, min_chars, max_chars), start=1):
            where = f"document {doc_index} ({title or 'untitled'}), chunk {chunk_index}"
            source = f"{path.name}#{title}" if title else path.name
            fields = {"text": chunk, "source": source, "document": f"{path.name}#{doc_index}"}
            records.append(RawRecord(fields, path, where, "essay"))
    return records


def _bounded_pieces(paragraph: str, max_chars: int) -> list[str]:
    """Split a paragraph at sentence ends (or, failing that, at spaces) into pieces <= max_chars."""
    if len(paragraph) <= max_chars:
        return [paragraph]
    pieces, current = [], ""
    for sentence in _SENTENCE_END.split(paragraph):
        if current and len(current) + 1 + len(sentence) > max_chars:
            pieces.append(current)
            current = ""
        while len(sentence) > max_chars:
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            pieces.append(sentence[:cut].rstrip())
            sentence = sentence[cut:].strip()
        current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces


def _merge_short(pieces: list[str], min_chars: int, max_chars: int) -> list[str]:
    merged: list[str] = []
    for piece in pieces:
        if merged and len(merged[-1]) < min_chars and len(merged[-1]) + 2 + len(piece) <= max_chars:
            merged[-1] = f"{merged[-1]}\n\n{piece}"
        else:
            merged.append(piece)
    return merged


def _error(path: Path, where: str, message: str, fix: str = "") -> Problem:
    return Problem("error", path, where, message, fix)


def _warn(path: Path, where: str, message: str, fix: str = "") -> Problem:
    return Problem("warning", path, where, message, fix)
