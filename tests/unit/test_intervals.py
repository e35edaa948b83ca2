"""Bootstrap intervals over prompts, and where the report shows them."""

from __future__ import annotations

import pytest

from foundry.evaluation.intervals import bootstrap_interval
from foundry.evaluation.report import render_markdown, summary_rows
from foundry.evaluation.schema import Attribution, EvalReport, VariantMetrics


def test_a_constant_has_a_point_interval_and_a_mixed_mean_a_wide_one():
    assert bootstrap_interval([1.0] * 8, list(range(8))) == [1.0, 1.0]
    low, high = bootstrap_interval([1.0, 0.0] * 10, list(range(20)))
    assert low < 0.5 < high
    assert 0.2 < low and high < 0.8  # 20 prompts: roughly +-0.22 around 0.5


def test_answers_to_one_prompt_move_together():
    # 10 prompts, 4 answers each, all right or all wrong per prompt: effectively 10 draws, not 40.
    values = [float(p % 2) for p in range(10) for _ in range(4)]
    prompts = [p for p in range(10) for _ in range(4)]
    by_prompt = bootstrap_interval(values, prompts)
    as_if_independent = bootstrap_interval(values, list(range(40)))
    assert by_prompt[1] - by_prompt[0] > 1.5 * (as_if_independent[1] - as_if_independent[0])


def test_the_interval_is_reproducible_and_empty_input_has_none():
    values, prompts = [1.0, 0.0, 1.0, 1.0, 0.0], [1, 2, 3, 4, 5]
    assert bootstrap_interval(values, prompts, seed=3) == bootstrap_interval(
        values, prompts, seed=3
    )
    assert bootstrap_interval([], []) is None
    with pytest.raises(ValueError, match="one per value"):
        bootstrap_interval([1.0], [])


def test_the_report_shows_intervals_and_the_terminal_table_keeps_points():
    attribution = Attribution(
        accuracy=0.625, macro_f1=0.6, labels=["a", "b"], confusion=[[3, 1], [2, 2]],
        accuracy_interval=[0.5, 0.75],
    )  # fmt: skip
    report = EvalReport(
        created_at="now", base_model="tiny", personas=["a", "b"], variants=["dpo"],
        heldout_topics=["t1"],
        metrics={"dpo": VariantMetrics(personas=["a", "b"], answers=8,
                                       attribution_content=attribution)},
    )  # fmt: skip
    assert summary_rows(report)[0]["content acc"] == "0.62"
    assert summary_rows(report, with_intervals=True)[0]["content acc"] == "0.62 [0.50, 0.75]"
    assert "| dpo | - | 0.62 [0.50, 0.75] |" in render_markdown(report)
