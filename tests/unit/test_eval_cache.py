"""The eval cache: keys cover every input, batches are kept across runs, damage costs a batch."""

from __future__ import annotations

import json
import logging

import pytest

from foundry.evaluation.cache import BatchJob, CacheStats, EvalCache, open_eval_cache
from foundry.training.adapters import adapter_digest

CONTEXT = {"runtime": "cpu", "model": {"base": "tiny:tiny-0123"}}
ADAPTERS = {"ana-sft": "digest-a"}


def _cache(path, context=CONTEXT, adapters=ADAPTERS):
    return EvalCache(path, context, dict(adapters))


def _jobs(cache, payloads, calls):
    """A job per payload whose value is the payload doubled; `calls` records what was computed."""

    def job(payload):
        def compute():
            calls.append(payload)
            return [payload * 2, 0.1 + payload]

        return BatchJob(cache.key("scores", payload), "ana", 1, compute)

    return [job(p) for p in payloads]


def test_kept_batches_are_reused_by_the_next_run(tmp_path):
    path = tmp_path / "batches.jsonl"
    calls: list[int] = []
    first = _cache(path)
    values = first.run("scores", _jobs(first, [1, 2, 1], calls))
    assert calls == [1, 2]  # the repeated batch is computed once
    assert first.stats.computed == {"scores": 2} and first.stats.reused == {"scores": 1}
    assert first.stats.computed_by == {"ana": 2}

    again = _cache(path)
    assert again.run("scores", _jobs(again, [1, 2, 3], calls)) == [*values[:2], [6, 3.1]]
    assert calls == [1, 2, 3]
    assert again.stats.reused == {"scores": 2} and again.stats.computed == {"scores": 1}


def test_a_memory_only_cache_writes_nothing(tmp_path):
    calls: list[int] = []
    cache = _cache(None)
    cache.run("scores", _jobs(cache, [1, 1], calls))
    assert calls == [1] and not list(tmp_path.iterdir())


def test_keys_change_with_every_input():
    cache = _cache(None)
    key = cache.key("scores", {"rows": [["a", None, "p", "c"]]})
    assert key == _cache(None).key("scores", {"rows": [["a", None, "p", "c"]]})
    others = [
        cache.key("answers", {"rows": [["a", None, "p", "c"]]}),
        cache.key("scores", {"rows": [["b", None, "p", "c"]]}),
        cache.key("scores", {"rows": [["a", "system", "p", "c"]]}),
        cache.key("scores", {"rows": [["a", None, "p", "c "]]}),
        _cache(None, context={**CONTEXT, "runtime": "cuda"}).key(
            "scores", {"rows": [["a", None, "p", "c"]]}
        ),
        _cache(None, context={**CONTEXT, "model": {"base": "tiny:tiny-4567"}}).key(
            "scores", {"rows": [["a", None, "p", "c"]]}
        ),
    ]
    assert len({key, *others}) == len(others) + 1
    # Embeddings do not depend on the base model.
    other_base = _cache(None, context={**CONTEXT, "model": {"base": "another"}})
    assert other_base.key("embeddings", ["t"], use_model=False) == cache.key(
        "embeddings", ["t"], use_model=False
    )
    assert cache.adapter_id("ana-sft") == "digest-a" and cache.adapter_id("__base__") is None


def test_a_cut_off_last_line_is_dropped_and_the_file_repaired(tmp_path):
    path = tmp_path / "batches.jsonl"
    cache = _cache(path)
    cache.run("scores", _jobs(cache, [1, 2], []))
    with path.open("ab") as handle:
        handle.write(b'{"key": "abc", "value": [1, ')  # a kill during the third write

    calls: list[int] = []
    again = _cache(path)
    again.run("scores", _jobs(again, [1, 2, 3], calls))
    assert calls == [3]
    assert [json.loads(line)["value"] for line in path.read_text().splitlines()][-1] == [6, 3.1]


def test_a_damaged_line_costs_only_its_batch(tmp_path, caplog):
    path = tmp_path / "batches.jsonl"
    cache = _cache(path)
    cache.run("scores", _jobs(cache, [1, 2], []))
    lines = path.read_text().splitlines()
    path.write_text(f"{lines[0]}\n{{not json\n{lines[1][:-5]}\n")

    calls: list[int] = []
    with caplog.at_level(logging.WARNING, logger="foundry.evaluation.cache"):
        again = _cache(path)
    assert "line 2" in caplog.text and "line 3" in caplog.text
    again.run("scores", _jobs(again, [1, 2], calls))
    assert calls == [2]


def test_a_rejected_value_is_used_but_not_kept(tmp_path):
    path = tmp_path / "batches.jsonl"
    cache = _cache(path)
    key = cache.key("embeddings", ["t"], use_model=False)
    job = BatchJob(key, None, 1, lambda: {"backend": "tfidf"}, lambda value: False)
    assert cache.run("embeddings", [job]) == [{"backend": "tfidf"}]
    assert not path.exists() and cache.stats.computed == {"embeddings": 1}


def test_an_adapter_is_named_by_its_config_and_weights(tmp_path):
    (tmp_path / "adapter_config.json").write_text('{"peft_type": "LORA", "lora_alpha": 8}')
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weights")
    digest = adapter_digest(tmp_path)
    (tmp_path / "adapter_config.json").write_text('{"peft_type": "LORA", "lora_alpha": 16}')
    assert adapter_digest(tmp_path) != digest


def test_without_a_base_model_identity_nothing_is_kept(config):
    stats = CacheStats()
    cache = open_eval_cache(config, [], use_file=True, stats=stats)  # no tiny base built yet
    assert cache.store is None and cache.stats is stats
    assert cache.context["model"]["base"] is None
    assert cache.context["threads"] >= 1 and len(cache.context["code"]) == 64


@pytest.mark.parametrize("backend", ["tfidf", "auto"])
def test_embeddings_come_back_as_computed(tmp_path, backend):
    import numpy as np

    from foundry.evaluation.measures import _embed

    texts = ["gold is money", "bitcoin is not", ""]
    path = tmp_path / "batches.jsonl"
    first, backend_used = _embed(texts, backend, _cache(path))
    again = _cache(path)
    second, backend_again = _embed(texts, backend, again)
    assert again.stats.reused == {"embeddings": 1}
    assert backend_again == backend_used and second.dtype == first.dtype
    np.testing.assert_array_equal(second, first)
