"""The registration steps: `register_persona_task` registers one persona's adapter as a challenger
and runs the promotion gate (`registry.registration.register_retrain`); `promote_task` promotes a
registered version by policy (`registry.champions.promote_version`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import task

from foundry.config import load_config
from foundry.logs import get_logger
from registry.champions import promote_version
from registry.registration import register_retrain
from registry.tracking import open_client

logger = get_logger(__name__)


@task(name="register-persona", task_run_name="register[{slug}]")
def register_persona_task(
    config_path: str | None,
    slug: str,
    data_rev: str,
    content_hash: str,
    eval_folder: str | None,
    eval_run_id: str = "",
) -> dict[str, Any]:
    """Register one persona's adapter as a challenger and run the promotion gate."""
    from prefect.runtime import flow_run

    config = load_config(Path(config_path) if config_path else None)
    started = time.perf_counter()
    result = register_retrain(
        config, [slug], data_rev=data_rev, content_hashes={slug: content_hash},
        eval_folder=Path(eval_folder) if eval_folder else None,
        flow_run_id=str(flow_run.id or ""), eval_run_id=eval_run_id,
    )  # fmt: skip
    return {**result[slug], "seconds": round(time.perf_counter() - started, 2)}


@task(name="promote-persona", task_run_name="promote[{slug}]")
def promote_task(
    config_path: str | None, slug: str, version: int | None = None, force: bool = False
) -> dict[str, Any]:
    """Promote `version` (default: the challenger) if the policy (or `force`) lets it through."""
    config = load_config(Path(config_path) if config_path else None)
    client = open_client(config)
    decision = promote_version(client, slug, version, config.registry.promotion, force=force)
    logger.info(
        "persona %s: %s (%s)", slug, "promoted" if decision.promote else "refused",
        "; ".join(decision.reasons) or "all checks passed",
    )  # fmt: skip
    return {
        "persona": slug,
        "version": version,
        "promoted": decision.promote,
        "forced": decision.forced,
        "reasons": decision.reasons,
    }
