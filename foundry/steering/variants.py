"""The model variants a persona can speak through, resolved to an adapter and a system prompt.

`base` is the bare base model; `prompt` is the base with the contract as system prompt (the
prompt-only baseline every adapter must beat); `sft` and `dpo` are the persona's trained adapters;
`steer` is the base steered by the persona vector, and `dpo+steer` the DPO adapter steered by it
(each at the strength its own sweep chose). Evaluation and the CLI share this mapping so a variant
means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from foundry.config import FoundryConfig
from foundry.data.framing import BASE_ADAPTER, contract_system_prompt
from foundry.data.schemas import PersonaContract
from foundry.errors import FoundryError

Variant = Literal["base", "prompt", "sft", "dpo", "steer", "dpo+steer"]
VARIANTS: tuple[Variant, ...] = ("base", "prompt", "sft", "dpo", "steer", "dpo+steer")


@dataclass(frozen=True)
class ResolvedVariant:
    persona: str
    variant: Variant
    adapter: str  # the adapter name in a multi-adapter model, or BASE_ADAPTER
    path: Path | None  # the adapter folder, None for the base
    system: str | None
    steer: str | None = None  # the name the persona vector is registered under, when steered
    vector: Path | None = None  # the persona vector folder, when steered


def resolve_variant(
    config: FoundryConfig, contract: PersonaContract, variant: Variant
) -> ResolvedVariant:
    """Map (persona, variant) to what generation needs.

    Raises:
        FoundryError: the variant is unknown or its adapter has not been trained yet.
    """
    if variant not in VARIANTS:
        raise FoundryError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")
    if variant in ("base", "prompt"):
        system = contract_system_prompt(contract) if variant == "prompt" else None
        return ResolvedVariant(contract.slug, variant, BASE_ADAPTER, None, system)
    if variant == "steer":
        vector = _vector_folder(config, contract.slug, variant)
        return ResolvedVariant(
            contract.slug, variant, BASE_ADAPTER, None, None, f"{contract.slug}@{variant}", vector
        )
    stage = variant.removesuffix("+steer")
    path = config.adapter_dir(contract.slug, stage)
    if not (path / "adapter_config.json").is_file():
        raise FoundryError(
            f"no {stage} adapter for {contract.slug} in {path}; train it with "
            f"`foundry train --persona {contract.slug} --stage {stage}`"
        )
    adapter = f"{contract.slug}-{stage}"
    if variant == "dpo+steer":
        vector = _vector_folder(config, contract.slug, variant)
        return ResolvedVariant(
            contract.slug, variant, adapter, path, None, f"{contract.slug}@{variant}", vector
        )
    return ResolvedVariant(contract.slug, variant, adapter, path, None)


def _vector_folder(config: FoundryConfig, slug: str, variant: str) -> Path:
    """The persona vector's folder, once it has a chosen strength for `variant`."""
    import json

    from foundry.steering.store import META_FILE, TENSORS_FILE

    folder = config.vector_dir(slug)
    if not (folder / META_FILE).is_file() or not (folder / TENSORS_FILE).is_file():
        raise FoundryError(
            f"no persona vector for {slug} in {folder}; extract it with "
            f"`foundry vectors extract --persona {slug}` (or set `steering.enabled: true`)"
        )
    chosen = json.loads((folder / META_FILE).read_text()).get("alpha", {})
    if variant not in chosen:
        raise FoundryError(
            f"the persona vector of {slug} has no strength for {variant} (it was extracted "
            f"before the DPO adapter was trained); run `foundry vectors extract --persona {slug}`"
        )
    return folder


def register_variant_vectors(
    model: Any, resolved: Sequence[ResolvedVariant], base_model: str
) -> None:
    """Register each steered variant's persona vector at that variant's chosen strength; a
    vector from another base model is refused (`VectorError`)."""
    from foundry.steering.hooks import register_vectors
    from foundry.steering.store import load_persona_vector

    hidden = int(getattr(model, "config", model).hidden_size)
    for r in resolved:
        if r.steer and r.vector:
            vector = load_persona_vector(r.vector, base_model=base_model, hidden_size=hidden)
            register_vectors(model, {r.steer: vector.steer_vector(r.variant)})
