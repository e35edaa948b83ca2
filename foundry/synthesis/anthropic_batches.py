"""Batch mode of the Anthropic provider, and the record of submitted batches that resumes a run.

`BatchRun.submit_and_collect` reserves each job at batch prices, submits batches of at most
`MAX_BATCH_REQUESTS` (recorded in a `BatchState` file at once), polls each until it ends and
hands its results to the sink. `BatchRun.resume_recorded` fetches the results of batches an
earlier (killed) run submitted, so their jobs are never paid for twice; `AnthropicProvider`
calls it in both modes. `check_custom_ids` checks job keys before a batch run.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anthropic

from foundry.atomic import write_text_atomic
from foundry.logs import get_logger
from foundry.synthesis.anthropic_requests import AnthropicRequests, JobFailed
from foundry.synthesis.jobs import (
    Budget,
    GenerationJob,
    ProgressHook,
    ResultSink,
    RunReport,
    SynthesisError,
    estimate_cost_usd,
)

logger = get_logger(__name__)

T = TypeVar("T")
MAX_BATCH_REQUESTS = 10_000  # the Message Batches API's limit per batch
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

# Job key -> (job, reserved estimate); None marks a job paid for by an earlier run.
Wanted = dict[str, tuple[GenerationJob, float | None]]


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check_custom_ids(jobs: Sequence[GenerationJob]) -> None:
    """Check that the job keys can be batch custom ids: each matches the API's pattern, once.

    Args:
        jobs: The requests of a batch run.

    Raises:
        SynthesisError: A key does not match `CUSTOM_ID`, or two jobs share a key.
    """
    bad = [job.key for job in jobs if not CUSTOM_ID.match(job.key)]
    if bad:
        raise SynthesisError(
            f"{len(bad)} job keys are not valid batch custom ids (first: {bad[0][:80]!r}); "
            f"keys must match {CUSTOM_ID.pattern}; use hex hashes or run with mode `online`"
        )
    if len({job.key for job in jobs}) != len(jobs):
        raise SynthesisError("job keys repeat; drop duplicate jobs before a batch run")


class BatchState:
    """Submitted batches and their job keys, in a JSON file written atomically after each change.

    Args:
        path: The JSON file; None keeps the record in memory only.

    Raises:
        SynthesisError: The file exists but cannot be read as a batch record.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.batches: dict[str, list[str]] = {}
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                self.batches = {entry["batch_id"]: list(entry["keys"]) for entry in data["batches"]}
            except (ValueError, KeyError, TypeError) as exc:
                raise SynthesisError(
                    f"the batch record {path} is unreadable ({exc}); fix it, or delete it to "
                    "resubmit its jobs (which pays for them again)"
                ) from exc

    def batches_with(self, keys: set[str]) -> list[tuple[str, list[str]]]:
        """Recorded batches holding any of `keys`, with just those keys."""
        found = [
            (bid, [k for k in batch_keys if k in keys]) for bid, batch_keys in self.batches.items()
        ]
        return [(bid, hits) for bid, hits in found if hits]

    def record(self, batch_id: str, keys: list[str]) -> None:
        """Record a submitted batch and its job keys."""
        self.batches[batch_id] = keys
        self._save()

    def forget(self, batch_id: str, keys: set[str]) -> None:
        """Drop `keys` from the batch's entry, and the entry once no key is left."""
        left = [key for key in self.batches.get(batch_id, []) if key not in keys]
        if left:
            self.batches[batch_id] = left
        else:
            self.batches.pop(batch_id, None)
        self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        entries = [{"batch_id": bid, "keys": keys} for bid, keys in self.batches.items()]
        write_text_atomic(self.path, json.dumps({"batches": entries}, indent=1) + "\n")


