"""The MLflow model registry's versions and aliases: register adapters, point and read aliases.

Each persona is one registered model, `persona-<slug>` (tag `persona=<slug>`); each retrain
registers a version whose source is the run's `adapter` artifact folder, with its lineage and
`metric.<name>` tags. Aliases say what serves: `challenger` (the newest candidate) and
`champion`. Promotion, refusal and rollback live in `registry.champions`, read-only views in
`registry.views`, downloading and loading adapters in `registry.loading`; all build on the small
helpers here.

Entry points: `register_adapter`, `set_alias`, `get_alias_version`, and the shared helpers
`model_name`, `metric_tags`, `version_metrics`, `list_versions` and `is_not_found`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from foundry.errors import FoundryError
from foundry.logs import get_logger

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

logger = get_logger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
METRIC_PREFIX = "metric."
INTERVAL_PREFIX = "interval."


class RegistryError(FoundryError):
    """A registry operation cannot be done (missing version, alias or history)."""


def model_name(slug: str) -> str:
    """The registered model name of a persona: `persona-<slug>`."""
    return f"persona-{slug}"


def metric_tags(metrics: Mapping[str, float]) -> dict[str, str]:
    """Version tags that carry metrics for `promote_version`: `metric.<name>` -> float string."""
    return {f"{METRIC_PREFIX}{name}": repr(float(value)) for name, value in metrics.items()}


def interval_tags(intervals: Mapping[str, Sequence[float]]) -> dict[str, str]:
    """Version tags that carry 95 % intervals: `interval.<name>` -> `"low,high"`."""
    return {
        f"{INTERVAL_PREFIX}{name}": f"{float(low)!r},{float(high)!r}"
        for name, (low, high) in intervals.items()
    }


def register_adapter(
    client: MlflowClient,
    slug: str,
    run_id: str,
    artifact_path: str = "adapter",
    tags: Mapping[str, str] | None = None,
    description: str = "",
) -> ModelVersion:
    """Register a run's adapter folder as a new version of the persona's model.

    Creates the registered model first when it is missing; a concurrent creation by another
    process (two personas or two retrains at once) is tolerated.

    Args:
        client: The MLflow client.
        slug: The persona's slug.
        run_id: The run that logged the adapter folder.
        artifact_path: The adapter folder inside the run's artifacts.
        tags: Version tags (lineage, `metric.*`); `persona` is always added.
        description: The version's description (e.g. the model card).

    Returns:
        The new model version.
    """
    from mlflow.exceptions import MlflowException

    name = model_name(slug)
    try:
        client.create_registered_model(name, tags={"persona": slug})
    except MlflowException as exc:
        # REST raises RestException, sqlite MlflowException: both carry the error code.
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    run = client.get_run(run_id)
    version = client.create_model_version(
        name,
        source=f"{run.info.artifact_uri}/{artifact_path}",
        run_id=run_id,
        tags={**(tags or {}), "persona": slug},
        description=description,
    )
    logger.info("registered %s version %s from run %s", name, version.version, run_id)
    return version


def set_alias(client: MlflowClient, slug: str, alias: str, version: int | str) -> None:
    """Point `alias` (e.g. `challenger`) of the persona's model at `version`."""
    client.set_registered_model_alias(model_name(slug), alias, str(version))


def get_alias_version(client: MlflowClient, slug: str, alias: str) -> ModelVersion | None:
    """The version an alias points at.

    Args:
        client: The MLflow client.
        slug: The persona's slug.
        alias: The alias, e.g. `champion`.

    Returns:
        The model version, or None when the alias (or the persona's model) does not exist.
    """
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name(slug), alias)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise


def is_not_found(exc: Exception) -> bool:
    """Whether an MLflow error means a missing model, version or alias."""
    # A missing model is RESOURCE_DOES_NOT_EXIST; a missing alias is INVALID_PARAMETER_VALUE
    # with "alias ... not found" (sqlite and REST stores alike).
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)
    )


def list_versions(client: MlflowClient, slug: str) -> list[ModelVersion]:
    """Every version of the persona's model, oldest first."""
    found = client.search_model_versions(f"name = '{model_name(slug)}'")
    return sorted(found, key=lambda v: int(v.version))


def version_intervals(version: ModelVersion) -> dict[str, list[float]]:
    """A version's 95 % intervals from its `interval.<name>` tags (unparseable ones are skipped)."""
    intervals = {}
    for key, value in version.tags.items():
        if key.startswith(INTERVAL_PREFIX):
            try:
                low, high = (float(part) for part in value.split(","))
            except ValueError:
                logger.warning("ignoring tag %s=%r: not two numbers", key, value)
                continue
            intervals[key.removeprefix(INTERVAL_PREFIX)] = [low, high]
    return intervals


def version_metrics(version: ModelVersion) -> dict[str, float]:
    """A version's metrics from its `metric.<name>` tags (unparseable values are skipped)."""
    metrics = {}
    for key, value in version.tags.items():
        if key.startswith(METRIC_PREFIX):
            try:
                metrics[key.removeprefix(METRIC_PREFIX)] = float(value)
            except ValueError:
                logger.warning("ignoring tag %s=%r: not a number", key, value)
    return metrics
