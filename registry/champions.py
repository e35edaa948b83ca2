"""Champion changes in the MLflow model registry: promote, refuse and roll back.

Entry points: `promote_version` (the CLI's promotion: decide against the champion from the
versions' `metric.*` tags, then `promote` or `record_refusal`), `promote`, `record_refusal` and
`rollback`. Every decision is tagged on its version (`promotion.decision`, `promotion.reasons`,
`promotion.at`); the registered model's `champion_history` tag (a JSON list of versions)
remembers earlier champions for `rollback`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from foundry.logs import get_logger
from registry.config import PromotionConfig
from registry.models import (
    CHALLENGER,
    CHAMPION,
    RegistryError,
    get_alias_version,
    is_not_found,
    list_versions,
    model_name,
    version_intervals,
    version_metrics,
)
from registry.promotion import Decision, decide

DERIVED_TAG = "derived_from"  # on a derived persona's versions: its sources, their versions

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

logger = get_logger(__name__)

HISTORY_TAG = "champion_history"
_MAX_TAG_CHARS = 5000  # MLflow's limit on a tag value


def promote(client: MlflowClient, slug: str, version: int, decision: Decision) -> None:
    """Make `version` the champion and record the decision on it.

    The previous champion is appended to the model's `champion_history` tag; a `challenger`
    alias pointing at `version` is removed (it is no longer a challenger).

    Args:
        client: The MLflow client.
        slug: The persona's slug.
        version: The version to promote.
        decision: The decision that allowed it (`forced` marks a forced promotion).
    """
    name = model_name(slug)
    previous = get_alias_version(client, slug, CHAMPION)
    if previous is not None and int(previous.version) != version:
        history = _history(client, slug)
        _set_history(client, slug, [*history, int(previous.version)])
    client.set_registered_model_alias(name, CHAMPION, str(version))
    challenger = get_alias_version(client, slug, CHALLENGER)
    if challenger is not None and int(challenger.version) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    outcome = "promoted-forced" if decision.forced else "promoted"
    _tag_decision(client, slug, version, outcome, decision)
    logger.info("%s v%s is champion (%s)", name, version, outcome)


def record_refusal(client: MlflowClient, slug: str, version: int, decision: Decision) -> None:
    """Tag `version` with a refused promotion and its reasons."""
    _tag_decision(client, slug, version, "refused", decision)
    logger.info("%s v%s refused: %s", model_name(slug), version, "; ".join(decision.reasons))


def _tag_decision(
    client: MlflowClient, slug: str, version: int, outcome: str, decision: Decision
) -> None:
    name, number = model_name(slug), str(version)
    reasons = "; ".join(decision.reasons) or "all gates and comparisons passed"
    if decision.notes:
        reasons += " (" + "; ".join(decision.notes) + ")"
    client.set_model_version_tag(name, number, "promotion.decision", outcome)
    client.set_model_version_tag(name, number, "promotion.reasons", reasons[:_MAX_TAG_CHARS])
    client.set_model_version_tag(name, number, "promotion.at", _now())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _history(client: MlflowClient, slug: str) -> list[int]:
    tags = client.get_registered_model(model_name(slug)).tags
    return [int(v) for v in json.loads(tags.get(HISTORY_TAG, "[]"))]


def _set_history(client: MlflowClient, slug: str, history: list[int]) -> None:
    # Read-modify-write: two promotions of the same persona at once could lose an entry.
    client.set_registered_model_tag(model_name(slug), HISTORY_TAG, json.dumps(history))


def rollback(client: MlflowClient, slug: str) -> tuple[int, int]:
    """Give the champion alias back to the previous champion.

    Args:
        client: The MLflow client.
        slug: The persona's slug.

    Returns:
        (demoted version, restored version).

    Raises:
        RegistryError: The persona has no champion, or no previous champion in its history.
    """
    name = model_name(slug)
    current = get_alias_version(client, slug, CHAMPION)
    if current is None:
        raise RegistryError(
            f"{name} has no champion to roll back; promote a version first with "
            f"`foundry registry promote {slug} --version N`"
        )
    history = _history(client, slug)
    if not history:
        raise RegistryError(
            f"{name} has no previous champion (its `{HISTORY_TAG}` tag is empty), so champion "
            f"v{current.version} cannot be rolled back; promote another version with "
            f"`foundry registry promote {slug} --version N --force` instead"
        )
    restored = history.pop()
    client.set_registered_model_alias(name, CHAMPION, str(restored))
    _set_history(client, slug, history)
    client.set_model_version_tag(name, current.version, "promotion.rolled_back_at", _now())
    logger.info("%s champion rolled back from v%s to v%s", name, current.version, restored)
    return int(current.version), restored


def promote_version(
    client: MlflowClient,
    slug: str,
    version: int | None,
    policy: PromotionConfig,
    force: bool = False,
) -> Decision:
    """Decide on a version against the champion (from `metric.*` tags), then promote or refuse.

    Args:
        client: The MLflow client.
        slug: The persona's slug.
        version: The version to promote; None means the `challenger` alias.
        policy: The promotion policy.
        force: Promote even when checks fail.

    Returns:
        The decision (already applied: aliases and tags are set).

    Raises:
        RegistryError: The version does not exist, there is no challenger, or the version is
            already the champion.
    """
    candidate = _find_version(client, slug, version)
    champion = get_alias_version(client, slug, CHAMPION)
    if champion is not None and champion.version == candidate.version:
        raise RegistryError(
            f"{model_name(slug)} v{candidate.version} is already the champion; nothing to promote"
        )
    decision = decide(
        version_metrics(candidate),
        version_metrics(champion) if champion is not None else None,
        policy,
        force,
        champion_version=int(champion.version) if champion is not None else None,
        intervals=version_intervals(candidate),
        champion_intervals=version_intervals(champion) if champion is not None else None,
        is_derived=DERIVED_TAG in candidate.tags,
    )
    if decision.promote:
        promote(client, slug, int(candidate.version), decision)
    else:
        record_refusal(client, slug, int(candidate.version), decision)
    return decision


def _find_version(client: MlflowClient, slug: str, version: int | None) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    name = model_name(slug)
    if version is None:
        challenger = get_alias_version(client, slug, CHALLENGER)
        if challenger is None:
            raise RegistryError(
                f"{name} has no `{CHALLENGER}` alias; pass `--version N` (versions: "
                f"{_version_numbers(client, slug) or 'none'})"
            )
        return challenger
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if not is_not_found(exc):
            raise
    raise RegistryError(
        f"{name} has no version {version}; existing versions: "
        f"{_version_numbers(client, slug) or 'none (train and register one first)'}"
    )


def _version_numbers(client: MlflowClient, slug: str) -> list[int]:
    return [int(v.version) for v in list_versions(client, slug)]
