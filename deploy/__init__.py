"""Serving targets: vLLM, Together, Fireworks and a local OpenAI-compatible server.

`TARGETS` maps a target name to the module that serves it; each module provides
`make_target(config) -> deploy.release.Target`, and `deploy.release.deploy_version` runs the one
deploy procedure (checks, upload by content hash, smoke test, registry tags, rollback) on it.
Flows and the CLI reach a target only through `get_target`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from foundry.errors import FoundryError

if TYPE_CHECKING:
    from deploy.target import Target
    from foundry.config import FoundryConfig

TARGET_NAMES = ("local", "vllm", "together", "fireworks")
TARGETS: dict[str, str] = {
    "local": "deploy.local",
    "vllm": "deploy.vllm",
    "together": "deploy.together",
    "fireworks": "deploy.fireworks",
}


class DeployError(FoundryError):
    """A deployment cannot run or failed; the message names the target and what to fix."""


def check_target(name: str) -> None:
    """Raise `DeployError` unless `name` is a target this installation can deploy to."""
    if name not in TARGET_NAMES:
        raise DeployError(f"unknown deployment target {name!r}; use {', '.join(TARGET_NAMES)}")


def get_target(name: str, config: FoundryConfig) -> Target:
    """A client for target `name`, configured by `config.deploy.<name>` and the environment.

    Raises:
        DeployError: unknown target, or its credentials or settings are missing.
    """
    check_target(name)
    return importlib.import_module(TARGETS[name]).make_target(config)
