"""LoRA adapters: check a folder before loading it, attach several to one base, switch between them.

Entry points: `check_adapter_folder(path)` raises `AdapterError` unless the folder holds a valid
`adapter_config.json` and a readable `adapter_model.safetensors`, and no pickle-based weight file
(only safetensors are ever loaded: unpickling a `.bin` or `.pt` file can run arbitrary code);
`attach_adapters(model, adapters)` loads any number of adapters onto one `PeftModel` under their
names; `use_adapter(model, name)` is the one-adapter-at-a-time path (PEFT's `set_adapter`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from foundry.data.framing import BASE_ADAPTER
from foundry.errors import FoundryError
from foundry.logs import get_logger, quiet_peft_warnings
from foundry.training.datasets import file_digest

logger = get_logger(__name__)

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
UNSAFE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


class AdapterError(FoundryError):
    """An adapter folder or adapter name cannot be used."""


def check_adapter_folder(path: Path) -> None:
    """Refuse an adapter folder that is missing, incomplete, corrupt or holds pickled weights.

    Args:
        path: The adapter folder (as written by `save_pretrained`).

    Raises:
        AdapterError: The folder is missing; `adapter_config.json` or
            `adapter_model.safetensors` is missing or unreadable; a `.bin`, `.pt`, `.pth`,
            `.pkl` or `.ckpt` file sits beside them.
    """
    folder = Path(path)
    retrain = "retrain it with `foundry train --persona SLUG` (or fix the path)"
    if not folder.is_dir():
        raise AdapterError(f"adapter folder {folder} does not exist; {retrain}")
    unsafe = sorted(p.name for p in folder.iterdir() if p.name.endswith(UNSAFE_SUFFIXES))
    if unsafe:
        raise AdapterError(
            f"adapter folder {folder} holds {', '.join(unsafe)}: only safetensors weights are "
            f"loaded (pickled files can run code); delete them, or convert the adapter with "
            "`model.save_pretrained(dir, safe_serialization=True)`"
        )
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise AdapterError(f"adapter folder {folder} has no {name}; {retrain}")
    _check_config(folder / CONFIG_FILE, retrain)
    _check_weights(folder / WEIGHTS_FILE, retrain)


def _check_config(file: Path, retrain: str) -> None:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterError(f"{file} is not valid JSON ({exc}); {retrain}") from None
    if not isinstance(data, dict) or "peft_type" not in data:
        raise AdapterError(f"{file} is not a PEFT adapter config (no `peft_type`); {retrain}")


def _check_weights(file: Path, retrain: str) -> None:
    from safetensors import SafetensorError, safe_open

    try:
        # Opening parses the header and checks that it covers the file exactly (truncation).
        with safe_open(str(file), framework="pt") as handle:
            names = list(handle.keys())
    except (SafetensorError, OSError) as exc:
        raise AdapterError(
            f"{file} is not a readable safetensors file ({exc}); {retrain}"
        ) from None
    if not names:
        raise AdapterError(f"{file} holds no tensors; {retrain}")


def attach_adapters(model: Any, adapters: dict[str, Path]) -> Any:
    """Load LoRA adapters onto one `PeftModel` under the given names.

    Args:
        model: A transformers causal LM (or a `PeftModel`, to add more adapters).
        adapters: Adapter name -> adapter folder. Empty: `model` is returned unchanged.

    Returns:
        The `PeftModel` holding every adapter, in eval mode.

    Raises:
        AdapterError: A name is empty, contains a dot or is `__base__`; a folder fails
            `check_adapter_folder`; the weights do not fit this base model.
    """
    if not adapters:
        return model
    from peft import PeftModel

    check_adapters(adapters, set(model.peft_config) if isinstance(model, PeftModel) else set())
    for name, folder in adapters.items():
        try:
            with quiet_peft_warnings():
                model = _load_one(model, name, Path(folder))
        except (RuntimeError, ValueError, KeyError) as exc:
            raise AdapterError(
                f"cannot load adapter {name!r} from {folder}: {exc}. It was probably trained on "
                "another base model; retrain it on this base (`foundry train`)"
            ) from None
    logger.info("attached %d adapter(s): %s", len(adapters), ", ".join(adapters))
    model.eval()
    return model


def _load_one(model: Any, name: str, folder: Path) -> Any:
    from peft import PeftModel

    if isinstance(model, PeftModel):
        try:
            model.load_adapter(str(folder), adapter_name=name)
        except (RuntimeError, ValueError, KeyError):
            if name in model.peft_config:  # PEFT registers the name before the weights fail
                _drop_partial(model, name)
            raise
        return model
    return PeftModel.from_pretrained(model, str(folder), adapter_name=name)


def _drop_partial(model: Any, name: str) -> None:
    """Remove what a failed `load_adapter` left, so the name can be loaded again."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model.delete_adapter(name)
        except (RuntimeError, ValueError, KeyError, AttributeError):
            model.peft_config.pop(name, None)


def check_adapters(adapters: dict[str, Path], loaded: set[str] | None = None) -> None:
    """Check every name and folder of `adapters` (names must be new to `loaded`) before loading.

    Raises:
        AdapterError: See `attach_adapters`.
    """
    for name, folder in adapters.items():
        _check_adapter_name(name, loaded or set())
        check_adapter_folder(Path(folder))


def _check_adapter_name(name: str, loaded: set[str]) -> None:
    if not name or "." in name or name == BASE_ADAPTER:
        raise AdapterError(
            f"adapter name {name!r} is not allowed: use a non-empty name without dots, other than "
            f"{BASE_ADAPTER!r} (that name means the bare base model)"
        )
    if name in loaded:
        raise AdapterError(f"an adapter named {name!r} is already loaded; pick another name")


@contextmanager
def use_adapter(model: Any, name: str) -> Iterator[Any]:
    """Route the `PeftModel`'s inner model through one adapter (none for `__base__`) while inside.

    The one-adapter-at-a-time path (PEFT's `set_adapter`), for comparisons with mixed batches:
    yields `model.get_base_model()`, whose LoRA layers use only `name`. Requests passed to
    `generate` with it must leave `adapter` at `__base__`. The previous active adapter is restored.
    """
    previous = model.active_adapter
    is_trainable = any(p.requires_grad for p in model.parameters())
    try:
        if name == BASE_ADAPTER:
            with model.disable_adapter():
                yield model.get_base_model()
        else:
            model.set_adapter(name, inference_mode=True)
            yield model.get_base_model()
    finally:
        model.set_adapter(previous, inference_mode=not is_trainable)


def adapter_digest(folder: Path) -> str:
    """sha256 over the adapter's config (rank, alpha, targets) and weights."""
    parts = [f"{name}:{file_digest(folder / name)}" for name in (CONFIG_FILE, WEIGHTS_FILE)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
