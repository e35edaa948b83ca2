"""Training in worker processes, so personas train in parallel (threads would share the GIL).

`training_pool(workers, threads)` opens a pool of spawned processes for the length of a flow run;
`run_in_pool(fn, *args)` runs a picklable function in it from a task's thread and waits, relaying
the worker's `foundry` log lines to the caller's logger as they come, so they reach the Prefect
task run's logs (and the UI) while training goes on. Outside `training_pool` the function runs in
the calling process. Processes start on the first job, so a run with nothing to do starts none;
the retrain flow also builds the base and the pairs' negatives in the pool, which keeps the
models out of the flow's own process while the workers train.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

from foundry.logs import ROOT, get_logger

logger = get_logger(__name__)

_state: dict[str, Any] = {}
_job_ids = itertools.count(1)
_worker_job: dict[str, int] = {"id": 0, "threads": 1}


def plan_workers(configured: int, jobs: int, threads: int = 0) -> tuple[int, int]:
    """(processes, torch threads each) for `jobs` trainings on this machine's cores."""
    cores = os.cpu_count() or 1
    workers = max(1, min(configured or cores, jobs or 1))
    return workers, threads or max(1, cores // workers)


@contextmanager
def training_pool(workers: int, threads: int) -> Iterator[None]:
    """A pool of `workers` spawned processes with `threads` torch threads each."""
    context = multiprocessing.get_context("spawn")
    lines = context.Queue()
    executor = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(lines, threads)
    )
    inboxes: dict[int, queue.Queue] = {}
    relay = threading.Thread(target=_relay, args=(lines, inboxes), daemon=True)
    relay.start()
    _state.update(executor=executor, inboxes=inboxes)
    logger.info("training pool: %d process(es) x %d thread(s)", workers, threads)
    try:
        yield
    finally:
        overdue = _state.get("overdue", False)
        _state.clear()
        if overdue:  # a job past its limit is still running: stop the processes
            for process in list(getattr(executor, "_processes", {}).values()):
                process.terminate()
        executor.shutdown(wait=not overdue, cancel_futures=True)
        lines.put(None)
        relay.join(timeout=5)
        lines.close()


def run_in_pool(
    fn: Callable[..., Any],
    *args: Any,
    log: Any = None,
    threads: int = 0,
    timeout: float | None = None,
) -> Any:
    """`fn(*args)` in the pool (or here, outside one), relaying its log lines to `log`.

    `threads` sets the worker's torch threads for this job (0: the pool's setting): a job that
    runs alone, such as building the base model, may use every core. Past `timeout` seconds the
    job fails with `TimeoutError`, and its process is stopped when the pool closes (a thread
    cannot be interrupted, a process can)."""
    executor: ProcessPoolExecutor | None = _state.get("executor")
    if executor is None:
        return fn(*args)
    log = log or logger
    job = next(_job_ids)
    inbox: queue.Queue = queue.Queue()
    _state["inboxes"][job] = inbox
    deadline = time.monotonic() + timeout if timeout else None
    try:
        future: Future = executor.submit(_run_job, job, threads, fn, *args)
        while True:
            if deadline is not None and time.monotonic() > deadline and not future.done():
                _state["overdue"] = True
                raise TimeoutError(
                    f"{getattr(fn, '__name__', 'the job')} ran past {timeout:.0f} s; its process "
                    "is stopped (raise the limit in `orchestration` if the work needs longer)"
                )
            try:
                level, message = inbox.get(timeout=0.5)
                log.log(level, "%s", message)
            except queue.Empty:
                if future.done():
                    break
        while not inbox.empty():
            level, message = inbox.get_nowait()
            log.log(level, "%s", message)
        return future.result()
    finally:
        _state.get("inboxes", {}).pop(job, None)


def _relay(lines: Any, inboxes: dict[int, queue.Queue]) -> None:
    """Hand each worker line to the inbox of the job that wrote it."""
    while True:
        try:
            item = lines.get()
        except (EOFError, OSError):
            return
        if item is None:
            return
        job, level, message = item
        inbox = inboxes.get(job)
        if inbox is not None:
            inbox.put((level, message))


class _QueueLines(logging.Handler):
    def __init__(self, lines: Any) -> None:
        super().__init__(logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.put((_worker_job["id"], record.levelno, record.getMessage()))
        except Exception:  # noqa: BLE001 - a lost log line must not fail training
            pass


def _init_worker(lines: Any, threads: int) -> None:
    """In each worker: torch threads, and `foundry` log lines sent to the parent."""
    import torch

    torch.set_num_threads(threads)
    _worker_job["threads"] = threads
    root = logging.getLogger(ROOT)
    root.setLevel(logging.INFO)
    root.handlers[:] = [_QueueLines(lines)]
    root.propagate = False
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


def _run_job(job: int, threads: int, fn: Callable[..., Any], *args: Any) -> Any:
    import torch

    _worker_job["id"] = job
    torch.set_num_threads(threads or _worker_job["threads"])
    return fn(*args)
