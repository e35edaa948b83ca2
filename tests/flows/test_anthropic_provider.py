"""AnthropicProvider through the real `anthropic` SDK against the fake API on 127.0.0.1.

Covers online requests (cost from the served usage, prompt caching, retries, auth, budget,
concurrency) and batch mode (half price, errors, chunking, resuming without paying twice).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from foundry.synthesis import anthropic_batches
from foundry.synthesis.anthropic_provider import AnthropicProvider
from foundry.synthesis.config import SynthesisConfig
from foundry.synthesis.jobs import (
    Budget,
    GenerationJob,
    GenerationResult,
    ProviderAuthError,
    SynthesisError,
    cost_usd,
    estimate_cost_usd,
)
from tests.fakes.anthropic_server import DROP_CONNECTION, FakeAnthropicServer, compose_reply

SYSTEM = (
    "You are Ada, a careful empiricist. You argue from evidence, concede points that the data "
    "supports, and never attack people. " * 6
)


class Killed(Exception):
    """Stands in for the process dying in the middle of a run."""


class Sink:
    """Collects what the provider hands over; optionally dies on the first result."""

    def __init__(self, die_on_first: bool = False) -> None:
        self.results: list[tuple[GenerationJob, GenerationResult]] = []
        self.die_on_first = die_on_first

    def __call__(self, job: GenerationJob, result: GenerationResult) -> None:
        if self.die_on_first:
            self.die_on_first = False
            raise Killed
        self.results.append((job, result))

    @property
    def keys(self) -> list[str]:
        return [job.key for job, _ in self.results]


def make_jobs(count: int, system: str = SYSTEM, max_tokens: int = 200) -> list[GenerationJob]:
    jobs = []
    for index in range(count):
        user = f"Write a challenge on topic {index}: should cities ban cars downtown?\nBe brief."
        key = hashlib.sha256(f"{system}|{user}|{max_tokens}".encode()).hexdigest()
        jobs.append(GenerationJob(key, system, user, max_tokens, 1.0, "ada"))
    return jobs


def make_config(**overrides: object) -> SynthesisConfig:
    settings: dict[str, object] = {
        "model": "claude-test",
        "concurrency": 4,
        "timeout_s": 10.0,
        "max_retries": 3,
        "backoff_s": 0.01,
        "max_backoff_s": 0.05,
        "batch_poll_s": 0.01,
    }
    return SynthesisConfig(**{**settings, **overrides})


def make_provider(
    server: FakeAnthropicServer, state_path: Path | None = None, **overrides: object
) -> AnthropicProvider:
    config = make_config(**overrides)
    return AnthropicProvider(config, server.api_key, server.base_url, state_path=state_path)


# Online


def test_online_results_are_sunk_and_cost_equals_served_usage() -> None:
    jobs = make_jobs(6)
    sink, ticks = Sink(), []
    budget = Budget(5.0)
    with FakeAnthropicServer() as server:
        provider = make_provider(server)
        report = provider.generate(jobs, sink, budget, progress=ticks.append)
    assert sorted(sink.keys) == sorted(job.key for job in jobs)
    assert report.completed == 6 and not report.failed and report.retries == 0
    assert sum(ticks) == 6
    for job, result in sink.results:
        assert result.text == compose_reply(job.system, job.user, job.max_tokens)[0]
        assert (result.provider, result.model, result.mode) == (
            "anthropic",
            "claude-test",
            "online",
        )
    served_cost = cost_usd(server.served_usage["online"], provider.config.prices)
    assert report.usage == server.served_usage["online"]
    assert report.cost_usd == pytest.approx(served_cost)
    assert sum(result.cost_usd for _, result in sink.results) == pytest.approx(served_cost)
    assert budget.spent_usd == pytest.approx(served_cost) and budget.reserved_usd == 0


def test_second_call_on_the_same_system_prompt_reads_the_cache() -> None:
    sink = Sink()
    with FakeAnthropicServer() as server:
        make_provider(server, concurrency=1).generate(make_jobs(2), sink, Budget(1.0))
    first, second = (result.usage for _, result in sink.results)
    assert first.cache_creation_input_tokens == len(SYSTEM) // 4
    assert first.cache_read_input_tokens == 0
    assert second.cache_creation_input_tokens == 0
    assert second.cache_read_input_tokens == len(SYSTEM) // 4


@pytest.mark.parametrize("status", [429, 529, 500, DROP_CONNECTION])
def test_transient_errors_are_retried_until_success(status: int) -> None:
    sink = Sink()
    with FakeAnthropicServer() as server:
        server.fail_next(status, count=2)
        provider = make_provider(server)
        report = provider.generate(make_jobs(1), sink, Budget(1.0))
    assert report.completed == 1 and report.retries == 2 and not report.failed
    assert sink.results[0][1].retries == 2
    assert server.requests == 3
    assert report.cost_usd == pytest.approx(
        cost_usd(server.served_usage["online"], provider.config.prices)
    )


def test_retry_after_header_sets_the_delay_capped_at_max_backoff() -> None:
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)

    with FakeAnthropicServer() as server:
        server.fail_next(429, retry_after=0.03)
        server.fail_next(429, retry_after=100)
        config = make_config(max_backoff_s=0.05)
        provider = AnthropicProvider(config, server.api_key, server.base_url, async_sleep=record)
        report = provider.generate(make_jobs(1), Sink(), Budget(1.0))
    assert report.completed == 1
    assert delays == [pytest.approx(0.03), pytest.approx(0.05)]


def test_exhausted_retries_fail_the_job_and_logs_keep_out_key_and_prompt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    jobs = make_jobs(2)
    sink = Sink()
    budget = Budget(1.0)
    with FakeAnthropicServer() as server, caplog.at_level(logging.INFO, logger="foundry"):
        server.fail_next(529, count=3)
        provider = make_provider(server, concurrency=1, max_retries=2)
        report = provider.generate(jobs, sink, budget)
    assert list(report.failed) == [jobs[0].key]
    assert "529 overloaded_error" in report.failed[jobs[0].key]
    assert sink.keys == [jobs[1].key] and report.completed == 1 and report.retries == 2
    assert server.requests == 4
    assert budget.reserved_usd == 0 and budget.spent_usd == pytest.approx(report.cost_usd)
    retry_lines = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retry_lines) == 2 and all("529" in line for line in retry_lines)
    logged = caplog.text
    assert jobs[0].key not in logged and jobs[0].user not in logged
    assert server.api_key not in logged


def test_invalid_request_fails_that_job_with_the_server_message_without_retry() -> None:
    good, bad = make_jobs(2)
    bad = GenerationJob(bad.key, bad.system, bad.user, 0, 1.0, "ada")  # max_tokens 0: a 400
    sink = Sink()
    with FakeAnthropicServer() as server:
        report = make_provider(server).generate([good, bad], sink, Budget(1.0))
    assert sink.keys == [good.key]
    assert report.failed[bad.key].startswith("400 invalid_request_error: max_tokens")
    assert report.retries == 0 and server.requests == 2


def test_rejected_key_raises_once_without_retry_and_without_the_key() -> None:
    wrong_key = "fake-wrong-secret-0000"
    sink = Sink()
    with FakeAnthropicServer() as server:
        provider = AnthropicProvider(make_config(concurrency=1), wrong_key, server.base_url)
        with pytest.raises(ProviderAuthError) as raised:
            provider.generate(make_jobs(5), sink, Budget(1.0))
    assert server.requests == 1
    assert "401" in str(raised.value) and "--provider offline" in str(raised.value)
    assert wrong_key not in str(raised.value)
    assert sink.results == []


def test_key_revoked_mid_run_stops_new_jobs_and_keeps_sunk_results() -> None:
    jobs = make_jobs(5)
    with FakeAnthropicServer() as server:

        def sink(job: GenerationJob, result: GenerationResult) -> None:
            kept.append(job.key)
            server.api_key = "fake-rotated-key"  # every later request is rejected

        kept: list[str] = []
        with pytest.raises(ProviderAuthError):
            make_provider(server, concurrency=1).generate(jobs, sink, Budget(1.0))
    assert kept == [jobs[0].key]
    assert server.requests == 2


def test_budget_stops_starting_jobs_before_the_cap() -> None:
    jobs = make_jobs(12)
    prices = make_config().prices
    limit = 2.5 * estimate_cost_usd(jobs[0], prices)
    budget, sink = Budget(limit), Sink()
    with FakeAnthropicServer() as server:
        report = make_provider(server, concurrency=2).generate(jobs, sink, budget)
    assert report.completed >= 2 and report.skipped_for_budget > 0
    assert report.completed + report.skipped_for_budget == len(jobs)
    assert server.requests == report.completed
    assert sorted(sink.keys) == sorted(job.key for job in jobs[: report.completed])
    assert budget.spent_usd <= limit and budget.reserved_usd == 0
    assert budget.spent_usd == pytest.approx(report.cost_usd)


def test_requests_overlap_up_to_the_concurrency_limit() -> None:
    with FakeAnthropicServer(latency_s=0.2) as server:
        report = make_provider(server, concurrency=4).generate(make_jobs(8), Sink(), Budget(1.0))
    assert report.completed == 8
    assert 1 < server.max_in_flight <= 4


# Batch


def test_batch_mode_costs_half_of_online_for_the_same_usage() -> None:
    jobs = make_jobs(5)
    online_sink, batch_sink = Sink(), Sink()
    with FakeAnthropicServer() as online_server:
        online = make_provider(online_server).generate(jobs, online_sink, Budget(1.0))
    with FakeAnthropicServer() as server:
        server.fail_next(529, endpoint="batches")
        batch = make_provider(server, mode="batch").generate(jobs, batch_sink, Budget(1.0))
        prices = make_config().prices
        assert server.requests == 0 and server.batch_creates == 1
        assert batch.completed == 5 and batch.retries == 1
        assert server.served_usage["batch"] == online_server.served_usage["online"]
        assert batch.cost_usd == pytest.approx(cost_usd(server.served_usage["batch"], prices, True))
    assert batch.cost_usd == pytest.approx(online.cost_usd / 2)
    assert {r.mode for _, r in batch_sink.results} == {"batch"}
    online_texts = {job.key: result.text for job, result in online_sink.results}
    assert {job.key: result.text for job, result in batch_sink.results} == online_texts


def test_batch_errors_are_reported_and_release_their_reservations() -> None:
    jobs = make_jobs(4)
    budget, sink = Budget(1.0), Sink()
    with FakeAnthropicServer() as server:
        server.batch_outcomes = {jobs[0].key: "errored", jobs[1].key: "expired"}
        report = make_provider(server, mode="batch").generate(jobs, sink, budget)
    assert sorted(sink.keys) == sorted(job.key for job in jobs[2:])
    assert report.failed[jobs[0].key].startswith("batch request errored: api_error")
    assert report.failed[jobs[1].key] == "batch request expired"
    assert budget.reserved_usd == 0 and budget.spent_usd == pytest.approx(report.cost_usd)


def test_batch_budget_and_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anthropic_batches, "MAX_BATCH_REQUESTS", 2)
    jobs = make_jobs(8)
    prices = make_config().prices
    budget = Budget(5.5 * estimate_cost_usd(jobs[0], prices, is_batch=True))
    sink = Sink()
    with FakeAnthropicServer() as server:
        report = make_provider(server, mode="batch").generate(jobs, sink, budget)
    assert report.completed == 5 and report.skipped_for_budget == 3
    assert sorted(sink.keys) == sorted(job.key for job in jobs[:5])
    assert server.batch_creates == 3  # 2 + 2 + 1
    assert budget.spent_usd <= budget.limit_usd and budget.reserved_usd == 0


def test_batch_rejects_keys_that_are_not_custom_ids() -> None:
    job = make_jobs(1)[0]
    bad = GenerationJob("not a custom id!", job.system, job.user, 100, 1.0, "ada")
    with FakeAnthropicServer() as server:
        with pytest.raises(SynthesisError, match="custom ids"):
            make_provider(server, mode="batch").generate([bad], Sink(), Budget(1.0))
    assert server.batch_creates == 0


def test_batch_resume_after_a_kill_fetches_instead_of_paying_twice(tmp_path: Path) -> None:
    jobs = make_jobs(6)
    state_path = tmp_path / "batches.json"
    sink = Sink(die_on_first=True)
    with FakeAnthropicServer() as server:
        with pytest.raises(Killed):
            make_provider(server, state_path, mode="batch").generate(jobs, sink, Budget(1.0))
        recorded = json.loads(state_path.read_text())["batches"]
        assert [sorted(entry["keys"]) for entry in recorded] == [sorted(j.key for j in jobs)]

        budget = Budget(1.0)
        provider = make_provider(server, state_path, mode="batch")
        report = provider.generate(jobs, sink, budget)
        served = server.served_usage["batch"]
        assert server.batch_creates == 1
        assert len(server.served_hashes()) == len(jobs)
    assert sorted(sink.keys) == sorted(job.key for job in jobs)
    assert report.completed == len(jobs) and report.skipped_for_budget == 0
    assert report.cost_usd == pytest.approx(cost_usd(served, provider.config.prices, True))
    assert budget.spent_usd == pytest.approx(report.cost_usd) and budget.reserved_usd == 0
    assert json.loads(state_path.read_text())["batches"] == []


def test_online_run_fetches_recorded_batch_jobs_instead_of_resubmitting(tmp_path: Path) -> None:
    jobs = make_jobs(4)
    state_path = tmp_path / "batches.json"
    with FakeAnthropicServer() as server:
        with pytest.raises(Killed):
            make_provider(server, state_path, mode="batch").generate(
                jobs[:2], Sink(die_on_first=True), Budget(1.0)
            )
        sink = Sink()
        report = make_provider(server, state_path).generate(jobs, sink, Budget(1.0))
        assert server.requests == 2 and server.batch_creates == 1
    assert sorted(sink.keys) == sorted(job.key for job in jobs)
    assert {job.key: result.mode for job, result in sink.results} == {
        jobs[0].key: "batch",
        jobs[1].key: "batch",
        jobs[2].key: "online",
        jobs[3].key: "online",
    }
    assert report.completed == 4


def test_temperature_is_not_sent_and_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    jobs = [GenerationJob(j.key, j.system, j.user, 100, 0.7, "ada") for j in make_jobs(2)]
    with FakeAnthropicServer() as server, caplog.at_level(logging.WARNING, logger="foundry"):
        provider = make_provider(server)
        first = provider.generate(jobs[:1], Sink(), Budget(1.0))
        second = provider.generate(jobs[1:], Sink(), Budget(1.0))
    # The fake API answers 400 to `temperature`, as API version 2026-10-21 does.
    assert first.completed == second.completed == 1
    warnings = [r for r in caplog.records if "synthesis.temperature" in r.getMessage()]
    assert len(warnings) == 1
