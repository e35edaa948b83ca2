"""Bootstrap intervals over prompts (and over a matrix's texts), and where the report shows
them."""

from __future__ import annotations

import numpy as np
import pytest

from foundry.evaluation.intervals import bootstrap_interval, dominance_interval, percentile_interval
from foundry.evaluation.metrics import diagonal_dominance, homogeneity
from foundry.evaluation.report import render_markdown, summary_rows
from foundry.evaluation.schema import (
    Attribution,
    ConflictFidelity,
    EvalReport,
    Fluency,
    Homogeneity,
    Matrix,
    VariantMetrics,
)
from foundry.evaluation.summary import flat_intervals, flat_metrics


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


def test_the_report_shows_intervals_and_summary_rows_can_keep_points():
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


def test_a_weighted_interval_is_of_the_token_weighted_mean():
    # Two prompts: a long answer with NLL 2 per token and a one-token answer with NLL 10.
    values, prompts, tokens = [2.0, 10.0], ["a", "b"], [99, 1]
    low, high = bootstrap_interval(values, prompts, weights=tokens)
    assert low == pytest.approx(2.0) and high == pytest.approx(10.0)  # a draw of only "b": 10
    assert bootstrap_interval(values, prompts, weights=[5, 5]) == bootstrap_interval(
        values, prompts
    )
    assert bootstrap_interval([3.0], ["a"], weights=[0]) is None
    with pytest.raises(ValueError, match="weights"):
        bootstrap_interval(values, prompts, weights=[1])


def test_a_discrete_statistic_gets_bounds_it_can_take():
    draws = [0.5] * 25 + [0.75] * 950 + [1.0] * 25
    steps = {0.5, 0.75, 1.0}
    assert set(percentile_interval(draws, is_discrete=True)) <= steps
    low, high = percentile_interval(draws)  # linear interpolation lands between the steps
    assert low not in steps and 0.5 < low < 0.75
    assert percentile_interval([]) is None


def _columns(spreads: list[float], items: int = 12, margin: float = 0.5, seed: int = 1):
    """Four personas' NLL matrices: each row's own column is `margin` lower on average; column
    j's items scatter by `spreads[j]` (the same text is hard or easy for every row)."""
    rng = np.random.default_rng(seed)
    columns = []
    for j, spread in enumerate(spreads):
        text_noise = rng.normal(0, spread, size=items)  # shared by every row: a text's difficulty
        row_noise = rng.normal(0, spread, size=(4, items))  # how each row fares on each text
        nll = 3.0 + text_noise + row_noise
        nll[j] -= margin
        columns.append((nll * 10, np.full((4, items), 10.0)))  # 10 tokens per text
    return columns


def test_a_column_of_scattered_texts_widens_the_dominance_interval():
    steady = dominance_interval(_columns([0.02] * 4), np.exp, lower_is_better=True)
    scattered = dominance_interval(_columns([0.02, 0.02, 0.02, 1.5]), np.exp, lower_is_better=True)
    assert steady == [1.0, 1.0]
    assert scattered[1] - scattered[0] >= 0.25
    assert all(bound * 4 == int(bound * 4) for bound in scattered)  # steps of 1/4


def test_the_dominance_interval_matches_diagonal_dominance_on_every_draw():
    # With one text per column every draw is the original matrix: the interval is the point.
    nll = [[1.0, 5.0, 5.0], [5.0, 1.0, 5.0], [5.0, 5.0, 4.0]]
    columns = [(np.array([[row[j]] for row in nll]), np.ones((3, 1))) for j in range(3)]
    point = diagonal_dominance(np.negative(nll), lower_is_better=False)
    assert dominance_interval(columns, np.negative, lower_is_better=False) == [point, point]
    assert dominance_interval([(np.zeros((2, 0)), np.zeros((2, 0)))] * 2, np.exp, True) is None


def test_homogeneity_has_an_interval_over_prompts():
    alike = np.tile([1.0, 0.0], (2, 1))
    apart = np.eye(2)
    record = homogeneity([alike, apart] * 5, backend="tfidf", seed=3)
    low, high = record.cosine_interval
    assert record.mean_pairwise_cosine == pytest.approx(0.5)
    assert 0.0 < low < 0.5 < high < 1.0
    same = homogeneity([alike] * 6, backend="tfidf")
    assert same.cosine_interval == [1.0, 1.0]


def test_every_headline_interval_reaches_mlflow_under_its_metrics_name():
    conflicts = ConflictFidelity(
        conflicts=4, answers=8, likelihood=0.75, likelihood_interval=[0.5, 1.0],
        embedding=0.625, embedding_interval=[0.25, 0.875],
        answer_cosine=0.4, answer_cosine_interval=[0.3, 0.5],
    )  # fmt: skip
    metrics = VariantMetrics(
        personas=["a", "b"], answers=8, conflicts=conflicts,
        fluency=Fluency(nll_under_base=3.0, nll_interval=[2.5, 3.5], distinct_1=0.5,
                        distinct_2=0.8, mean_words=50.0),
        homogeneity=Homogeneity(mean_pairwise_cosine=0.4, effective_rank=1.8, backend="tfidf",
                                cosine_interval=[0.3, 0.5]),
        belief=Matrix(labels=["a", "b"], values=[[0.0, 1.0], [1.0, 0.0]],
                      diagonal_dominance=0.5, lower_is_better=False,
                      dominance_interval=[0.0, 1.0]),
    )  # fmt: skip
    report = EvalReport(
        created_at="now", base_model="tiny", personas=["a", "b"], variants=["dpo+steer"],
        heldout_topics=["t1"], metrics={"dpo+steer": metrics},
    )  # fmt: skip
    points, intervals = flat_metrics(report), flat_intervals(report)
    names = {
        "fluency_nll", "homogeneity_cosine", "belief_dominance", "conflict_fidelity",
        "conflict_embedding_fidelity", "answer_cosine",
    }  # fmt: skip
    assert set(intervals) == {f"eval.dpo_steer.{name}" for name in names}
    assert set(intervals) <= set(points)
    for name, (low, high) in intervals.items():
        assert low <= points[name] <= high, name
