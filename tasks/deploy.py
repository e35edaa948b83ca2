"""Deploying personas' registered champions to a serving target (`deploy/`).

Public entry points: `deploy_personas(config, slugs, target, version)` opens the target once and
runs `deploy.release.deploy_version` for each persona (the champion, or `version` with one
persona); `deploy_task` wraps one persona for flows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import task

from deploy import DeployError, get_target
from deploy.release import DeployResult, deploy_version
from foundry.config import FoundryConfig


def deploy_personas(
    config: FoundryConfig,
    slugs: list[str],
    target: str = "",
    version: int | None = None,
    on_done: Callable[[str, DeployResult | DeployError], None] | None = None,
) -> dict[str, DeployResult | DeployError]:
    """Deploy each persona to `target` (default `deploy.target`); one failure does not stop the
    others, and each persona's outcome (result or error) is returned and passed to `on_done`.

    Raises:
        DeployError: the target cannot be opened (unknown, credentials or settings missing).
    """
    if version is not None and len(slugs) != 1:
        raise DeployError("--version needs exactly one --persona")
    opened = get_target(target or config.deploy.target, config)
    outcomes: dict[str, DeployResult | DeployError] = {}
    try:
        for slug in slugs:
            try:
                outcomes[slug] = deploy_version(config, opened, slug, version)
            except DeployError as exc:
                outcomes[slug] = exc
            if on_done is not None:
                on_done(slug, outcomes[slug])
    finally:
        opened.close()
    return outcomes


@task(name="deploy-persona", task_run_name="deploy[{slug}]")
def deploy_task(
    config_path: str | None, slug: str, version: int | None = None, target: str = ""
) -> dict[str, Any]:
    """Deploy one persona's version (default: champion) to the target (default: config)."""
    from foundry.config import load_config

    config = load_config(Path(config_path) if config_path else None)
    outcome = deploy_personas(config, [slug], target, version)[slug]
    if isinstance(outcome, DeployError):
        raise outcome
    return outcome.as_dict()


__all__ = ["DeployError", "deploy_personas", "deploy_task"]
