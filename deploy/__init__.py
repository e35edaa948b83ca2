"""Serving targets: vLLM, Together, Fireworks and a local OpenAI-compatible server.

`TARGETS` maps a target name to the module that serves it; the flows reach a target only through
`get_target`, so adding one is adding a module and a line here. No target is built yet (that is
the deployment issue), so `check_target` refuses every name with a message saying so, and a
`retrain --deploy` fails before it starts instead of after training.
"""

from __future__ import annotations

import importlib
from typing import Any

from foundry.errors import FoundryError

TARGET_NAMES = ("local", "vllm", "together", "fireworks")
TARGETS: dict[str, str] = {}  # name -> module path, e.g. "local": "deploy.local"


class DeployError(FoundryError):
    """A deployment cannot run or failed; the message names the target and what to fix."""


def check_target(name: str) -> None:
    """Raise `DeployError` unless `name` is a target this installation can deploy to."""
    if name not in TARGET_NAMES:
        raise DeployError(f"unknown deployment target {name!r}; use {', '.join(TARGET_NAMES)}")
    if name not in TARGETS:
        built = ", ".join(TARGETS) or "none yet"
        raise DeployError(
            f"deployment target {name!r} is not built in this version (built: {built}); run "
            "without --deploy, and serve the registered champions yourself meanwhile "
            "(`foundry registry show PERSONA` gives each champion's models:/ URI)"
        )


def get_target(name: str) -> Any:
    """The module serving `name` (it provides `deploy(config, slug, version) -> dict`)."""
    check_target(name)
    return importlib.import_module(TARGETS[name])
