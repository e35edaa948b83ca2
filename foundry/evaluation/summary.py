"""The evaluation summary as flat numbers: `eval.<variant>.<metric>` -> value.

Public entry points: `flat_metrics(report)`, the names and values the flows return and
`registry.tracking` logs as MLflow metrics, and `flat_intervals(report)`, their 95 % intervals
under the same names (logged as `interval.<name>` tags). Both read `FLAT`, so a number and its
interval are never named apart. Kept apart from `foundry.evaluation.run` so reading a report's
numbers loads no model or numeric library.
"""

from __future__ import annotations

from collections.abc import Callable

from foundry.evaluation.schema import EvalReport, VariantMetrics

Point = Callable[[VariantMetrics], float | None]
Interval = Callable[[VariantMetrics], list[float] | None]

# name -> (its value, its 95 % interval or None where the metric has none)
FLAT: dict[str, tuple[Point, Interval | None]] = {
    "style_accuracy": (
        lambda m: m.attribution_style and m.attribution_style.accuracy,
        lambda m: m.attribution_style and m.attribution_style.accuracy_interval,
    ),
    "content_accuracy": (
        lambda m: m.attribution_content and m.attribution_content.accuracy,
        lambda m: m.attribution_content and m.attribution_content.accuracy_interval,
    ),
    "stance_accuracy": (
        lambda m: m.stance and m.stance.accuracy,
        lambda m: m.stance and m.stance.accuracy_interval,
    ),
    "stance_divergence": (lambda m: m.stance and m.stance.divergence, None),
    "belief_dominance": (
        lambda m: m.belief and m.belief.diagonal_dominance,
        lambda m: m.belief and m.belief.dominance_interval,
    ),
    "perplexity_dominance": (
        lambda m: m.perplexity and m.perplexity.diagonal_dominance,
        lambda m: m.perplexity and m.perplexity.dominance_interval,
    ),
    "homogeneity_cosine": (
        lambda m: m.homogeneity and m.homogeneity.mean_pairwise_cosine,
        lambda m: m.homogeneity and m.homogeneity.cosine_interval,
    ),
    "fluency_nll": (
        lambda m: m.fluency and m.fluency.nll_under_base,
        lambda m: m.fluency and m.fluency.nll_interval,
    ),
    "distinct_2": (lambda m: m.fluency and m.fluency.distinct_2, None),
    "copy_rate": (
        lambda m: m.memorisation and m.memorisation.copy_rate,
        lambda m: m.memorisation and m.memorisation.copy_rate_interval,
    ),
    "conflict_fidelity": (
        lambda m: m.conflicts and m.conflicts.likelihood,
        lambda m: m.conflicts and m.conflicts.likelihood_interval,
    ),
    "conflict_embedding_fidelity": (
        lambda m: m.conflicts and m.conflicts.embedding,
        lambda m: m.conflicts and m.conflicts.embedding_interval,
    ),
    "answer_cosine": (
        lambda m: m.conflicts and m.conflicts.answer_cosine,
        lambda m: m.conflicts and m.conflicts.answer_cosine_interval,
    ),
}


def _prefix(variant: str) -> str:
    return f"eval.{variant.replace('+', '_')}."  # MLflow names allow no "+" (dpo+steer)


def flat_metrics(report: EvalReport) -> dict[str, float]:
    """`eval.<variant>.<metric>` -> value for every number of the summary that exists (a `+`
    in a variant's name becomes `_`)."""
    flat: dict[str, float] = {}
    for variant, m in report.metrics.items():
        for name, (point, _) in FLAT.items():
            value = point(m)
            if value is not None:
                flat[_prefix(variant) + name] = float(value)
    return flat


def flat_intervals(report: EvalReport) -> dict[str, list[float]]:
    """`eval.<variant>.<metric>` -> its 95 % bootstrap interval, for the numbers that have one
    (the names of `flat_metrics`)."""
    flat: dict[str, list[float]] = {}
    for variant, m in report.metrics.items():
        for name, (_, interval) in FLAT.items():
            found = interval(m) if interval else None
            if found:
                flat[_prefix(variant) + name] = list(found)
    return flat
