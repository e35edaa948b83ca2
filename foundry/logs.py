"""Loggers under `foundry`, and forwarding them into Prefect's run logs.

Library code logs with `get_logger(__name__)`; only the CLI prints. A flow body runs inside
`prefect_logs()`, so `foundry` lines reach the Prefect UI beside the task logs while it runs.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

ROOT = "foundry"


def get_logger(module: str) -> logging.Logger:
    """A logger under `foundry` for any module (`tasks.train` becomes `foundry.tasks.train`)."""
    return logging.getLogger(module if module.split(".")[0] == ROOT else f"{ROOT}.{module}")


@contextmanager
def prefect_logs(level: int = logging.INFO) -> Iterator[None]:
    """Send `foundry` records at `level` and above to Prefect's API handler while inside.

    This is what PREFECT_LOGGING_EXTRA_LOGGERS does, without having to set it before Prefect is
    imported, and without API warnings from `foundry` lines logged outside a flow run.
    """
    target = logging.getLogger(ROOT)
    added = [h for h in logging.getLogger("prefect.extra").handlers if h not in target.handlers]
    previous_level = target.level
    target.setLevel(level)
    for handler in added:
        target.addHandler(handler)
    try:
        yield
    finally:
        for handler in added:
            target.removeHandler(handler)
        target.setLevel(previous_level)


@contextmanager
def quiet_peft_warnings() -> Iterator[None]:
    """Hide two PEFT 0.21 warnings with nothing in our code to change, repeated per adapter: the
    FutureWarning from reading `is_gradient_checkpointing` (deprecated by transformers 5), and,
    at every checkpoint save of an adapter whose base names a hub model (SmolLM2), the failed hub
    lookup PEFT makes offline to learn whether the vocabulary was resized (it never is here: no
    adapter trains the embeddings).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
        warnings.filterwarnings("ignore", "Unable to fetch remote file", UserWarning)
        warnings.filterwarnings("ignore", "Could not find a config file in", UserWarning)
        yield
