"""95 % bootstrap intervals over prompts, so a figure says how far it could move.

With tens of held-out prompts an accuracy moves in steps of a few points, and one flipped answer
looks like a regression. `bootstrap_interval(values, groups)` resamples the *prompts* (all answers
to one prompt stay together, since they share its difficulty) with replacement and returns the
2.5th and 97.5th percentiles of the mean: the interval a report and a gate should read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


def bootstrap_interval(
    values: Sequence[float],
    groups: Sequence[Hashable],
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> list[float] | None:
    """The 95 % percentile interval of the mean of `values`, resampling whole groups.

    Args:
        values: one number per answer (1.0 / 0.0 for right / wrong).
        groups: the prompt of each answer; answers to one prompt are drawn together.
        resamples: bootstrap draws.
        seed: the draws' seed, so a report is reproducible.

    Returns:
        `[low, high]`, or None when there are no values.
    """
    if len(values) != len(groups):
        raise ValueError(f"got {len(values)} values but {len(groups)} groups; pass one per value")
    if not values:
        return None
    sums: dict[Hashable, float] = defaultdict(float)
    counts: dict[Hashable, int] = defaultdict(int)
    for value, group in zip(values, groups, strict=True):
        sums[group] += float(value)
        counts[group] += 1
    keys = list(sums)
    total = np.array([sums[k] for k in keys])
    count = np.array([counts[k] for k in keys])
    draws = np.random.default_rng(seed).integers(0, len(keys), size=(resamples, len(keys)))
    means = total[draws].sum(axis=1) / count[draws].sum(axis=1)
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return [round(float(low), 4), round(float(high), 4)]
