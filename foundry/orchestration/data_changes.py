"""Has any persona's data changed since its champion was trained?

Public entry point: `data_changes(config)` compares each trainable persona's content hash
(contract and corpus, the hash `retrain` tags on every model version as `content_hash`) with its
champion's tag; a persona without a champion counts as changed. The `watch-data` flow starts a
retrain for the changed ones.
"""

from __future__ import annotations

from pydantic import BaseModel

from foundry.config import FoundryConfig
from foundry.data.validation import validate_personas
from foundry.data.versions import persona_content_hash
from foundry.errors import raise_for_errors
from registry.models import get_alias_version
from registry.tracking import open_client


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
