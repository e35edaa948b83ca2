"""Synthesis and pairs through the real `anthropic` SDK against the fake server on 127.0.0.1."""

from __future__ import annotations

import json
import shutil

import pytest

from foundry.config import Settings, load_config
from foundry.synthesis.jobs import ProviderAuthError, cost_usd
from foundry.synthesis.pair_building import build_pairs
from foundry.synthesis.pair_sets import load_pairs
from foundry.synthesis.turn_synthesis import synthesize
from tests.conftest import SAMPLE_DIR, make_project
from tests.fakes.anthropic_server import FakeAnthropicServer

# The fake server's words read as nobody in particular: the attribution gate would drop them all.
FAST = """
synthesis:
  backoff_s: 0.01
  max_backoff_s: 0.05
  batch_poll_s: 0.01
  filters: {min_attribution: 0}
"""
PERSONAS = ["tobias-renn", "priya-castellanos"]


@pytest.fixture
def server():
    with FakeAnthropicServer() as fake:
        yield fake


def _config(tmp_path, extra: str = ""):
    root = make_project(tmp_path / "project", config_text=FAST + extra)
    shutil.copytree(SAMPLE_DIR, root / "data")
    return load_config(root / "foundry.yaml")


def _settings(server, key: str | None = None) -> Settings:
    return Settings(anthropic_api_key=key or server.api_key, anthropic_base_url=server.base_url)


def _rows(config, slug, name="generations.jsonl"):
    path = config.data_dir / "synthetic" / slug / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_auto_with_a_key_uses_claude_and_accounts_for_the_served_usage(server, tmp_path):
    config = _config(tmp_path)
    summary = synthesize(config, _settings(server), personas=PERSONAS, count=6)

    assert summary.provider == "anthropic" and summary.model == config.synthesis.model
    rows = [r for slug in PERSONAS for r in _rows(config, slug)]
    assert len(rows) == server.requests == 12
    served = server.served_usage["online"]
    assert summary.cost_usd == pytest.approx(cost_usd(served, config.synthesis.prices), abs=1e-6)
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(summary.cost_usd, abs=1e-6)
    # The persona's long system prompt is written to the cache once, then read from it.
    assert sum(r["cache_read_input_tokens"] > 0 for r in rows) >= 10
    assert all(r["provider"] == "anthropic" and len(r["prompt_hash"]) == 64 for r in rows)
    turns = _rows(config, "tobias-renn", "turns.jsonl")
    assert turns and all(t["model"] == config.synthesis.model for t in turns)


def test_a_killed_run_resumes_without_paying_twice(server, tmp_path):
    config = _config(tmp_path)

    class Killed(Exception):
        pass

    def progress(label, jobs):
        done = []

        def hook(count):
            done.append(count)
            if len(done) == 4:
                raise Killed

        return hook

    with pytest.raises(Killed):
        synthesize(config, _settings(server), personas=PERSONAS, count=6, progress=progress)
    paid = server.requests
    saved = sum(len(_rows(config, slug)) for slug in PERSONAS)
    assert saved >= 4 and saved == paid

    summary = synthesize(config, _settings(server), personas=PERSONAS, count=6)

    assert server.requests == 12  # only the missing ones were asked for
    assert sum(c.reused for c in summary.personas.values()) == saved


def test_the_budget_stops_the_run_and_keeps_what_was_paid_for(server, tmp_path):
    config = _config(tmp_path, "  concurrency: 1\n")
    summary = synthesize(config, _settings(server), personas=PERSONAS, count=6, budget_usd=0.05)

    assert summary.stopped_by_budget and summary.cost_usd <= 0.05
    made = sum(c.generated for c in summary.personas.values())
    skipped = sum(c.skipped_for_budget for c in summary.personas.values())
    assert 0 < made < 12 and skipped > 0
    assert made == server.requests == sum(len(_rows(config, s)) for s in PERSONAS)

    again = synthesize(config, _settings(server), personas=PERSONAS, count=6, budget_usd=5)
    assert not again.stopped_by_budget and server.requests == 12


def test_an_invalid_key_fails_once_without_retries_and_writes_nothing(server, tmp_path):
    config = _config(tmp_path)
    with pytest.raises(ProviderAuthError, match="401") as caught:
        synthesize(config, _settings(server, "fake-wrong-key-0000"), personas=PERSONAS, count=6)

    assert server.requests <= config.synthesis.concurrency and server.requests >= 1
    assert "fake-wrong-key" not in str(caught.value)
    assert not list((config.data_dir / "synthetic").rglob("turns.jsonl"))


def test_batch_mode_costs_half_of_online(server, tmp_path):
    config = _config(tmp_path, "  mode: batch\n")
    batch = synthesize(config, _settings(server), personas=PERSONAS, count=4)

    assert batch.mode == "batch" and server.batch_creates >= 1 and server.requests == 0
    served, prices = server.served_usage["batch"], config.synthesis.prices
    assert batch.cost_usd == pytest.approx(cost_usd(served, prices, is_batch=True), abs=1e-6)
    assert batch.cost_usd == pytest.approx(cost_usd(served, prices) / 2, abs=1e-6)
    assert len(_rows(config, "tobias-renn")) == 4


def test_the_constitution_pass_keeps_draft_and_critique(server, tmp_path):
    config = _config(tmp_path, "  constitution_pass: true\n")
    synthesize(config, _settings(server), personas=["tobias-renn"], count=3)

    turns = _rows(config, "tobias-renn", "turns.jsonl") + _rows(
        config, "tobias-renn", "rejected.jsonl"
    )
    assert len(turns) == 3
    for turn in turns:
        assert turn["draft"] and turn["critique"] and turn["text"] != turn["draft"]
    kinds = [r["kind"] for r in _rows(config, "tobias-renn")]
    assert kinds.count("critique") == kinds.count("revision") == 3


def test_pairs_with_claude_include_constitution_violations(server, tmp_path):
    mix = "  pairs: {mix: {cross_persona: 0.4, generic: 0.3, constitution_violation: 0.3}}\n"
    config = _config(tmp_path, mix)
    synthesize(config, _settings(server), personas=PERSONAS, count=10)
    summary = build_pairs(config, _settings(server), personas=PERSONAS)

    assert summary.provider == "anthropic" and summary.cost_usd > 0
    pairs = load_pairs(config, "tobias-renn")
    strategies = {p.strategy for p in pairs}
    assert strategies == {"cross_persona", "generic", "constitution_violation"}
    kinds = {r["kind"] for r in _rows(config, "tobias-renn")}
    assert {"generic", "violation"} <= kinds
