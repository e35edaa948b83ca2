"""Deploying several personas' registered versions to one serving target.

Public entry point: `deploy_personas(config, slugs, target, version)` opens the target once and
runs `deploy.release.deploy_version` for each persona (the champion, or `version` with one
persona); one persona's failure does not stop the others.
"""

from __future__ import annotations

from collections.abc import Callable

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
