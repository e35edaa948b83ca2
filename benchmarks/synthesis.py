"""Anthropic provider throughput and batch savings, against the fake API on 127.0.0.1.

The fake server (`tests/fakes/anthropic_server.py`) answers every `POST /v1/messages` after
`--latency` seconds. The same `--jobs` requests (4 personas, each with its own system prompt)
run three ways through `AnthropicProvider` and the real `anthropic` SDK, each on a fresh server
so prompt caching starts cold every time:

  (a) online, one request at a time (concurrency 1);
  (b) online, `--concurrency` requests in flight;
  (c) batch mode (Message Batches API, polled every 10 ms).

It prints jobs/s for (a) and (b) and the speed-up (target: at least 10x at 16 in flight), then
the dollar cost of (c) against (b) for the same served usage (target: 0.5, the batch discount),
and checks each run's reported cost against the usage the server says it served.

Run: `.venv/bin/python benchmarks/synthesis.py [--jobs 64] [--latency 0.2] [--concurrency 16]`
(about 15 s with the defaults).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.fakes

from foundry.synthesis.anthropic_provider import AnthropicProvider  # noqa: E402
from foundry.synthesis.config import SynthesisConfig  # noqa: E402
from foundry.synthesis.jobs import (  # noqa: E402
    Budget,
    GenerationJob,
    GenerationResult,
    RunReport,
    cost_usd,
)
from tests.fakes.anthropic_server import FakeAnthropicServer  # noqa: E402

PERSONAS = {
    "ada": "You are Ada, a careful empiricist who argues from evidence and concedes good points. ",
    "bo": "You are Bo, a civic republican who argues from duty, community and institutions. ",
    "cy": "You are Cy, a market liberal who argues from incentives, prices and side effects. ",
    "di": "You are Di, a care ethicist who argues from relationships, vulnerability and needs. ",
}
TOPICS = ["cars downtown", "nuclear power", "remote work", "a four-day week"]


def make_jobs(count: int) -> list[GenerationJob]:
    """`count` distinct jobs spread over the personas, each persona's system prompt ~1 KB."""
    jobs = []
    for index in range(count):
        persona = sorted(PERSONAS)[index % len(PERSONAS)]
        system = PERSONAS[persona] * 12
        user = f"Write turn {index} of a debate on {TOPICS[index % len(TOPICS)]}.\nBe concrete."
        key = hashlib.sha256(f"{system}|{user}".encode()).hexdigest()
        jobs.append(GenerationJob(key, system, user, 300, 1.0, persona))
    return jobs


def run(
    jobs: list[GenerationJob], latency_s: float, **settings: object
) -> tuple[RunReport, float, float]:
    """Run `jobs` on a fresh fake server; returns the report, seconds, and the served cost."""
    config = SynthesisConfig(model="claude-bench", batch_poll_s=0.01, **settings)
    results: list[GenerationResult] = []
    with FakeAnthropicServer(latency_s=latency_s) as server:
        provider = AnthropicProvider(config, server.api_key, server.base_url)
        started = time.perf_counter()
        report = provider.generate(jobs, lambda _job, r: results.append(r), Budget(100.0))
        seconds = time.perf_counter() - started
        is_batch = config.mode == "batch"
        usage = server.served_usage["batch" if is_batch else "online"]
        served = cost_usd(usage, config.prices, is_batch)
    if report.completed != len(jobs) or len(results) != len(jobs):
        raise SystemExit(f"expected {len(jobs)} results, got {report.completed}: {report.failed}")
    return report, seconds, served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=64, help="Requests per run.")
    parser.add_argument("--latency", type=float, default=0.2, help="Fake server latency, s.")
    parser.add_argument("--concurrency", type=int, default=16, help="In flight for run (b).")
    args = parser.parse_args()
    jobs = make_jobs(args.jobs)

    sequential, sequential_s, _ = run(jobs, args.latency, concurrency=1)
    online, concurrent_s, online_served = run(jobs, args.latency, concurrency=args.concurrency)
    batch, batch_s, batch_served = run(jobs, args.latency, mode="batch")

    print(f"{args.jobs} jobs, fake latency {args.latency * 1000:.0f} ms per request")
    for label, seconds in (("1", sequential_s), (str(args.concurrency), concurrent_s)):
        rate = args.jobs / seconds
        print(f"  online, concurrency {label:>2}: {seconds:6.2f} s  {rate:7.1f} jobs/s")
    print(f"  retries: {sequential.retries} sequential, {online.retries} concurrent")
    print(f"  speed-up: {sequential_s / concurrent_s:.1f}x (target >= 10x)")
    print(f"  batch: {batch_s:.2f} s wall, ${batch.cost_usd:.5f} vs online ${online.cost_usd:.5f}")
    print(f"  batch / online cost: {batch.cost_usd / online.cost_usd:.3f} (target 0.5)")
    same = abs(online.cost_usd - online_served) < 1e-9 and abs(batch.cost_usd - batch_served) < 1e-9
    print(f"  reported cost equals cost of served usage: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
