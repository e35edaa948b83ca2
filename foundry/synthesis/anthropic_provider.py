"""The Anthropic synthesis provider: Messages API online with bounded concurrency, or Batches.

`AnthropicProvider.generate` (the public entry point) runs `GenerationJob`s through Claude and
hands each result to the sink as soon as it exists. This module owns online mode: jobs start in
order, at most `concurrency` at once, each after its worst-case cost is reserved in the budget.
The request shape, retry policy and result accounting live in `anthropic_requests`; batch mode
and the record of submitted batches (which lets a killed run fetch what it already paid for
instead of submitting it again) live in `anthropic_batches`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import anthropic

from foundry.logs import get_logger
from foundry.synthesis.anthropic_batches import BatchRun, BatchState, check_custom_ids
from foundry.synthesis.anthropic_requests import PROVIDER_NAME, AnthropicRequests, JobFailed
from foundry.synthesis.config import SynthesisConfig
from foundry.synthesis.jobs import (
    Budget,
    GenerationJob,
    ProgressHook,
    ProviderAuthError,
    ResultSink,
    RunReport,
    estimate_cost_usd,
)

logger = get_logger(__name__)


class AnthropicProvider:
    """Generate with Claude through the Messages API (`online`) or Message Batches (`batch`).

    Args:
        config: The `synthesis` section: model, mode, concurrency, timeout, retries, prices.
        api_key: The Anthropic API key (never logged nor put in an error message).
        base_url: Another API host (a proxy, or a fake server in tests); None for Anthropic's.
        state_path: JSON file recording submitted batches, so a rerun (batch or online) fetches
            their results instead of paying for them again; None keeps no record.
        sleep: Blocking sleep between batch polls and batch retries (tests pass a recorder).
        async_sleep: Sleep between online retries.
    """

    name = PROVIDER_NAME

    def __init__(
        self,
        config: SynthesisConfig,
        api_key: str,
        base_url: str | None = None,
        state_path: Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not api_key:
            raise ProviderAuthError(
                "no Anthropic API key; set ANTHROPIC_API_KEY, or run with --provider offline"
            )
        self.config = config
        self.model = config.model
        self._state_path = state_path
        self._requests = AnthropicRequests(config, api_key, base_url, sleep, async_sleep)
        self._has_warned_temperature = False

    def generate(
        self,
        jobs: Sequence[GenerationJob],
        sink: ResultSink,
        budget: Budget,
        progress: ProgressHook | None = None,
    ) -> RunReport:
        """Run `jobs` within `budget`, calling `sink(job, result)` as each result arrives.

        Jobs already in a batch recorded at `state_path` are fetched from it, never sent again.
        A job starts only when its worst-case cost fits the budget; the first one that does not
        fit (once nothing in flight can free its reservation) and every later one are counted in
        `report.skipped_for_budget`. Transient errors (429, 5xx, connection, timeout) are
        retried up to `config.max_retries` times; other 4xx answers fail just that job
        (`report.failed[key]`). `progress(1)` is called after each job that ran, succeeded or
        failed; skipped jobs are not reported through it. `job.temperature` is not sent: API
        version 2026-10-21 rejects sampling parameters (a warning says so once).

        Args:
            jobs: The requests; in batch mode their keys must be unique custom ids.
            sink: Called once per successful job, on the calling thread, before others finish.
            budget: The run's dollar cap, shared with the caller.
            progress: Optional hook, called with 1 after each job that ran.

        Returns:
            Counts, failures with reasons, retries, usage and cost of this call.

        Raises:
            ProviderAuthError: The key was rejected (401/403); no further job is started, and
                results already handed to the sink stay saved.
            SynthesisError: A job key is not a valid batch custom id, or the batch record at
                `state_path` is unreadable.
        """
        report = RunReport()
        tick = progress or (lambda _count: None)
        is_batch = self.config.mode == "batch"
        if is_batch:
            check_custom_ids(jobs)
        logger.info("Anthropic %s run: %d jobs, model %s", self.config.mode, len(jobs), self.model)
        self._warn_if_temperature_set(jobs)
        batches = BatchRun(self._requests, BatchState(self._state_path), sink, budget, tick, report)
        pending = batches.resume_recorded(list(jobs))
        if is_batch:
            batches.submit_and_collect(pending)
        else:
            asyncio.run(self._generate_online(pending, sink, budget, tick, report))
        logger.info(
            "Anthropic run done: %d completed, %d failed, %d skipped for budget, %d retries, "
            "$%.4f",
            report.completed, len(report.failed), report.skipped_for_budget, report.retries,
            report.cost_usd,
        )  # fmt: skip
        return report

    def _warn_if_temperature_set(self, jobs: Sequence[GenerationJob]) -> None:
        """Say once that a non-default temperature is not sent (the API would reject it)."""
        if self._has_warned_temperature or all(job.temperature == 1.0 for job in jobs):
            return
        self._has_warned_temperature = True
        logger.warning(
            "`synthesis.temperature` is ignored by the anthropic provider: the Messages API "
            "(version 2026-10-21, anthropic SDK 2.x) takes no sampling parameters, so Claude "
            "samples at its default; set `synthesis.temperature: 1.0` to silence this warning"
        )

    # Online

    async def _generate_online(
        self,
        jobs: list[GenerationJob],
        sink: ResultSink,
        budget: Budget,
        tick: ProgressHook,
        report: RunReport,
    ) -> None:
        """Start jobs in order, at most `concurrency` at once, each after reserving its cost."""
        client = self._requests.async_client()
        running: set[asyncio.Task[None]] = set()
        errors: list[BaseException] = []
        async with client:
            for index, job in enumerate(jobs):
                estimate = estimate_cost_usd(job, self.config.prices)
                while not errors and (
                    len(running) >= self.config.concurrency or not budget.try_reserve(estimate)
                ):
                    if not running:  # nothing left to free a reservation: the budget is spent
                        report.skipped_for_budget = len(jobs) - index
                        break
                    await self._wait_one(running, errors)
                if errors or report.skipped_for_budget:
                    break
                run = self._run_online_job(client, job, estimate, sink, budget, tick, report)
                running.add(asyncio.create_task(run))
            while running:
                await self._wait_one(running, errors)
        if errors:
            raise errors[0]

    @staticmethod
    async def _wait_one(running: set[asyncio.Task[None]], errors: list[BaseException]) -> None:
        """Wait for any running job to end; keep its exception (auth, sink) to raise later."""
        done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            running.discard(task)
            if task.exception() is not None:
                errors.append(task.exception())  # type: ignore[arg-type]

    async def _run_online_job(
        self,
        client: anthropic.AsyncAnthropic,
        job: GenerationJob,
        estimate: float,
        sink: ResultSink,
        budget: Budget,
        tick: ProgressHook,
        report: RunReport,
    ) -> None:
        """One request: call with retries, settle the budget, hand the result to the sink."""
        started = time.monotonic()
        params = self._requests.params(job)
        try:
            message, retries = await self._requests.call_async(
                lambda: client.messages.create(**params), report
            )
        except JobFailed as failed:
            budget.settle(estimate, 0.0)
            report.failed[job.key] = failed.reason
            tick(1)
            return
        except BaseException:
            budget.settle(estimate, 0.0)
            raise
        result = self._requests.finish(job, message, started, retries, report)
        budget.settle(estimate, result.cost_usd)
        sink(job, result)
        tick(1)
