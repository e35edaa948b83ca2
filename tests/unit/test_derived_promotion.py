"""The promotion gate of a derived persona checks what applies to it (fluency, copy rate) and says
why it skips attribution; any other persona missing attribution is still refused."""

from __future__ import annotations

from registry.config import PromotionConfig
from registry.promotion import comparison_markdown, decide


def test_a_derived_persona_is_gated_on_fluency_and_copy_rate_only():
    policy = PromotionConfig()
    metrics = {"fluency_nll": 3.0, "copy_rate": 0.0}

    derived = decide(metrics, {"content_recall": 0.9}, policy, is_derived=True)
    plain = decide(metrics, None, policy)

    assert derived.promote and not derived.reasons
    assert {r.metric: r.ok for r in derived.rows}["content_recall"] is True
    assert "content_recall, style_recall, belief_margin not applied" in derived.notes[0]
    assert "Note: content_recall" in comparison_markdown("jp", 1, None, derived)
    assert not plain.promote and any("content_recall is missing" in r for r in plain.reasons)


def test_a_derived_persona_that_copies_is_still_refused():
    decision = decide({"fluency_nll": 3.0, "copy_rate": 0.5}, None, PromotionConfig(),
                      is_derived=True)  # fmt: skip

    assert not decision.promote
    assert decision.reasons == ["copy_rate 0.50 > 0.10 allowed"]
