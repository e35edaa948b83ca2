"""Continuous batching for the local server: concurrent requests answered in mixed-adapter batches.

Requests arrive from many HTTP handlers at once; one worker thread owns the model. It takes the
first waiting request, gathers whatever else arrives within `window_s` (up to `max_batch`), groups
them by decoding settings (rows of one `generate` call share them) and answers each group in one
forward loop, whatever adapter or persona vector each row names. Adapter loads and unloads take the
same lock, so a batch never sees a half-loaded adapter.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from foundry.generation import GenerationParams, GenerationRequest
from foundry.logs import get_logger

logger = get_logger(__name__)


@dataclass
class _Job:
    request: GenerationRequest
    params: GenerationParams
    future: Future = field(default_factory=Future)


@dataclass
class BatchStats:
    batches: int = 0
    rows: int = 0
    adapters_per_batch: list[int] = field(default_factory=list)


class BatchingEngine:
    """Answers `GenerationRequest`s from many threads with one model, batching across adapters."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch: int = 16, window_s: float = 0.01):
        self.model, self.tokenizer = model, tokenizer
        self.max_batch, self.window_s = max_batch, window_s
        self.lock = threading.Lock()  # held while generating and while adapters change
        self.stats = BatchStats()
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="batching-engine", daemon=True)
        self._thread.start()

    def submit(self, request: GenerationRequest, params: GenerationParams) -> Future:
        """Queue one request; the future resolves to its answer (or raises its error)."""
        job = _Job(request, params)
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, deadline = [first], time.monotonic() + self.window_s
            while len(jobs) < self.max_batch:
                try:
                    job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is None:
                    self._queue.put(None)  # stop after this batch
                    break
                jobs.append(job)
            for group in _by_params(jobs):
                self._answer(group)

    def _answer(self, jobs: list[_Job]) -> None:
        from foundry.generation import generate

        params = jobs[0].params.model_copy(update={"batch_size": len(jobs)})
        try:
            with self.lock:
                answers = generate(self.model, self.tokenizer, [j.request for j in jobs], params)
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
            for job in jobs:
                job.future.set_exception(exc)
            return
        self.stats.batches += 1
        self.stats.rows += len(jobs)
        self.stats.adapters_per_batch.append(len({j.request.adapter for j in jobs}))
        for job, answer in zip(jobs, answers, strict=True):
            job.future.set_result(answer)


def _by_params(jobs: list[_Job]) -> list[list[_Job]]:
    """Jobs grouped by decoding settings, in arrival order."""
    groups: dict[str, list[_Job]] = defaultdict(list)
    for job in jobs:
        groups[job.params.model_dump_json(exclude={"batch_size"})].append(job)
    return list(groups.values())
