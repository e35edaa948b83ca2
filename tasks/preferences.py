"""Prefect task of the preference-pairs stage: one persona's DPO pairs from its turns.

Public entry points: `pairs_persona_task` runs `persona_pairs` in the flow's process pool. The
logic lives in `foundry.synthesis.pair_building` (`build_pairs`, `build_persona_pairs`) and
`foundry.synthesis.pair_sets` (`load_pairs`, `read_turns`, `export_pairs`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from foundry.config import load_config, load_settings
from foundry.synthesis.pair_building import build_persona_pairs
from foundry.training.base_model import ensure_base
from foundry.training.pool import run_in_pool


@task(name="preference-pairs-persona", task_run_name="pairs[{slug}]")
def pairs_persona_task(config_path: str | None, slug: str, provider: str = "") -> dict[str, Any]:
    """One persona's preference pairs from its turns (other personas' turns as they are now),
    in the flow's process pool when it has one: the generic negatives load the base model.

    Args:
        config_path: the project configuration file (default: the project's foundry.yaml).
        slug: the persona.
        provider: who writes the negatives (default `synthesis.provider`).

    Returns:
        The persona's pairs per strategy (and `eval`), cost and seconds.
    """
    return run_in_pool(
        persona_pairs, config_path, slug, provider, log=get_run_logger(),
        threads=os.cpu_count() or 1,
    )  # fmt: skip


def persona_pairs(config_path: str | None, slug: str, provider: str = "") -> dict[str, Any]:
    """Build one persona's pairs (in a worker process); what the flow records of them."""
    config = load_config(Path(config_path) if config_path else None)
    return build_persona_pairs(
        config, load_settings(), slug, provider=provider, load_base=lambda: ensure_base(config)
    )
