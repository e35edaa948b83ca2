"""95 % bootstrap intervals over prompts, so a figure says how far it could move.

With tens of held-out prompts an accuracy moves in steps of a few points, and one flipped answer
looks like a regression. `bootstrap_interval(values, groups)` resamples the *prompts* (all answers
to one prompt stay together, since they share its difficulty) with replacement and returns the
2.5th and 97.5th percentiles of the (optionally weighted) mean: the interval a report and a gate
should read. `percentile_interval(draws)` turns any statistic's bootstrap draws into the same
interval; with `is_discrete` its bounds are values the statistic can take (a diagonal dominance
over four personas moves in steps of 0.25, and an interval between two steps would promise a
precision it does not have). `dominance_interval` is that of a persona matrix's diagonal
dominance (`foundry.evaluation.metrics.diagonal_dominance`), resampling each column's items.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


def bootstrap_interval(
    values: Sequence[float],
    groups: Sequence[Hashable],
    *,
    weights: Sequence[float] | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> list[float] | None:
    """The 95 % percentile interval of the mean of `values`, resampling whole groups.

    Args:
        values: one number per answer (1.0 / 0.0 for right / wrong).
        groups: the prompt of each answer; answers to one prompt are drawn together.
        weights: one weight per value for a weighted mean (e.g. token counts, so the interval
            is of a token-weighted mean NLL); None weighs every value 1.
        resamples: bootstrap draws.
        seed: the draws' seed, so a report is reproducible.

    Returns:
        `[low, high]`, or None when there are no values (or the weights sum to zero).
    """
    if len(values) != len(groups):
        raise ValueError(f"got {len(values)} values but {len(groups)} groups; pass one per value")
    if weights is not None and len(weights) != len(values):
        raise ValueError(f"got {len(values)} values but {len(weights)} weights; pass one per value")
    if not values:
        return None
    weights = [1.0] * len(values) if weights is None else weights
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        return None
    sums: dict[Hashable, float] = defaultdict(float)
    counts: dict[Hashable, float] = defaultdict(float)
    for value, group, weight in zip(values, groups, weights, strict=True):
        sums[group] += float(value) * float(weight)
        counts[group] += float(weight)
    keys = list(sums)
    total = np.array([sums[k] for k in keys])
    count = np.array([counts[k] for k in keys])
    draws = np.random.default_rng(seed).integers(0, len(keys), size=(resamples, len(keys)))
    drawn_count = count[draws].sum(axis=1)
    drawn = drawn_count > 0  # a draw of only zero-weight groups has no mean
    return percentile_interval(total[draws].sum(axis=1)[drawn] / drawn_count[drawn])


def percentile_interval(
    draws: Sequence[float] | np.ndarray, is_discrete: bool = False
) -> list[float] | None:
    """The 2.5th and 97.5th percentiles of a statistic's bootstrap draws, rounded to 4 places.

    Args:
        draws: the statistic computed on each bootstrap resample.
        is_discrete: the statistic takes a few values (a share of four personas): each bound is
            then a value some draw took, never a point between two steps.

    Returns:
        `[low, high]`, or None when there are no draws.
    """
    values = np.asarray(draws, dtype=np.float64)
    if values.size == 0:
        return None
    tail = (1 - LEVEL) / 2
    method = "inverted_cdf" if is_discrete else "linear"
    low, high = np.quantile(values, [tail, 1 - tail], method=method)
    return [round(float(low), 4), round(float(high), 4)]


def dominance_interval(
    columns: Sequence[tuple[np.ndarray, np.ndarray]],
    transform: Callable[[np.ndarray], np.ndarray],
    lower_is_better: bool,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> list[float] | None:
    """The 95 % bootstrap interval of a persona matrix's diagonal dominance.

    Each draw resamples every column's items (its held-out texts, or its positions) with
    replacement, the same items for every row since all rows are scored on them; a cell is then
    `transform(sum NLL / max(sum tokens, 1))`, as the point estimate's. Dominance moves in steps
    of 1 / rows, and so do the interval's bounds (each is a value some draw took).

    Args:
        columns: per column, in the matrix's order: (NLL, token counts), two arrays of shape
            (rows, the column's items), row i's summed NLL and tokens on each item.
        transform: mean NLL -> cell value, applied elementwise (`np.exp` for perplexity).
        lower_is_better: as in `foundry.evaluation.metrics.diagonal_dominance`.
        resamples: bootstrap draws.
        seed: the draws' seed.

    Returns:
        `[low, high]`, or None when a column has no items or the matrix is not square.
    """
    rows = len(columns)
    shapes = [np.shape(nll) for nll, _ in columns]
    if not rows or any(len(s) != 2 or s[0] != rows or s[1] == 0 for s in shapes):
        return None
    rng = np.random.default_rng(seed)
    cells = np.empty((resamples, rows, rows))
    for j, (nll, tokens) in enumerate(columns):
        picks = rng.integers(0, shapes[j][1], size=(resamples, shapes[j][1]))
        nll_sum = np.asarray(nll, dtype=np.float64)[:, picks].sum(axis=2)  # (rows, resamples)
        token_sum = np.asarray(tokens, dtype=np.float64)[:, picks].sum(axis=2)
        with np.errstate(over="ignore"):
            cells[:, :, j] = transform(nll_sum / np.maximum(token_sum, 1)).T
    return percentile_interval(_dominance_draws(cells, lower_is_better), is_discrete=True)


def _dominance_draws(cells: np.ndarray, lower_is_better: bool) -> np.ndarray:
    """`diagonal_dominance` of each matrix in a (draws, n, n) stack."""
    with np.errstate(invalid="ignore"):  # an infinite cell gives NaN: it neither wins nor beats
        centred = cells - cells.mean(axis=1, keepdims=True)
    if lower_is_better:
        centred = -centred
    diagonal = np.diagonal(centred, axis1=1, axis2=2)  # (draws, n)
    beats = diagonal[:, :, None] > centred
    n = cells.shape[1]
    beats[:, np.arange(n), np.arange(n)] = True
    return beats.all(axis=2).mean(axis=1)
