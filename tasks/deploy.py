"""The deploy step: `deploy_task` deploys one persona's registered version (default: its champion)
to a serving target (`deploy.rollout.deploy_personas`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from deploy import DeployError
from deploy.rollout import deploy_personas
from foundry.config import load_config


@task(name="deploy-persona", task_run_name="deploy[{slug}]")
def deploy_task(
    config_path: str | None, slug: str, version: int | None = None, target: str = ""
) -> dict[str, Any]:
    """Deploy one persona's version (default: champion) to the target (default: config)."""
    config = load_config(Path(config_path) if config_path else None)
    outcome = deploy_personas(config, [slug], target, version)[slug]
    if isinstance(outcome, DeployError):
        raise outcome
    return outcome.as_dict()
