"""Where the retrain flow's model steps run: the local process pool, or Ray
(`orchestration.executor`).

Public entry points: `model_steps(config)` (open for a run: nothing for `local`, a Ray session for
`ray`) and `run_model_step(step, fn, config_path, *args, ...)`, which the Prefect tasks of train,
vectors and evaluation call. Outside `model_steps`, or with `local`, the step runs as before: in
the flow's training pool when one is open (`foundry.training.pool`), else in this process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from foundry.config import FoundryConfig
from foundry.training.pool import run_in_pool

_sessions: dict[str, Any] = {}


@contextmanager
def model_steps(config: FoundryConfig) -> Iterator[None]:
    """Open the run's executor: a Ray session when `orchestration.executor` is `ray`."""
    if config.orchestration.executor != "ray":
        yield
        return
    from foundry.orchestration.ray_executor import ray_session

    with ray_session(config) as session:
        _sessions["ray"] = session
        try:
            yield
        finally:
            _sessions.pop("ray", None)


def on_ray() -> bool:
    """Whether model steps go to Ray in this run."""
    return "ray" in _sessions


def run_model_step(
    step: str,
    fn: Callable[..., Any],
    config_path: str | None,
    *args: Any,
    log: Any = None,
    timeout: float | None = None,
    threads: int = 0,
    outputs: Sequence[Path] = (),
    checkpoints: Path | None = None,
) -> Any:
    """`fn(config_path, *args)` where this run puts `step` (`train`, `vectors`, `evaluate`).

    On Ray, `outputs` (the folders the step writes) are checked and, with `paths.shared_url`,
    fetched; `checkpoints` (where it checkpoints) is mirrored so a retry resumes."""
    session = _sessions.get("ray")
    if session is None:
        return run_in_pool(fn, config_path, *args, log=log, threads=threads, timeout=timeout)
    return session.run(
        step, fn, config_path, *args, log=log, timeout=timeout, outputs=outputs,
        checkpoints=checkpoints,
    )  # fmt: skip
