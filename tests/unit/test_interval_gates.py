"""Promotion reads 95 % intervals, not points: noise between prompts refuses nothing."""

from __future__ import annotations

from types import SimpleNamespace

from registry.config import PromotionConfig
from registry.models import interval_tags, version_intervals
from registry.promotion import comparison_markdown, decide

POLICY = PromotionConfig(min_content_recall=0.5, min_style_recall=0.0, max_fluency_nll=8.0)
GOOD = {"content_recall": 0.8, "style_recall": 0.6, "fluency_nll": 3.5, "copy_rate": 0.0}


def test_a_point_below_the_gate_passes_when_its_interval_reaches_it():
    candidate = {**GOOD, "content_recall": 0.4}
    assert decide(candidate, None, POLICY).reasons == ["content_recall 0.40 < 0.50 required"]
    decision = decide(candidate, None, POLICY, intervals={"content_recall": [0.1, 0.7]})
    assert decision.promote and decision.reasons == []
    row = next(r for r in decision.rows if r.metric == "content_recall")
    assert row.candidate_interval == [0.1, 0.7] and "95 % interval" in row.rule


def test_a_gate_fails_when_the_whole_interval_is_below_it():
    candidate = {**GOOD, "content_recall": 0.2}
    decision = decide(candidate, None, POLICY, intervals={"content_recall": [0.1, 0.45]})
    assert not decision.promote
    assert decision.reasons == [
        "content_recall 0.20 [0.10, 0.45]: even its upper bound 0.45 < 0.50 required"
    ]


def test_a_regression_needs_intervals_that_do_not_overlap():
    champion = {**GOOD, "content_recall": 0.8}
    candidate = {**GOOD, "content_recall": 0.65}  # 0.15 worse: a regression by points
    points = decide(candidate, champion, POLICY, champion_version=1)
    assert any("regresses champion v1" in r for r in points.reasons)
    overlapping = decide(
        candidate, champion, POLICY, champion_version=1,
        intervals={"content_recall": [0.5, 0.8]},
        champion_intervals={"content_recall": [0.7, 0.9]},
    )  # fmt: skip
    assert overlapping.promote, overlapping.reasons
    apart = decide(
        {**GOOD, "content_recall": 0.3}, champion, POLICY, champion_version=1,
        intervals={"content_recall": [0.2, 0.55]},
        champion_intervals={"content_recall": [0.7, 0.9]},
    )  # fmt: skip
    assert apart.reasons == [
        "content_recall 0.30 [0.20, 0.55] is wholly below champion v1's [0.70, 0.90]"
    ]
    markdown = comparison_markdown("x", 2, 1, apart)
    assert "0.300 [0.20, 0.55]" in markdown and "0.800 [0.70, 0.90]" in markdown


def test_intervals_round_trip_through_version_tags():
    tags = interval_tags({"content_recall": [0.125, 0.75], "style_recall": (0.0, 0.5)})
    assert tags == {"interval.content_recall": "0.125,0.75", "interval.style_recall": "0.0,0.5"}
    version = SimpleNamespace(tags={**tags, "interval.broken": "oops", "metric.x": "1.0"})
    assert version_intervals(version) == {
        "content_recall": [0.125, 0.75],
        "style_recall": [0.0, 0.5],
    }


def test_the_default_style_gate_is_chance():
    policy = PromotionConfig(min_content_recall=0.5)
    assert policy.min_style_recall is None
    at_chance = {**GOOD, "style_recall": 0.2, "chance": 0.25}
    assert decide(at_chance, None, policy).reasons == ["style_recall 0.20 < 0.25 required"]
    noisy = decide(at_chance, None, policy, intervals={"style_recall": [0.1, 0.3]})
    assert noisy.promote  # its interval reaches chance
    assert decide({**GOOD, "style_recall": 0.3, "chance": 0.25}, None, policy).promote