@dataclass
class BatchRun:
    """The batch work of one `generate` call; results go to `sink`, counts to `report`.

    Attributes:
        requests: Builds and sends requests with the provider's retry policy.
        state: The record of submitted batches.
        sink: Called once per successful job.
        budget: The run's dollar cap.
        tick: Called with 1 after each job that ran, succeeded or failed.
        report: The run's report.
    """

    requests: AnthropicRequests
    state: BatchState
    sink: ResultSink
    budget: Budget
    tick: ProgressHook
    report: RunReport

    def resume_recorded(self, jobs: list[GenerationJob]) -> list[GenerationJob]:
        """Sink the results of recorded batches holding any of `jobs`; return the other jobs.

        Their cost was paid by an earlier run: it is charged to the budget without a
        reservation. A job in a recorded batch is never submitted again, even if its batch
        cannot be fetched now (it is reported failed, and stays recorded for a later run).

        Args:
            jobs: The run's jobs.

        Returns:
            The jobs in no recorded batch, in their order.
        """
        by_key = {job.key: job for job in jobs}
        recorded = self.state.batches_with(set(by_key))
        if not recorded:
            return jobs
        with self.requests.sync_client() as client:
            for batch_id, keys in recorded:
                logger.info("Fetching recorded batch %s (%d jobs) instead of resubmitting",
                            batch_id, len(keys))  # fmt: skip
                wanted: Wanted = {key: (by_key[key], None) for key in keys}
                if self._collect(client, batch_id, wanted):
                    self.state.forget(batch_id, set(keys))
        taken = {key for _, keys in recorded for key in keys}
        return [job for job in jobs if job.key not in taken]

    def submit_and_collect(self, jobs: list[GenerationJob]) -> None:
        """Submit `jobs` in batches (recorded at once), then wait for and sink each batch.

        Args:
            jobs: Jobs in no recorded batch; their keys are valid, unique custom ids.
        """
        if not jobs:
            return
        with self.requests.sync_client() as client:
            submitted = self._submit(client, jobs)
            for batch_id, wanted in submitted:
                if self._collect(client, batch_id, wanted):
                    self.state.forget(batch_id, set(wanted))

    def _submit(
        self, client: anthropic.Anthropic, jobs: list[GenerationJob]
    ) -> list[tuple[str, Wanted]]:
        """Reserve each job at batch prices, then create batches of at most 10,000 requests."""
        chosen: list[tuple[GenerationJob, float]] = []
        for index, job in enumerate(jobs):
            estimate = estimate_cost_usd(job, self.requests.config.prices, is_batch=True)
            if not self.budget.try_reserve(estimate):
                self.report.skipped_for_budget = len(jobs) - index
                break
            chosen.append((job, estimate))
        submitted: list[tuple[str, Wanted]] = []
        for chunk in _chunks(chosen, MAX_BATCH_REQUESTS):
            batch_id = self._create(client, chunk)
            if batch_id is not None:
                submitted.append((batch_id, {job.key: (job, est) for job, est in chunk}))
        return submitted

    def _create(
        self, client: anthropic.Anthropic, chunk: list[tuple[GenerationJob, float]]
    ) -> str | None:
        """Create and record one batch; None when the API refused it (its jobs are failed)."""
        requests = [{"custom_id": job.key, "params": self.requests.params(job)} for job, _ in chunk]
        try:
            batch = self.requests.call_sync(
                lambda: client.messages.batches.create(requests=requests), self.report
            )
        except JobFailed as failed:
            for job, estimate in chunk:
                self.budget.settle(estimate, 0.0)
                self.report.failed[job.key] = f"batch not created: {failed.reason}"
            return None
        except BaseException:
            for _job, estimate in chunk:
                self.budget.settle(estimate, 0.0)
            raise
        self.state.record(batch.id, [job.key for job, _ in chunk])
        logger.info("Submitted batch %s with %d requests", batch.id, len(chunk))
        return batch.id

    def _collect(self, client: anthropic.Anthropic, batch_id: str, wanted: Wanted) -> bool:
        """Poll `batch_id` until it ends, then sink its results for the `wanted` keys.

        `wanted` maps key to (job, reserved estimate); None marks a batch paid for by an
        earlier run, charged without a reservation. Returns False when the batch could not be
        fetched (its jobs are reported failed and its record must be kept).
        """
        started = time.monotonic()
        handled: set[str] = set()
        try:
            self._wait_for_end(client, batch_id)
            lines = self.requests.call_sync(
                lambda: list(client.messages.batches.results(batch_id)), self.report
            )
        except JobFailed as failed:
            for key in wanted:
                self.report.failed[key] = f"batch {batch_id} could not be fetched: {failed.reason}"
            self._release_unhandled(wanted, handled)
            return False
        try:
            for line in lines:
                if line.custom_id in wanted and line.custom_id not in handled:
                    handled.add(line.custom_id)
                    job, estimate = wanted[line.custom_id]
                    self._take_line(job, estimate, line.result, started)
                    self.tick(1)
        finally:
            self._release_unhandled(wanted, handled)
        return True

    def _wait_for_end(self, client: anthropic.Anthropic, batch_id: str) -> None:
        def retrieve() -> Any:
            return self.requests.call_sync(
                lambda: client.messages.batches.retrieve(batch_id), self.report
            )

        batch = retrieve()
        while batch.processing_status != "ended":
            logger.debug("Batch %s is %s", batch_id, batch.processing_status)
            self.requests.sleep(self.requests.config.batch_poll_s)
            batch = retrieve()
        logger.info("Batch %s ended: %s", batch_id, batch.request_counts)

    def _take_line(
        self, job: GenerationJob, estimate: float | None, result: Any, started: float
    ) -> None:
        """Account for one batch result line and sink it when it succeeded."""
        if result.type != "succeeded":
            error = getattr(result, "error", None)
            detail = f": {error.error.type}: {error.error.message}" if error is not None else ""
            self.report.failed[job.key] = f"batch request {result.type}{detail}"
            if estimate is not None:
                self.budget.settle(estimate, 0.0)
            return
        generated = self.requests.finish(
            job, result.message, started, 0, self.report, is_batch=True
        )
        if estimate is None:
            self.budget.charge(generated.cost_usd)
        else:
            self.budget.settle(estimate, generated.cost_usd)
        self.sink(job, generated)

    def _release_unhandled(self, wanted: Wanted, handled: set[str]) -> None:
        """Free reservations of jobs with no result line (missing, or the run was interrupted)."""
        for key, (_job, estimate) in wanted.items():
            if key in handled:
                continue
            if estimate is not None:
                self.budget.settle(estimate, 0.0)
            self.report.failed.setdefault(key, "missing from the batch results")
