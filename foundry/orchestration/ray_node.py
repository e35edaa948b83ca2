"""What runs on a Ray node for `foundry.orchestration.ray_executor`: one model step, with its
inputs unpacked from the shared URL (when there is one), its checkpoints mirrored, its log lines
sent to the flow, and what it wrote described (and uploaded) for the flow to check.

Public entry points: `step_on_node(spec)` (the Ray task) and `LogLines` (the actor the lines go
through: sent without waiting, since a task blocked in `ray.get` hands its CPU back to Ray, which
would then start another step on the same cores).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from foundry.logs import ROOT
from foundry.orchestration.checkpoint_mirror import mirrored_checkpoints, restore_checkpoints
from foundry.orchestration.shared_store import SharedStore, tree_manifest


class LogLines:
    """A Ray actor that holds remote steps' log lines until the flow's relay takes them; calls
    from one step run in the order sent."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, int, str]] = []

    def add(self, job: int, level: int, message: str) -> None:
        self.lines.append((job, level, message))

    def take(self) -> list[tuple[int, int, str]]:
        lines, self.lines = self.lines, []
        return lines

    def flushed(self) -> bool:
        """Runs after every line a caller sent before it (one caller's calls are in order)."""
        return True


def step_on_node(spec: dict[str, Any]) -> dict[str, Any]:
    """On a Ray node: unpack the inputs if they travel by URL, run the step with its checkpoints
    mirrored, and describe (and upload) what it wrote."""
    import ray
    import torch

    torch.set_num_threads(spec["threads"])
    with _relayed_logs(spec["log_lines"], spec["job"]), _environment(spec["env"]):
        store = SharedStore(spec["url"]) if spec["url"] else None
        if store is None:
            root, config_path = Path(spec["root"]), spec["config_path"]
        else:
            root = _scratch(spec)
            store.get_tree(spec["inputs"], root)
            config_path = str(root / spec["config_name"]) if spec["config_name"] else None
            if spec["checkpoints"]:
                restore_checkpoints(store, root, spec["checkpoints"])
        mirror = (
            mirrored_checkpoints(store, root, spec["checkpoints"])
            if store is not None and spec["checkpoints"]
            else contextlib.nullcontext()
        )
        cwd = os.getcwd()
        os.chdir(root)  # a config path given relative to the project resolves the same here
        try:
            with mirror:
                value = spec["fn"](config_path, *spec["args"])
        finally:
            os.chdir(cwd)
        outputs = tree_manifest(root, spec["outputs"])
        if store is not None:
            store.put_tree(root, spec["outputs"])
            if spec["checkpoints"]:
                store.drop_checkpoints(spec["checkpoints"])
    return {
        "value": value,
        "outputs": outputs,
        "folders": spec["outputs"],
        "root": str(root),
        "node": ray.get_runtime_context().get_node_id(),
    }


def _scratch(spec: dict[str, Any]) -> Path:
    """This node's copy of the project, one per (shared URL, project) pair."""
    base = Path(spec["scratch"]) if spec["scratch"] else Path(tempfile.gettempdir())
    key = hashlib.sha256(f"{spec['url']}\n{spec['root']}".encode()).hexdigest()[:16]
    folder = base / "foundry-ray" / key
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def _environment(overrides: dict[str, str]) -> Iterator[None]:
    """The flow's config overrides in this worker for one step (workers are reused)."""
    previous = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _QueueLines(logging.Handler):
    def __init__(self, log_lines: Any, job: int) -> None:
        super().__init__(logging.INFO)
        self.log_lines, self.job = log_lines, job

    def emit(self, record: logging.LogRecord) -> None:
        try:  # not awaited: see the module docstring
            self.log_lines.add.remote(self.job, record.levelno, record.getMessage())
        except Exception:  # noqa: BLE001 - a lost log line must not fail training
            pass


@contextmanager
def _relayed_logs(log_lines: Any, job: int) -> Iterator[None]:
    root = logging.getLogger(ROOT)
    handler = _QueueLines(log_lines, job)
    saved = (root.level, root.handlers[:], root.propagate)
    root.setLevel(logging.INFO)
    root.handlers[:] = [handler]
    root.propagate = False
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    try:
        yield
    finally:
        import ray

        with contextlib.suppress(Exception):  # every line sent is in before the step ends
            ray.get(log_lines.flushed.remote())
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        root.propagate = saved[2]
