"""Known answers for the evaluation's metrics (foundry.evaluation.metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from foundry.evaluation.metrics import (
    attribution_scores,
    diagonal_dominance,
    distinct_n,
    fluency,
    homogeneity,
    persona_matrix,
    stance_metrics,
)

LABELS = ["ada", "bo", "cy"]


def test_perfect_predictions_score_one_with_a_diagonal_confusion():
    true = ["ada", "ada", "bo", "cy", "cy", "cy"]
    scores = attribution_scores(true, true, LABELS)
    assert scores.accuracy == 1.0
    assert scores.macro_f1 == pytest.approx(1.0)
    assert scores.labels == LABELS
    assert scores.confusion == [[2, 0, 0], [0, 1, 0], [0, 0, 3]]


def test_a_constant_predictor_scores_the_majority_share():
    true = ["ada", "ada", "bo", "cy", "cy", "cy"]
    scores = attribution_scores(true, ["cy"] * len(true), LABELS)
    assert scores.accuracy == pytest.approx(3 / 6)
    # F1 is 0 for ada and bo, and 2*0.5*1/(0.5+1) = 2/3 for cy.
    assert scores.macro_f1 == pytest.approx((2 / 3) / 3)
    assert scores.confusion == [[0, 0, 2], [0, 0, 1], [0, 0, 3]]


def test_attribution_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 true personas but 1 predictions"):
        attribution_scores(["ada", "bo"], ["ada"], LABELS)


def test_distinct_n_counts_unique_ngrams_within_texts():
    texts = ["the cat sat", "The cat ran!", ""]
    # words: the cat sat the cat ran -> 4 unique of 6
    assert distinct_n(texts, 1) == pytest.approx(4 / 6)
    # bigrams (never across texts): the-cat, cat-sat, the-cat, cat-ran -> 3 unique of 4
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)
    assert distinct_n(["one"], 2) == 0.0
    assert distinct_n([], 1) == 0.0


def test_fluency_reports_distinct_n_and_mean_length():
    record = fluency(["the cat sat", "the cat ran"], nll_under_base=2.5)
    assert record.distinct_1 == pytest.approx(4 / 6)
    assert record.distinct_2 == pytest.approx(3 / 4)
    assert record.mean_words == 3.0
    assert record.nll_under_base == 2.5
    assert fluency([], None).mean_words == 0.0


def test_identical_answers_are_fully_homogeneous():
    row = np.array([0.3, -1.2, 2.0, 0.5])
    record = homogeneity([np.tile(row, (3, 1)), np.tile(-row, (4, 1))], backend="tfidf")
    assert record.mean_pairwise_cosine == pytest.approx(1.0)
    assert record.effective_rank == pytest.approx(1.0)
    assert record.backend == "tfidf"


def test_orthogonal_answers_have_zero_cosine_and_full_rank():
    record = homogeneity([np.eye(3) * 5.0, np.eye(4)[:, ::-1]], backend="minilm")
    assert record.mean_pairwise_cosine == pytest.approx(0.0)
    assert record.effective_rank == pytest.approx((3 + 4) / 2)


def test_homogeneity_skips_single_answer_groups_and_needs_one_pair():
    record = homogeneity([np.ones((1, 3)), np.eye(2)], backend="tfidf")
    assert record.effective_rank == pytest.approx(2.0)
    with pytest.raises(ValueError, match="at least two answers"):
        homogeneity([np.ones((1, 3))], backend="tfidf")


# Perplexities (lower is better). Column 0 is a uniformly easy corpus: raw, it is the best cell
# of every row, so only row 0 would look dominant.
EASY_COLUMN = [
    [2.0, 10.0, 10.0],
    [3.0, 9.0, 10.0],
    [3.0, 10.0, 9.0],
]


def test_column_mean_removal_keeps_an_easy_column_from_winning_every_row():
    assert diagonal_dominance(EASY_COLUMN, lower_is_better=True) == pytest.approx(1.0)
    assert diagonal_dominance(EASY_COLUMN, lower_is_better=False) == pytest.approx(0.0)


def test_an_own_column_that_is_only_uniformly_easy_does_not_count():
    # Row 0's own column is easy for everyone: after centring it ties with the rest of row 0.
    values = [[1.0, 5.0, 5.0], [1.0, 4.0, 6.0], [1.0, 6.0, 4.0]]
    assert diagonal_dominance(values, lower_is_better=True) == pytest.approx(2 / 3)


def test_higher_is_better_mirrors_lower_is_better():
    loglik = -np.array(EASY_COLUMN)
    assert diagonal_dominance(loglik, lower_is_better=False) == pytest.approx(1.0)
    mixed = [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]  # only row 2 prefers its own
    assert diagonal_dominance(mixed, lower_is_better=False) == pytest.approx(1 / 3)
    # Lower is better: rows 0 and 1 tie their own cell with another zero, and ties don't count.
    assert diagonal_dominance(mixed, lower_is_better=True) == 0.0


def test_persona_matrix_checks_its_shape():
    record = persona_matrix(LABELS, EASY_COLUMN, lower_is_better=True)
    assert record.values == EASY_COLUMN
    assert record.diagonal_dominance == pytest.approx(1.0)
    with pytest.raises(ValueError, match="must be 2x2"):
        persona_matrix(["ada", "bo"], EASY_COLUMN, lower_is_better=True)
    with pytest.raises(ValueError, match="finite"):
        diagonal_dominance([[1.0, np.nan], [0.0, 1.0]], lower_is_better=True)


def test_stance_accuracy_and_divergence_on_hand_made_prefs():
    claim = "Rents should be capped."
    prefs = {
        ("ada", "p1"): 0.8,  # agrees, prefers the claim: right
        ("bo", "p1"): -0.3,  # disagrees, prefers the counterclaim: right
        ("cy", "p1"): 0.2,  # disagrees, prefers the claim: wrong
        ("ada", "p2"): 0.0,  # a tie counts as wrong
    }
    stances = {
        ("ada", "p1"): "agree",
        ("bo", "p1"): "disagree",
        ("cy", "p1"): "disagree",
        ("ada", "p2"): "agree",
    }
    claims = {
        ("ada", "p1"): claim,
        ("bo", "p1"): claim + " ",
        ("cy", "p1"): claim,
        ("ada", "p2"): "Cities should build up.",
    }
    record = stance_metrics(prefs, stances, claims)
    assert record.positions == 4
    assert record.accuracy == pytest.approx(2 / 4)
    # Opposite-stance pairs on the shared claim: ada-bo (signs differ: 1), ada-cy (same sign: 0).
    assert record.divergence == pytest.approx(1 / 2)
    # Four positions, two right: the interval resamples positions and spans most of [0, 1].
    low, high = record.accuracy_interval
    assert low < 0.5 < high and low >= 0.0 and high <= 1.0


def test_stance_metrics_are_none_without_positions_or_disagreement():
    empty = stance_metrics({}, {}, {})
    assert (empty.accuracy, empty.positions, empty.divergence) == (None, 0, None)
    assert empty.accuracy_interval is None
    alike = stance_metrics(
        {("ada", "p1"): 1.0, ("bo", "p1"): 1.0},
        dict.fromkeys([("ada", "p1"), ("bo", "p1")], "agree"),
        dict.fromkeys([("ada", "p1"), ("bo", "p1")], "Same claim."),
    )
    assert alike.accuracy == 1.0
    assert alike.divergence is None


def test_stance_metrics_reject_an_unknown_stance():
    with pytest.raises(ValueError, match="must be one of"):
        stance_metrics({("ada", "p1"): 1.0}, {("ada", "p1"): "maybe"}, {})


def test_item_tags_keep_the_point_estimates_and_give_them_intervals():
    from foundry.evaluation.measures import _fluency_interval, _matrix, _nll_totals
    from foundry.training.scoring import Score

    rng = np.random.default_rng(0)
    slugs = ["ada", "bo"]
    tags = [("ppl", a, b, str(k)) for a in slugs for b in slugs for k in range(3)]
    tags += [("fluency", f"topic-{t}", a) for a in slugs for t in range(5)]
    tags += [("stance", "ada", "p1", "claim")]  # a tag without items is summed as before
    scores = [Score(float(rng.uniform(5, 50)), int(rng.integers(1, 20))) for _ in tags]
    totals, items = _nll_totals(tags, scores)

    # The point estimates: every row of a cell summed in row order, exactly as before the tags.
    fluent = [s for t, s in zip(tags, scores, strict=True) if t[0] == "fluency"]
    nll, tokens = 0.0, 0.0
    for score in fluent:
        nll, tokens = nll + score.nll, tokens + score.tokens
    assert totals[("fluency",)] == [nll, tokens]
    assert totals[("stance", "ada", "p1", "claim")] == [scores[-1].nll, scores[-1].tokens]
    mean_nll = {tag: n / max(t, 1) for tag, (n, t) in totals.items()}
    low, high = _fluency_interval(items, seed=0)
    assert low < nll / tokens < high

    matrix = _matrix(mean_nll, items, "ppl", slugs, seed=0)
    cell = [s for t, s in zip(tags, scores, strict=True) if t[:3] == ("ppl", "ada", "bo")]
    expected = float(np.exp(sum(s.nll for s in cell) / sum(s.tokens for s in cell)))
    assert matrix.values[0][1] == pytest.approx(expected, rel=1e-12)
    assert matrix.dominance_interval is not None
    assert all(bound in (0.0, 0.5, 1.0) for bound in matrix.dominance_interval)
