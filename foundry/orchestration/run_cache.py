"""Prefect task caching for the `retrain` flow, keyed by `foundry.orchestration.run_keys`.

A step's result is persisted as JSON under `<cache_dir>/results/<key>` (not pickles, and in the
project rather than in `PREFECT_HOME`, so a project carries its own cache). A task whose key has
a result finishes in the `Cached` state without running; `force` refreshes every key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foundry.config import FoundryConfig

RESULTS_DIRNAME = "results"


class FixedKey:
    """A `cache_key_fn` that returns a key computed beforehand
    (`foundry.orchestration.run_keys`)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, context: Any, parameters: dict[str, Any]) -> str:
        return self.key


def results_dir(config: FoundryConfig) -> Path:
    return config.cache_dir / RESULTS_DIRNAME


def cache_options(config: FoundryConfig, key: str, *, force: bool = False) -> dict[str, Any]:
    """`Task.with_options(**...)` that caches the task under `key` with a persisted result."""
    return {
        "cache_key_fn": FixedKey(key),
        "persist_result": True,
        "result_storage": results_dir(config),
        "result_serializer": "json",
        "refresh_cache": force,
    }


def has_result(config: FoundryConfig, key: str) -> bool:
    """Whether a task cached under `key` would be a hit (its result file exists)."""
    return (results_dir(config) / key).is_file()
