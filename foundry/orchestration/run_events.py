"""Step events of a running flow, for a live display in the same process (`foundry run`).

The flow calls `emit(persona, step, status)` as its steps start and finish; `listening(fn)`
registers a callback for the length of a block. Without listeners (a worker running a scheduled
deployment) an event costs nothing. The Prefect UI remains the record; this is only a view.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

STEPS = ("synthesize", "pairs", "train", "vectors", "merge", "evaluate", "register", "deploy")


@dataclass(frozen=True)
class StepEvent:
    persona: str  # "" for steps shared by every persona (evaluation)
    step: str
    status: str  # running | done | cached | failed | skipped
    seconds: float | None = None
    detail: str = ""


Listener = Callable[[StepEvent], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


def emit(
    persona: str, step: str, status: str, seconds: float | None = None, detail: str = ""
) -> None:
    event = StepEvent(persona, step, status, seconds, detail)
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(event)
        except Exception:  # noqa: BLE001 - a display must never break the run
            pass


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)
