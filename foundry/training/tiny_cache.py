"""Where tiny bases are kept and which one a run uses.

Each build lives under `<cache_dir>/base/tiny-<hash>/`, keyed by a hash of its documents and the
tiny config (`tiny_cache_dir`), so later runs load it in seconds; `latest` names the newest.
A pin (`tiny_pin`) keeps one base for a set of personas while their corpora are edited, since a
new base would invalidate every adapter trained on the old one; `pins.json` maps each pin to its
folder. Public entry points: `tiny_folder(config, documents, progress, pin=, refresh=)` (finds or
builds the folder to load), `tiny_pin`, `tiny_cache_dir` and `latest_tiny`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from foundry.atomic import write_text_atomic
from foundry.config import FoundryConfig
from foundry.training.tiny_model import BaseModelError, PretrainDoc, Progress, build_tiny

CACHE_VERSION = "1"
PINS_FILENAME = "pins.json"


def tiny_pin(config: FoundryConfig, slugs: Sequence[str], documents: Sequence[PretrainDoc]) -> str:
    """What the tiny base must be rebuilt for (`base_model.tiny.rebuild`): its settings and the
    set of personas, plus every train document under `rebuild: corpus`."""
    digest = hashlib.sha256(CACHE_VERSION.encode())
    digest.update(_model_settings(config))
    digest.update(json.dumps(sorted(slugs)).encode())
    if config.base_model.tiny.rebuild == "corpus":
        digest.update(tiny_cache_dir(config, documents).name.encode())
    return digest.hexdigest()[:16]


def tiny_cache_dir(config: FoundryConfig, documents: Sequence[PretrainDoc]) -> Path:
    """Where the tiny base for these documents and this config lives."""
    digest = hashlib.sha256(CACHE_VERSION.encode())
    digest.update(_model_settings(config))
    for doc in documents:
        digest.update(json.dumps([doc.prompt, doc.text]).encode() + b"\0")
    return config.cache_dir / "base" / f"tiny-{digest.hexdigest()[:16]}"


def _model_settings(config: FoundryConfig) -> bytes:
    """The tiny settings that shape the model (not `rebuild`, a policy about when to build)."""
    return config.base_model.tiny.model_dump_json(exclude={"rebuild"}).encode()


def latest_tiny(config: FoundryConfig) -> Path | None:
    """The most recently built tiny base, for loading without the corpus at hand."""
    pointer = config.cache_dir / "base" / "latest"
    if pointer.is_file():
        folder = config.cache_dir / "base" / pointer.read_text().strip()
        if (folder / "model.safetensors").is_file():
            return folder
    return None


def tiny_folder(
    config: FoundryConfig,
    documents: Sequence[PretrainDoc] | None,
    progress: Progress | None,
    *,
    pin: str,
    refresh: bool,
) -> Path:
    """The tiny base folder to load: the pinned one, else the build for `documents` (trained
    now when missing), else the latest build when no documents are given.

    Raises:
        BaseModelError: no documents were given and no tiny base was built yet.
    """
    pinned = None if refresh or not pin else _pinned(config, pin)
    if pinned is not None:
        folder = pinned
    elif documents is None:
        folder = latest_tiny(config)
        if folder is None:
            raise BaseModelError(
                f"no tiny base model in {config.cache_dir / 'base'} yet; it is trained from the "
                "corpora on first use: run `foundry train` (or `foundry run`)"
            )
    else:
        folder = tiny_cache_dir(config, documents)
        if not (folder / "model.safetensors").is_file():
            build_tiny(config.base_model.tiny, documents, folder, progress)
        if pin:
            _set_pin(config, pin, folder)
    if documents is not None or pinned is not None:
        write_text_atomic(config.cache_dir / "base" / "latest", folder.name + "\n")
    return folder


def _pinned(config: FoundryConfig, pin: str) -> Path | None:
    """The base folder built under `pin`, when it is still there."""
    pins_file = config.cache_dir / "base" / PINS_FILENAME
    if not pins_file.is_file():
        return None
    name = json.loads(pins_file.read_text(encoding="utf-8")).get(pin)
    folder = config.cache_dir / "base" / name if name else None
    return folder if folder and (folder / "model.safetensors").is_file() else None


def _set_pin(config: FoundryConfig, pin: str, folder: Path) -> None:
    pins_file = config.cache_dir / "base" / PINS_FILENAME
    pins = json.loads(pins_file.read_text(encoding="utf-8")) if pins_file.is_file() else {}
    pins[pin] = folder.name
    write_text_atomic(pins_file, json.dumps(pins, indent=2, sort_keys=True) + "\n")
