"""Has any persona's data changed since its champion was trained?

`data_changes(config)` compares each trainable persona's content hash (contract and corpus, the
hash `retrain` tags on every model version as `content_hash`) with its champion's tag; a persona
without a champion counts as changed. `data_changes_task` wraps it for the `watch-data` flow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from pydantic import BaseModel

from foundry.config import FoundryConfig
from foundry.data.validation import validate_personas
from foundry.errors import raise_for_errors
from foundry.logs import get_logger
from registry.models import get_alias_version
from registry.tracking import open_client
from tasks.versioning import persona_content_hash

logger = get_logger(__name__)


class PersonaChange(BaseModel):
    persona: str
    content_hash: str
    champion_version: int | None = None
    champion_hash: str = ""

    @property
    def changed(self) -> bool:
        return self.champion_version is None or self.champion_hash != self.content_hash


def data_changes(config: FoundryConfig) -> list[PersonaChange]:
    """One row per trainable persona: its data hash now and its champion's.

    Raises:
        DataError: the persona data has errors.
        TrackingError: the tracking server does not answer.
    """
    summary = validate_personas(config)
    raise_for_errors(summary.problems, f"data in {config.data_dir}")
    client = open_client(config)
    rows = []
    for persona in summary.personas:
        if persona.contract is None or not persona.contract.trainable or not persona.items:
            continue
        champion = get_alias_version(client, persona.slug, "champion")
        rows.append(
            PersonaChange(
                persona=persona.slug,
                content_hash=persona_content_hash(config.persona_dir(persona.slug)),
                champion_version=int(champion.version) if champion else None,
                champion_hash=(champion.tags or {}).get("content_hash", "") if champion else "",
            )
        )
    return rows


@task(name="data-changes")
def data_changes_task(config_path: str | None) -> dict[str, Any]:
    """The personas whose data differs from their champion's (or that have none)."""
    from foundry.config import load_config

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
