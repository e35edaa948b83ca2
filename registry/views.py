"""Read-only views of the persona models in the MLflow registry, for `foundry registry`.

Entry points: `list_personas` (one summary row per persona) and `show_persona` (every version
of one persona with its aliases, tags and promotion decision).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from registry.champions import HISTORY_TAG
from registry.models import (
    CHALLENGER,
    CHAMPION,
    RegistryError,
    get_alias_version,
    is_not_found,
    list_versions,
    model_name,
    version_metrics,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient


def list_personas(client: MlflowClient) -> list[dict[str, Any]]:
    """Summarise every persona model: versions, aliases and the champion's headline numbers.

    Returns:
        One dict per persona, sorted by slug: `persona`, `versions` (count), `champion` and
        `challenger` (version numbers or None), `metrics` (the champion's) and `data_rev`
        (the champion's tag, "" when unknown).
    """
    rows = []
    for model in _persona_models(client):
        slug = model.tags["persona"]
        champion = get_alias_version(client, slug, CHAMPION)
        challenger = model.aliases.get(CHALLENGER)
        rows.append(
            {
                "persona": slug,
                "versions": len(list_versions(client, slug)),
                "champion": int(champion.version) if champion else None,
                "challenger": int(challenger) if challenger else None,
                "metrics": version_metrics(champion) if champion else {},
                "data_rev": champion.tags.get("data_rev", "") if champion else "",
            }
        )
    return sorted(rows, key=lambda row: row["persona"])


def _persona_models(client: MlflowClient) -> list[Any]:
    models, token = [], None
    while True:
        page = client.search_registered_models(page_token=token)
        models += [m for m in page if "persona" in m.tags]
        token = page.token
        if not token:
            return models


def show_persona(client: MlflowClient, slug: str) -> dict[str, Any]:
    """Every version of one persona's model, with its aliases, tags and promotion decision.

    Returns:
        `persona`, `model`, `champion_history`, and `versions`: a list of dicts with
        `version`, `aliases`, `tags`, `created` (UTC ISO) and `decision` ("" when none).

    Raises:
        RegistryError: The persona has no registered model.
    """
    from mlflow.exceptions import MlflowException

    name = model_name(slug)
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if not is_not_found(exc):
            raise
        known = [row["persona"] for row in list_personas(client)]
        raise RegistryError(
            f"no registered model {name}; registered personas: {known or 'none'}"
        ) from None
    # search_model_versions leaves `aliases` empty on sqlite; the registered model has them all.
    aliases: dict[int, list[str]] = {}
    for alias, number in model.aliases.items():
        aliases.setdefault(int(number), []).append(alias)
    versions = [
        {
            "version": int(v.version),
            "aliases": sorted(aliases.get(int(v.version), [])),
            "tags": dict(v.tags),
            "created": datetime.fromtimestamp(v.creation_timestamp / 1000, UTC).isoformat(),
            "decision": v.tags.get("promotion.decision", ""),
        }
        for v in list_versions(client, slug)
    ]
    history = json.loads(model.tags.get(HISTORY_TAG, "[]"))
    return {"persona": slug, "model": name, "champion_history": history, "versions": versions}
