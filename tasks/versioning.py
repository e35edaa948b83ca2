"""The data-versioning step: `version_data_task` runs `dvc add` (and push) on `data/` and returns
the data version (`foundry.data.versions.DataVersion`) for later stages to log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from foundry.config import load_config
from foundry.data.versions import version_data


@task(name="version-data")
def version_data_task(config_path: str | None) -> dict[str, Any]:
    """Prefect wrapper: version the data and return the `DataVersion` as a dict."""
    return version_data(load_config(Path(config_path) if config_path else None)).model_dump()
