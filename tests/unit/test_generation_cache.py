"""The generation cache: durable appends, repair after a kill, clear errors on damage."""

from __future__ import annotations

import json

import pytest

from foundry.synthesis.generation_cache import GenerationCache
from foundry.synthesis.jobs import SynthesisError


def test_appended_rows_survive_a_reload(tmp_path):
    path = tmp_path / "s" / "generations.jsonl"
    cache = GenerationCache(path)
    cache.append({"key": "a", "text": "first"})
    cache.append({"key": "b", "text": "second é"})

    again = GenerationCache(path)
    assert "a" in again and again.get("b")["text"] == "second é"
    assert path.read_text(encoding="utf-8").count("\n") == 2


def test_a_line_cut_short_by_a_kill_is_dropped_and_the_file_repaired(tmp_path):
    path = tmp_path / "generations.jsonl"
    path.write_text(json.dumps({"key": "a", "text": "kept"}) + "\n" + '{"key": "b", "te')

    cache = GenerationCache(path)
    assert list(cache.rows) == ["a"]
    assert path.read_text() == json.dumps({"key": "a", "text": "kept"}) + "\n"
    cache.append({"key": "c", "text": "after"})
    assert list(GenerationCache(path).rows) == ["a", "c"]


def test_a_damaged_line_in_the_middle_names_the_file_and_line(tmp_path):
    path = tmp_path / "generations.jsonl"
    path.write_text('{"key": "a", "text": "x"}\nnot json\n{"key": "c", "text": "y"}\n')
    with pytest.raises(SynthesisError, match=r"generations\.jsonl, line 2: not a JSON object"):
        GenerationCache(path)
    path.write_text('{"text": "no key"}\n')
    with pytest.raises(SynthesisError, match="line 1: a generation needs a string `key`"):
        GenerationCache(path)
