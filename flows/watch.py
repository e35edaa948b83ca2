"""The `watch-data` flow: retrain when a persona's data no longer matches its champion's.

Scheduled every 30 minutes (prefect.yaml). It compares each persona's data hash with the one
tagged on its champion and starts `retrain` when any differs; `retrain`'s cache then redoes only
the personas that changed.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.retrain import retrain
from foundry.logs import get_logger, prefect_logs
from tasks.watch import data_changes_task

logger = get_logger(__name__)


@flow(name="watch-data")
def watch_data(config_path: str | None = None, deploy: bool = False) -> dict[str, Any]:
    """Start `retrain` when a persona's data changed since its champion was trained.

    Returns:
        `{"changed": [slugs], "personas": {slug: hashes}, "retrain": summary or None}`.
    """
    with prefect_logs():
        changes = data_changes_task(config_path)
        if not changes["changed"]:
            logger.info("every champion was trained on the current data; nothing to do")
            return {**changes, "retrain": None}
        logger.info("data changed for %s: starting retrain", ", ".join(changes["changed"]))
    summary = retrain(config_path=config_path, deploy=deploy)
    return {**changes, "retrain": summary}
