"""The evaluation summary as flat numbers: `eval.<variant>.<metric>` -> value.

Public entry points: `flat_metrics(report)`, the names and values the flows return and
`registry.tracking` logs as MLflow metrics, and `flat_intervals(report)`, their 95 % intervals
(logged as `interval.<name>` tags). Kept apart from `foundry.evaluation.run` so reading a
report's numbers loads no model or numeric library.
"""

from __future__ import annotations

from foundry.evaluation.schema import EvalReport


def flat_metrics(report: EvalReport) -> dict[str, float]:
    """`eval.<variant>.<metric>` -> value for every number of the summary that exists (a `+`
    in a variant's name becomes `_`)."""
    flat: dict[str, float] = {}
    for variant, m in report.metrics.items():
        values = {
            "style_accuracy": m.attribution_style and m.attribution_style.accuracy,
            "content_accuracy": m.attribution_content and m.attribution_content.accuracy,
            "stance_accuracy": m.stance and m.stance.accuracy,
            "stance_divergence": m.stance and m.stance.divergence,
            "belief_dominance": m.belief and m.belief.diagonal_dominance,
            "perplexity_dominance": m.perplexity and m.perplexity.diagonal_dominance,
            "homogeneity_cosine": m.homogeneity and m.homogeneity.mean_pairwise_cosine,
            "fluency_nll": m.fluency and m.fluency.nll_under_base,
            "distinct_2": m.fluency and m.fluency.distinct_2,
            "copy_rate": m.memorisation and m.memorisation.copy_rate,
        }
        name = variant.replace("+", "_")  # MLflow names allow no "+" (dpo+steer -> dpo_steer)
        flat |= {f"eval.{name}.{k}": float(v) for k, v in values.items() if v is not None}
    return flat


def flat_intervals(report: EvalReport) -> dict[str, list[float]]:
    """`eval.<variant>.<metric>` -> its 95 % bootstrap interval, for the numbers that have one."""
    flat: dict[str, list[float]] = {}
    for variant, m in report.metrics.items():
        values = {
            "style_accuracy": m.attribution_style and m.attribution_style.accuracy_interval,
            "content_accuracy": m.attribution_content and m.attribution_content.accuracy_interval,
            "copy_rate": m.memorisation and m.memorisation.copy_rate_interval,
            "stance_accuracy": m.stance and m.stance.accuracy_interval,
        }
        name = variant.replace("+", "_")
        flat |= {f"eval.{name}.{k}": list(v) for k, v in values.items() if v}
    return flat
