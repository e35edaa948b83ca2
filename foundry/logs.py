"""Loggers under `foundry`, and forwarding them into Prefect's run logs.

Library code logs with `get_logger(__name__)`; only the CLI prints. Flows call
`forward_to_prefect()` first, so `foundry` lines reach the Prefect UI beside the task logs.
"""

from __future__ import annotations

import logging

ROOT = "foundry"


def get_logger(module: str) -> logging.Logger:
    """A logger under `foundry` for any module (`tasks.corpus` becomes `foundry.tasks.corpus`)."""
    return logging.getLogger(module if module.split(".")[0] == ROOT else f"{ROOT}.{module}")


def forward_to_prefect(level: int = logging.INFO) -> None:
    """Send `foundry` records to Prefect's API handler (what PREFECT_LOGGING_EXTRA_LOGGERS does,
    but without having to set it before Prefect is imported)."""
    extra = logging.getLogger("prefect.extra")
    target = logging.getLogger(ROOT)
    target.setLevel(level)
    for handler in extra.handlers:
        if handler not in target.handlers:
            target.addHandler(handler)
