"""The plan step of the `retrain` flow: `plan_task` checks that the run can go through and keys
its steps (`foundry.orchestration.plan.plan_retrain`), before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from foundry.config import load_config, load_settings
from foundry.logs import get_logger
from foundry.orchestration.plan import plan_retrain

logger = get_logger(__name__)


@task(name="plan")
def plan_task(
    config_path: str | None, personas: list[str] | None, provider: str, deploy: bool
) -> dict[str, Any]:
    """Check the run can go through and key its steps (never cached: it is the check)."""
    config = load_config(Path(config_path) if config_path else None)
    plan = plan_retrain(
        config, load_settings(), personas=personas, provider=provider, deploy=deploy
    )
    for slug, why in plan.not_trainable.items():
        logger.warning("persona %s is left out: %s", slug, why)
    for slug, sources in plan.derived.items():
        logger.info("persona %s is derived from %s: merged, not trained", slug, ", ".join(sources))
    logger.info(
        "plan: %d persona(s) %s, provider %s, code %s",
        len(plan.personas), ", ".join(plan.personas), plan.provider, plan.code_version,
    )  # fmt: skip
    return plan.model_dump(mode="json")
