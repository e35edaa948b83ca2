"""The merge step of the `retrain` flow: `merge_persona_task` re-merges a derived persona from its
sources' current adapters (`foundry.orchestration.derived.merge_derived`, what `foundry merge`
does after writing the contract). The flow keys it by the sources' adapter digests and the
derived persona's contract (`foundry.orchestration.derived.merge_key`), so it runs again only
when a source's adapter or the blend changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from foundry.config import load_config
from foundry.orchestration.derived import merge_derived


@task(name="merge-persona", task_run_name="merge[{slug}]")
def merge_persona_task(config_path: str | None, slug: str, data_rev: str = "") -> dict[str, Any]:
    """Merge derived persona `slug`'s adapters (and vector) from its sources."""
    config = load_config(Path(config_path) if config_path else None)
    return merge_derived(config, slug, data_rev=data_rev)
