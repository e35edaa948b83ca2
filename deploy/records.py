"""The registry as the record of what is deployed where.

A deploy tags the model version with `deploy.<target>.{remote_id, served_name, digest, at,
smoke_latency_s}` and points the registered model's `deploy.<target>.version` at it;
`current_deployment` reads that back (the rollback target of the next deploy), `undeploy` stops
serving and clears it, and `deployment_status` lists it beside what each target answers for now.
`served_models` gives the `model` name a client sends to reach each persona on a target.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from deploy import DeployError, check_target
from deploy.bundle import AdapterBundle
from deploy.smoke import SmokeResult
from deploy.target import Remote, Target
from foundry.config import FoundryConfig
from foundry.logs import get_logger
from registry.models import model_name
from registry.tracking import open_client

logger = get_logger(__name__)


def _tag(target: str, key: str) -> str:
    return f"deploy.{target}.{key}"


def current_deployment(client: Any, slug: str, target: str) -> tuple[int, Remote] | None:
    """The version the registry says `target` serves for `slug`, and its remote."""
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_registered_model(model_name(slug)).tags or {}
    except MlflowException:
        return None
    version = tags.get(_tag(target, "version"))
    if not version:
        return None
    mv_tags = client.get_model_version(model_name(slug), version).tags or {}
    remote = Remote(
        mv_tags.get(_tag(target, "remote_id"), ""), mv_tags.get(_tag(target, "served_name"), "")
    )
    return int(version), remote


def served_models(config: FoundryConfig, slugs: list[str], target: str) -> dict[str, str]:
    """The `model` name that reaches each persona's adapter on `target` (OpenAI-compatible).

    `local` (`foundry serve`) serves every persona's adapter under its slug, deployed or only
    trained; the other targets serve what `foundry deploy` recorded on the model version.

    Raises:
        DeployError: unknown target, or a persona has no deployment recorded on it (the
            message names every such persona and the command that deploys them).
    """
    check_target(target)
    if target == "local":
        return {slug: slug for slug in slugs}
    client = open_client(config)
    models: dict[str, str] = {}
    missing: list[str] = []
    for slug in slugs:
        current = current_deployment(client, slug, target)
        if current is None or not current[1].served_name:
            missing.append(slug)
        else:
            models[slug] = current[1].served_name
    if missing:
        flags = " ".join(f"--persona {slug}" for slug in missing)
        leave_out = " (or leave those personas out with --persona)" if models else ""
        raise DeployError(
            f"no deployment on {target} recorded for {', '.join(missing)}; deploy with "
            f"`foundry deploy --target {target} {flags}`{leave_out}"
        )
    return models


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_deployment(
    client: Any,
    target: str,
    slug: str,
    version: int,
    bundle: AdapterBundle,
    remote: Remote,
    smoke: SmokeResult,
) -> None:
    name = model_name(slug)
    tags = {
        "remote_id": remote.remote_id,
        "served_name": remote.served_name,
        "digest": bundle.digest,
        "at": _now(),
        "smoke_latency_s": f"{smoke.latency_s:.3f}" if smoke.latency_s >= 0 else "untested",
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), _tag(target, key), value)
    client.set_registered_model_tag(name, _tag(target, "version"), str(version))


def undeploy(config: FoundryConfig, target: Target, slug: str) -> int | None:
    """Stop serving `slug` on `target`; the version that was served (None: nothing was)."""
    client = open_client(config)
    current = current_deployment(client, slug, target.name)
    if current is None:
        return None
    version, remote = current
    target.deactivate(remote)
    name = model_name(slug)
    client.delete_registered_model_tag(name, _tag(target.name, "version"))
    client.set_model_version_tag(name, str(version), _tag(target.name, "undeployed_at"), _now())
    return version


def _ask_live(target: Target | None) -> set[str] | None:
    if target is None:
        return None
    try:
        return target.live()
    except DeployError as exc:
        logger.warning("cannot ask %s what it serves: %s", target.name, exc)
        return None


@dataclass(frozen=True)
class DeploymentRow:
    slug: str
    target: str
    version: int
    served_name: str
    remote_id: str
    deployed_at: str
    latency_s: str
    live: bool | None  # None: the target was not asked or cannot tell


def deployment_status(
    config: FoundryConfig, slugs: list[str], targets: dict[str, Target | None]
) -> list[DeploymentRow]:
    """What the registry records as deployed, per persona and target, checked against each
    target's `live()` where a target object is given."""
    client = open_client(config)
    live = {name: _ask_live(t) for name, t in targets.items()}
    rows = []
    for slug in slugs:
        for name in targets:
            current = current_deployment(client, slug, name)
            if current is None:
                continue
            version, remote = current
            tags = client.get_model_version(model_name(slug), str(version)).tags or {}
            served = live[name]
            rows.append(
                DeploymentRow(
                    slug=slug,
                    target=name,
                    version=version,
                    served_name=remote.served_name,
                    remote_id=remote.remote_id,
                    deployed_at=tags.get(_tag(name, "at"), ""),
                    latency_s=tags.get(_tag(name, "smoke_latency_s"), ""),
                    live=None if served is None else remote.served_name in served,
                )
            )
    return rows
