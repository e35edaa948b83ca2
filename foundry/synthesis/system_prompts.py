"""Phase 1, prompt-only personas: each persona's system prompt, written for other engines.

Public entry points: `export_system_prompts(config, slugs, out)` writes `<out>/<slug>.md` (the
contract, reasoning method and constitution as one system prompt) for prompt-only systems;
`export_faultline_personas(config, slugs, out, ...)` writes the JSON list Faultline's debate engine
reads with `--personas-json` (`faultline_personas` builds it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from foundry.atomic import write_text_atomic
from foundry.config import FoundryConfig
from foundry.data.framing import persona_system_prompt
from foundry.data.personas import discover_personas, require_contract, select_personas
from foundry.data.schemas import PersonaContract
from foundry.data.validation import validate_personas
from foundry.errors import DataError, raise_for_errors
from foundry.steering.variants import resolve_variant

# Given the exported slugs, the served `model` name of each one's adapter.
ServedModels = Callable[[list[str]], Mapping[str, str]]


def export_system_prompts(
    config: FoundryConfig, slugs: Sequence[str] | None, out: Path
) -> list[Path]:
    """Write `<out>/<slug>.md`: each persona's enhanced system prompt, for prompt-only systems.

    Raises:
        DataError: a selected persona has no valid contract.
    """
    summary = validate_personas(config, list(slugs) if slugs else None)
    written = []
    for persona in summary.personas:
        if persona.contract is None:
            raise_for_errors(persona.problems, f"persona {persona.slug}")
            continue
        path = out / f"{persona.slug}.md"
        write_text_atomic(path, persona_system_prompt(persona.contract) + "\n")
        written.append(path)
    return written


def faultline_personas(
    config: FoundryConfig,
    slugs: Sequence[str] | None,
    served_models: ServedModels | None = None,
    base_url: str = "",
) -> list[dict[str, str]]:
    """Faultline's `--personas-json` entries, one per persona: `{name, system_prompt, id}`.

    `system_prompt` is the `prompt` variant's system text (the contract), so a prompt-only
    Faultline debate runs the very baseline evaluation compares the adapters with. With
    `served_models`, each entry also names its adapter (`model`, at `base_url`) and its
    `system_prompt` is empty, as for the `dpo` variant: the adapters were trained without one.

    Raises:
        DataError: no persona to export, an unknown persona or an invalid contract, or two
            personas with the same display name (the engine tells speakers apart by name).
        DeployError: from `served_models`, when a persona has no served adapter.
    """
    available = discover_personas(config.personas_dir)
    selected = select_personas(
        available, list(slugs or config.personas.include), config.personas_dir
    )
    if not selected:
        raise DataError(
            f"no personas in {config.personas_dir}; run `foundry init` or "
            "`foundry import faultline DIR` first"
        )
    contracts = [require_contract(config.persona_dir(slug)) for slug in selected]
    _check_unique_names(contracts)
    if served_models is None:
        return [
            {
                "name": contract.name,
                "system_prompt": resolve_variant(config, contract, "prompt").system or "",
                "id": contract.slug,
            }
            for contract in contracts
        ]
    models = served_models(selected)
    return [
        {
            "name": contract.name,
            "system_prompt": "",
            "id": contract.slug,
            "model": models[contract.slug],
            "base_url": base_url,
        }
        for contract in contracts
    ]


def export_faultline_personas(
    config: FoundryConfig,
    slugs: Sequence[str] | None,
    out: Path,
    served_models: ServedModels | None = None,
    base_url: str = "",
) -> int:
    """Write `faultline_personas(...)` to `out` as JSON, all at once; the number of personas.

    Raises:
        DataError: as `faultline_personas`; nothing is written then.
    """
    entries = faultline_personas(config, slugs, served_models, base_url)
    write_text_atomic(out, json.dumps(entries, indent=2, ensure_ascii=False) + "\n")
    return len(entries)


def _check_unique_names(contracts: list[PersonaContract]) -> None:
    """Raise `DataError` when two contracts share a display name."""
    seen: dict[str, str] = {}
    for contract in contracts:
        other = seen.setdefault(contract.name, contract.slug)
        if other != contract.slug:
            raise DataError(
                f"personas {other} and {contract.slug} are both named {contract.name!r}; "
                "give one a different `name` in its contract.yaml"
            )
