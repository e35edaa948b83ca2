"""Cache keys of the `retrain` flow: what each persona's steps depend on, hashed.

A step is redone when its key changes, so a key must cover everything the step's output depends
on: the persona's own data (contract and corpus, `foundry.data.versions.persona_content_hash`), the
debate topics, the config sections the step reads, the base model and the code. What a persona
borrows from the others (the real passages its challenges answer, the turns its cross-persona
pairs reject) is taken as it is when the persona is rebuilt and is deliberately left out of its
keys: editing one persona must not retrain all of them.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from foundry.config import FoundryConfig

KEYS_VERSION = "1"
CODE_PACKAGES = ("foundry", "tasks", "registry")
CODE_SUFFIXES = (".py", ".yaml", ".json")


class PersonaKeys(BaseModel):
    """One persona's step keys; each covers the one before it."""

    synth: str
    pairs: str
    train: str
    vectors: str  # empty when `steering.enabled` is off (no vectors step)
    registration: str

    @property
    def model(self) -> str:
        """What the persona's evaluated variants depend on: its adapters, and its vector."""
        return f"{self.train}:{self.vectors}" if self.vectors else self.train


def digest(*parts: Any) -> str:
    """A short stable hash of JSON-able parts."""
    blob = json.dumps([KEYS_VERSION, *parts], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


@lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of the installed code of the packages that compute results (`.py` and data files),
    so a code change redoes the work it may change, committed or not."""
    sha = hashlib.sha256()
    for package in CODE_PACKAGES:
        root = Path(importlib.import_module(package).__file__ or "").parent
        for path in sorted(root.rglob("*")):
            if path.suffix in CODE_SUFFIXES and "__pycache__" not in path.parts:
                sha.update(path.relative_to(root.parent).as_posix().encode() + b"\0")
                sha.update(path.read_bytes() + b"\0")
    return sha.hexdigest()[:20]


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:20] if path.is_file() else "absent"


def base_key(config: FoundryConfig, pin: str) -> str:
    """The base model: a hub name, or the tiny base's pin
    (`foundry.training.tiny_cache.tiny_pin`)."""
    return digest("base", code_version(), config.base_model.model_dump(mode="json"), pin)


def persona_keys(
    config: FoundryConfig,
    content_hash: str,
    *,
    topics_hash: str,
    provider: str,
    model: str,
    base: str,
    tracking: str = "",
) -> PersonaKeys:
    """The keys of one persona's synthesis, pairs, training and registration."""
    synthesis = config.synthesis.model_dump(mode="json", exclude={"pairs"})
    synth = digest(
        "synth",
        code_version(),
        content_hash,
        topics_hash,
        provider,
        model,
        synthesis,
        config.personas.test_fraction,
        config.personas.validation_fraction,
        config.evaluation.heldout_topic_fraction,
        config.training.seed,
    )
    pairs = digest("pairs", synth, base, config.synthesis.pairs.model_dump(mode="json"))
    train = digest("train", pairs, base, config.training.model_dump(mode="json"))
    vectors = (
        digest(
            "vectors",
            train,
            config.steering.model_dump(mode="json"),
            config.evaluation.model_dump(
                mode="json", include={"temperature", "seed", "batch_size"}
            ),
        )
        if config.steering.enabled
        else ""
    )
    register = digest("register", train, vectors, tracking, config.registry.model_dump(mode="json"))
    return PersonaKeys(
        synth=synth, pairs=pairs, train=train, vectors=vectors, registration=register
    )


def evaluation_key(config: FoundryConfig, train_keys: dict[str, str], base: str) -> str:
    """Evaluation compares all personas, so it depends on every evaluated persona's adapters (and
    on the conflicts, whose questions only evaluation asks)."""
    return digest(
        "eval",
        code_version(),
        sorted(train_keys.items()),
        base,
        config.evaluation.model_dump(mode="json"),
        file_hash(config.conflicts_file),
    )
