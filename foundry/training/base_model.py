"""Base models: the embedded `tiny` one, a hub id, or a local folder, loaded for training,
generation and scoring.

Public entry points: `ensure_base(config)` validates the corpora and loads the project's base
(building and pinning `tiny` from all personas' train splits the first time), and
`load_base(config, documents=None, progress=None)` loads the configured base; both return a
`LoadedBase` (model, tokenizer, name, local path). The tiny model itself is built in
`foundry.training.tiny_model` and its cache folder chosen in `foundry.training.tiny_cache`.
Names other than `tiny` go through transformers and honour `HF_HUB_OFFLINE`. Only safetensors
weights are loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundry.config import FoundryConfig
from foundry.data.validation import validate_personas
from foundry.errors import raise_for_errors
from foundry.training.config import SMOLLM2
from foundry.training.datasets import base_documents
from foundry.training.smollm2 import (
    MANIFEST,
    SERVED_NAME,
    manifest_digest,
    smollm2_folder,
    smollm2_identity,
)
from foundry.training.tiny_cache import tiny_folder, tiny_pin
from foundry.training.tiny_model import (
    CHAT_TEMPLATE,
    BaseModelError,
    PretrainDoc,
    Progress,
    load_tiny_folder,
)


@dataclass
class LoadedBase:
    """A loaded base model, its tokenizer, and where it came from."""

    model: Any
    tokenizer: Any
    name: str
    path: Path | None  # local folder (the tiny cache, or a local model); None for a hub id
    is_tiny: bool
    digest: str = ""  # smollm2: its manifest's digest

    @property
    def identity(self) -> str:
        """The id reports and persona vectors record: `tiny:<build>` (a hash of its inputs),
        `smollm2:<manifest digest>`, or the configured name."""
        if self.is_tiny and self.path:
            return f"tiny:{self.path.name}"
        return f"{self.name}:{self.digest}" if self.digest else self.name


def ensure_base(
    config: FoundryConfig, progress: Progress | None = None, *, refresh: bool = False
) -> LoadedBase:
    """Load the base model; `tiny` is trained on all personas' train splits once, then kept
    while the set of personas stays the same (`base_model.tiny.rebuild`).

    Args:
        config: the project configuration.
        progress: called as `progress(step, total, loss)` while the tiny base trains.
        refresh: build the tiny base of the current corpora even if one is pinned.

    Raises:
        DataError: the persona data has errors (all of them are listed).
        BaseModelError: the base model cannot be built or loaded.
    """
    summary = validate_personas(config)
    raise_for_errors(summary.problems, f"data in {config.data_dir}")
    if not config.base_model.is_tiny:
        return load_base(config)
    documents = base_documents(summary)
    pin = tiny_pin(config, [p.slug for p in summary.personas], documents)
    return load_base(config, documents, progress, pin=pin, refresh=refresh)


def load_base(
    config: FoundryConfig,
    documents: Sequence[PretrainDoc] | None = None,
    progress: Progress | None = None,
    *,
    pin: str = "",
    refresh: bool = False,
) -> LoadedBase:
    """Load the configured base model, training and caching `tiny` first when needed.

    `pin` names the inputs the tiny base stands for (`tiny_pin`): a base built under a pin is
    reused for it even after the documents change, so adapters trained on it stay valid;
    `refresh` builds (or finds) the base of the current documents and re-pins it.

    Raises:
        BaseModelError: `tiny` is not cached and no documents were given; a hub model is not
            available offline; 4-bit loading without CUDA; a folder without safetensors weights.
    """
    if not config.base_model.is_tiny:
        return _load_pretrained(config)
    folder = tiny_folder(config, documents, progress, pin=pin, refresh=refresh)
    model, tokenizer = load_tiny_folder(folder)
    return LoadedBase(model=model, tokenizer=tokenizer, name="tiny", path=folder, is_tiny=True)


def _load_pretrained(config: FoundryConfig) -> LoadedBase:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings = config.base_model
    if settings.is_smollm2:
        return _load_smollm2(config)
    local = Path(settings.name).expanduser()
    if local.is_dir():
        _check_safetensors(local)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
    kwargs: dict[str, Any] = {
        "trust_remote_code": settings.trust_remote_code,
        "use_safetensors": True,
        "local_files_only": offline,
    }
    if settings.quantization == "4bit":
        kwargs.update(_four_bit_kwargs())
    elif torch.cuda.is_available():
        kwargs.update(dtype=torch.bfloat16, device_map="auto")
    try:
        tokenizer = AutoTokenizer.from_pretrained(settings.name, **_tokenizer_kwargs(kwargs))
        model = AutoModelForCausalLM.from_pretrained(settings.name, **kwargs)
    except (OSError, ValueError) as exc:
        hint = " (HF_HUB_OFFLINE is set and it is not in the local cache)" if offline else ""
        raise BaseModelError(
            f"cannot load base model {settings.name!r}{hint}: {exc}. Set `base_model.name` to "
            "`tiny`, a local folder with safetensors weights, or a hub id you can download"
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE.replace("<|end|>", tokenizer.eos_token or "")
    model.eval()
    return LoadedBase(
        model=model,
        tokenizer=tokenizer,
        name=settings.name,
        path=local if local.is_dir() else None,
        is_tiny=False,
    )


def _four_bit_kwargs() -> dict[str, Any]:
    import torch
    from transformers import BitsAndBytesConfig

    if not torch.cuda.is_available():
        raise BaseModelError(
            "`base_model.quantization: 4bit` needs a CUDA GPU (bitsandbytes QLoRA); "
            "set it to `none` on this machine"
        )
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )
    return {"quantization_config": quantization, "dtype": torch.bfloat16, "device_map": "auto"}


def _tokenizer_kwargs(model_kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: model_kwargs[k] for k in ("trust_remote_code", "local_files_only")}


def _load_smollm2(config: FoundryConfig) -> LoadedBase:
    """The packaged SmolLM2, from its converted folder (converted on first use)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = smollm2_folder(config)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    # Adapters record this as their base: the hub original servers load, not a local folder.
    # PEFT copies `model.name_or_path` (set from the folder at load) into `adapter_config.json`.
    model.config._name_or_path = model.name_or_path = SERVED_NAME
    digest = manifest_digest(folder / MANIFEST)
    return LoadedBase(model, tokenizer, SMOLLM2, folder, is_tiny=False, digest=digest)


def base_tag(config: FoundryConfig) -> str:
    """The base's name in lineage tags, without loading it: `smollm2:<manifest digest>` (the
    configured name before its first conversion), else `base_model.name`."""
    if config.base_model.is_smollm2:
        return smollm2_identity(config) or SMOLLM2
    return config.base_model.name


def served_base(config: FoundryConfig) -> str:
    """The model a server loads to serve the adapters: SmolLM2's hub original, else the name."""
    return SERVED_NAME if config.base_model.is_smollm2 else config.base_model.name


def _check_safetensors(folder: Path) -> None:
    if not list(folder.glob("*.safetensors")):
        unsafe = sorted(p.name for p in folder.iterdir() if p.suffix in {".bin", ".pt", ".pth"})
        found = f" (found {', '.join(unsafe)})" if unsafe else ""
        raise BaseModelError(
            f"{folder} has no .safetensors weights{found}; only safetensors are loaded: convert "
            "the weights (for example `model.save_pretrained(dir, safe_serialization=True)`)"
        )
