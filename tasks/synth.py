"""Prefect task of the synthesis stage: one persona's synthetic debate turns.

Public entry point: `synth_persona_task` (one persona, both phases, review, files). The logic
lives in `foundry.synthesis.turn_synthesis` (`synthesize`, `synthesize_persona`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from foundry.config import load_config, load_settings
from foundry.synthesis.turn_synthesis import synthesize_persona
from foundry.training.base_model import ensure_base


@task(name="synthesize-persona", task_run_name="synthesize[{slug}]")
def synth_persona_task(
    config_path: str | None, slug: str, provider: str = "", budget_usd: float | None = None
) -> dict[str, Any]:
    """One persona's turns (both phases, review, files); fails when requests failed, so the
    persona's training never runs on partial data.

    Args:
        config_path: the project configuration file (default: the project's foundry.yaml).
        slug: the persona.
        provider: `anthropic`, `offline` or `local` (default `synthesis.provider`).
        budget_usd: this persona's dollar cap (default `synthesis.budget_usd`).

    Returns:
        The persona's counts (planned, reused, generated, accepted, rejected), cost, provider,
        model and seconds.

    Raises:
        SynthesisError: requests were left for the budget.
        RequestsFailedError: requests failed; the turns made are kept for a rerun.
    """
    config = load_config(Path(config_path) if config_path else None)
    return synthesize_persona(
        config, load_settings(), slug, provider=provider, budget_usd=budget_usd,
        load_base=lambda: ensure_base(config),
    )  # fmt: skip
