"""Phase 1, prompt-only personas: each persona's enhanced system prompt written to a file.

Public entry point: `export_system_prompts(config, slugs, out)` writes `<out>/<slug>.md` (the
contract, reasoning method and constitution as one system prompt) for prompt-only systems.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from foundry.atomic import write_text_atomic
from foundry.config import FoundryConfig
from foundry.data.framing import persona_system_prompt
from foundry.data.validation import validate_personas
from foundry.errors import raise_for_errors


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
