"""The `deploy` flow: serve personas' champions (or given versions) on a target.

The retrain flow calls the same task after promotion when asked (`retrain(deploy=True)`).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from foundry.logs import prefect_logs
from tasks.deploy import deploy_task


@flow(name="deploy")
def deploy_flow(
    personas: list[str],
    config_path: str | None = None,
    target: str = "",
    version: int | None = None,
) -> dict[str, Any]:
    """Deploy each persona's champion (or `version`, with one persona) to `target`.

    Returns:
        persona -> what the target reports (served name, remote ids, smoke-test latency).
    """
    with prefect_logs():
        return {
            slug: deploy_task(config_path, slug, version if len(personas) == 1 else None, target)
            for slug in personas
        }
