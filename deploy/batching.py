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
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from foundry.logs import get_logger
from foundry.training.generation import GenerationParams, GenerationRequest

logger = get_logger(__name__)


TextSink = Callable[[str], None]


@dataclass
class _Job:
    request: GenerationRequest
    params: GenerationParams
    on_text: TextSink | None = None
    future: Future = field(default_factory=Future)


class RowStreams:
    """A transformers streamer for one mixed batch: each row's newly decoded text goes to that
    row's sink as the tokens come, so a streamed answer arrives token by token."""

    def __init__(self, tokenizer: Any, sinks: list[TextSink | None]) -> None:
        self.tokenizer, self.sinks = tokenizer, sinks
        self.ids: list[list[int]] = [[] for _ in sinks]
        self.sent = [""] * len(sinks)
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # the first call carries the prompts
            self.prompt_seen = True
            return
        for row, token in enumerate(value.reshape(len(self.sinks), -1)[:, -1].tolist()):
            if self.sinks[row] is not None:
                self.ids[row].append(int(token))
                # A trailing U+FFFD may be a character whose other bytes are still to come
                # (an incomplete tail decodes to one U+FFFD): hold it back one step.
                text = self._text(row)
                self._send(row, text[:-1] if text.endswith("\ufffd") else text)

    def end(self) -> None:
        """Send what was held back (a character the model never completed)."""
        for row in range(len(self.sinks)):
            if self.sinks[row] is not None:
                self._send(row, self._text(row))

    def _text(self, row: int) -> str:
        return self.tokenizer.decode(self.ids[row], skip_special_tokens=True).lstrip()

    def _send(self, row: int, text: str) -> None:
        sink = self.sinks[row]
        if sink is None or len(text) <= len(self.sent[row]):
            return
        try:
            sink(text[len(self.sent[row]) :])
        except Exception:  # noqa: BLE001 - a gone client must not stop the batch
            logger.debug("row %d's text sink failed; it gets no more text", row)
            self.sinks[row] = None
        self.sent[row] = text


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

    def submit(
        self,
        request: GenerationRequest,
        params: GenerationParams,
        on_text: TextSink | None = None,
    ) -> Future:
        """Queue one request; the future resolves to its answer (or raises its error), and
        `on_text` (from the worker thread) gets the answer's text piece by piece before that."""
        job = _Job(request, params, on_text)
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
        from foundry.training.generation import generate

        params = jobs[0].params.model_copy(update={"batch_size": len(jobs)})
        sinks = [job.on_text for job in jobs]
        streams = RowStreams(self.tokenizer, sinks) if any(sinks) else None
        try:
            with self.lock:
                answers = generate(
                    self.model, self.tokenizer, [j.request for j in jobs], params, streams
                )
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
