"""The `watch-data` step: `data_changes_task` lists the personas whose data differs from their
champion's, or that have none (`foundry.orchestration.data_changes.data_changes`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from foundry.config import load_config
from foundry.logs import get_logger
from foundry.orchestration.data_changes import data_changes

logger = get_logger(__name__)


@task(name="data-changes")
def data_changes_task(config_path: str | None) -> dict[str, Any]:
    """The personas whose data differs from their champion's (or that have none)."""
    rows = data_changes(load_config(Path(config_path) if config_path else None))
    for row in rows:
        logger.info(
            "persona %s: data %s, champion %s (%s)%s",
            row.persona, row.content_hash,
            f"v{row.champion_version}" if row.champion_version else "none",
            row.champion_hash or "-", " -> changed" if row.changed else "",
        )  # fmt: skip
    return {
        "changed": [row.persona for row in rows if row.changed],
        "personas": {row.persona: row.model_dump() for row in rows},
    }
