"""The `promote` flow: promote a persona's registered version by the policy (or by force).

For the cases the retrain flow does not cover: a version refused earlier and accepted after a
look at its report, or a challenger promoted once the policy changed.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from foundry.logs import prefect_logs
from tasks.register import promote_task


@flow(name="promote")
def promote_flow(
    persona: str, version: int | None = None, config_path: str | None = None, force: bool = False
) -> dict[str, Any]:
    """Decide on `version` (default: the challenger) against the champion; apply the decision.

    Returns:
        `{"persona", "version", "promoted", "reasons"}`.
    """
    with prefect_logs():
        return promote_task(config_path, persona, version, force)
