"""The model variants a persona can speak through, resolved to an adapter and a system prompt.

`base` is the bare base model; `prompt` is the base with the contract as system prompt (the
prompt-only baseline every adapter must beat); `sft` and `dpo` are the persona's trained adapters.
Evaluation and the CLI share this mapping so a variant means the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from foundry.config import FoundryConfig
from foundry.errors import FoundryError
from foundry.framing import contract_system_prompt
from foundry.schemas import PersonaContract

Variant = Literal["base", "prompt", "sft", "dpo"]
VARIANTS: tuple[Variant, ...] = ("base", "prompt", "sft", "dpo")
BASE_ADAPTER = "__base__"


@dataclass(frozen=True)
class ResolvedVariant:
    persona: str
    variant: Variant
    adapter: str  # the adapter name in a multi-adapter model, or BASE_ADAPTER
    path: Path | None  # the adapter folder, None for the base
    system: str | None


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
    path = config.adapter_dir(contract.slug, variant)
    if not (path / "adapter_config.json").is_file():
        raise FoundryError(
            f"no {variant} adapter for {contract.slug} in {path}; train it with "
            f"`foundry train --persona {contract.slug} --stage {variant}`"
        )
    return ResolvedVariant(contract.slug, variant, f"{contract.slug}-{variant}", path, None)
