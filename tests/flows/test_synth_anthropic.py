"""Synthesis and pairs through the real `anthropic` SDK against the fake server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import re
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


def test_a_belief_graph_reaches_the_request_and_its_nodes_the_turn(server, tmp_path):
    config = _config(tmp_path)
    nodes = [
        ("n1", "central banks guard their balance sheets", "assumption"),
        ("n2", "reserve assets must stay liquid in a crisis", "inference"),
        ("n3", "inflation stays above target", "inference"),
        ("n4", "data-center spending follows market share", "inference"),
        ("n5", "export controls on chips delay rival models", "inference"),
        ("n6", "dollar stablecoins spread dollar demand", "inference"),
    ]
    edges = [("n1", "n2", 1), ("n2", "n3", -1), ("n4", "n5", 1), ("n6", "n1", -1)]
    graph = {
        "nodes": [{"id": i, "concept": c, "type": t} for i, c, t in nodes],
        "edges": [{"from": a, "to": b, "polarity": p, "confidence": 0.7} for a, b, p in edges],
    }
    (config.persona_dir("tobias-renn") / "beliefs.json").write_text(json.dumps(graph))
    sent: list[tuple[str, str]] = []
    server.reply_with = lambda system, user: sent.append((system, user))  # None: the usual answer

    synthesize(config, _settings(server), personas=["tobias-renn"], count=6)

    lead = "Argue along these beliefs of yours"
    cited = [(system, user) for system, user in sent if lead in user]
    assert len(sent) == 6 and cited
    rows = {r["prompt_hash"]: r for r in _rows(config, "tobias-renn")}
    relation_of = {(a, b): "supports" if p == 1 else "opposes" for a, b, p in edges}
    for system, user in cited:
        path = [line for line in user.split(lead, 1)[1].splitlines() if line.startswith("- [")]
        steps = [re.fullmatch(r"- \[(n\d)\] [a-z -]+ (\w+) \[(n\d)\] [a-z -]+", s) for s in path]
        assert steps and all(steps), path
        assert all(relation_of[m[1], m[3]] == m[2] for m in steps)  # the persona's own edges
        row = rows[hashlib.sha256(f"{system}\0{user}".encode()).hexdigest()]
        assert row["belief_nodes"] == list(dict.fromkeys(n for m in steps for n in (m[1], m[3])))
    turns = _rows(config, "tobias-renn", "turns.jsonl")
    turns += _rows(config, "tobias-renn", "rejected.jsonl")
    assert sum(bool(t["belief_nodes"]) for t in turns) == len(cited)
