"""Deploying a persona's registered champion to the configured target (`deploy/`).

Public entry points: `deploy_champion(config, slug, version=None)` resolves the version (the
champion by default) and hands it to the target module; `deploy_task` wraps it for flows.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import task

from deploy import DeployError, get_target
from foundry.config import FoundryConfig
from registry.models import get_alias_version
from registry.tracking import open_client


def deploy_champion(
    config: FoundryConfig, slug: str, version: int | None = None, target: str = ""
) -> dict[str, Any]:
    """Deploy `slug`'s `version` (default: its champion) to `target` (default: `deploy.target`).

    Raises:
        DeployError: the target is unknown or not built, or the persona has no champion.
    """
    name = target or config.deploy.target
    module = get_target(name)
    if version is None:
        champion = get_alias_version(open_client(config), slug, "champion")
        if champion is None:
            raise DeployError(
                f"persona {slug} has no champion to deploy; run `foundry run` (or promote one: "
                f"`foundry registry promote {slug} --version N`)"
            )
        version = int(champion.version)
    return module.deploy(config, slug, version)


@task(name="deploy-persona", task_run_name="deploy[{slug}]")
def deploy_task(
    config_path: str | None, slug: str, version: int | None = None, target: str = ""
) -> dict[str, Any]:
    """Deploy one persona's version (default: champion) to the target (default: config)."""
    from foundry.config import load_config

    started = time.perf_counter()
    config = load_config(Path(config_path) if config_path else None)
    result = deploy_champion(config, slug, version, target)
    return {**result, "seconds": round(time.perf_counter() - started, 2)}


__all__ = ["DeployError", "deploy_champion", "deploy_task"]
