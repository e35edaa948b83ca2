"""Promotion policy: turn an evaluation into per-persona numbers and decide champion or not.

Pure code, no MLflow: `persona_metrics(report, variant, slug)` reads one persona's headline
numbers out of an `EvalReport`; `decide(candidate, champion, policy)` applies the absolute gates
and the no-regression rule of `PromotionConfig` and returns a `Decision` that lists every check;
`comparison_markdown(...)` renders that decision for a flow summary or the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel

from foundry.evaluation.schema import Attribution, EvalReport, Matrix
from registry.config import PromotionConfig

METRIC_DIRECTIONS: dict[str, Literal["higher", "lower"]] = {
    "content_recall": "higher",
    "style_recall": "higher",
    "belief_margin": "higher",
    "perplexity_own": "lower",
    "fluency_nll": "lower",
    "copy_rate": "lower",
}

# What a derived persona (blended from others' adapters, no texts of its own) is not judged on:
# nothing of its own to attribute or to hold out; its landing record reports where it lands.
NOT_FOR_DERIVED = ("content_recall", "style_recall", "belief_margin", "perplexity_own")
DERIVED_NOTE = (
    "{metrics} not applied: a derived persona has no texts of its own to attribute or hold out "
    "(its evaluation's landing record says where it lands between its sources); gated on "
    "fluency and copy rate only"
)

# Float noise (0.70 - 0.05 = 0.6499999...) must not turn an exact-tolerance tie into a refusal.
_EPSILON = 1e-9


class ComparisonRow(BaseModel):
    """One metric of a promotion decision: candidate and champion values, rule and verdict."""

    metric: str
    candidate: float | None
    champion: float | None
    ok: bool
    rule: str = ""
    candidate_interval: list[float] | None = None
    champion_interval: list[float] | None = None


class Decision(BaseModel):
    """Whether a candidate becomes champion, and why (reasons list every failed check)."""

    promote: bool
    forced: bool
    reasons: list[str]
    rows: list[ComparisonRow]
    notes: list[str] = []


def decision_text(reasons: Sequence[str], notes: Sequence[str] = ()) -> str:
    """Why a version was promoted or refused, in one line: the failed checks, else what the
    checks left out (a derived persona's), else that all passed."""
    if reasons:
        return "; ".join(reasons)
    return "checks passed; " + "; ".join(notes) if notes else "all checks passed"


def persona_metrics(report: EvalReport, variant: str, slug: str) -> dict[str, float]:
    """Read one persona's promotion metrics from an evaluation report.

    Args:
        report: The evaluation report (`metrics.json`).
        variant: The evaluated variant, e.g. the adapter variant's name.
        slug: The persona's slug, as in the report's matrix labels.

    Returns:
        Metric name -> value, for the metrics whose data is present: `content_recall` and
        `style_recall` (the persona's confusion row: diagonal / row sum), `belief_margin` (own
        belief minus the best other persona's, after removing each column's mean),
        `perplexity_own` (own held-out perplexity) and `fluency_nll` (the variant's mean NLL
        under the base model), `copy_rate` (share of the persona's answers that repeat its
        training text, the memorisation guard) and `chance` (1 / personas evaluated: the default
        style gate).

    Raises:
        ValueError: `variant` is not in the report.
    """
    if variant not in report.metrics:
        raise ValueError(
            f"variant {variant!r} is not in the evaluation report; it has "
            f"{sorted(report.metrics) or 'no variants'}; pass one of those"
        )
    metrics = report.metrics[variant]
    if slug in metrics.landing:  # a derived persona: its own fluency and copy rate only
        landing = metrics.landing[slug]
        derived = {
            "fluency_nll": landing.fluency.nll_under_base if landing.fluency else None,
            "copy_rate": landing.memorisation.copy_rate if landing.memorisation else None,
        }
        return {name: float(value) for name, value in derived.items() if value is not None}
    found = {
        "content_recall": _recall(metrics.attribution_content, slug),
        "style_recall": _recall(metrics.attribution_style, slug),
        "belief_margin": _belief_margin(metrics.belief, slug),
        "perplexity_own": _diagonal(metrics.perplexity, slug),
        "fluency_nll": metrics.fluency.nll_under_base if metrics.fluency else None,
        "copy_rate": (
            metrics.memorisation.copy_rate_by_persona.get(slug) if metrics.memorisation else None
        ),
        "chance": 1 / len(report.personas) if report.personas else None,
    }
    return {name: float(value) for name, value in found.items() if value is not None}


def persona_intervals(report: EvalReport, variant: str, slug: str) -> dict[str, list[float]]:
    """One persona's 95 % bootstrap intervals (over prompts) of its promotion metrics, where the
    report has them: `content_recall` and `style_recall`."""
    metrics = report.metrics.get(variant)
    if metrics is None:
        return {}
    found = {
        "content_recall": metrics.attribution_content,
        "style_recall": metrics.attribution_style,
    }
    return {
        name: list(attribution.recall_intervals[slug])
        for name, attribution in found.items()
        if attribution is not None and slug in attribution.recall_intervals
    }


def _recall(attribution: Attribution | None, slug: str) -> float | None:
    if attribution is None or slug not in attribution.labels:
        return None
    i = attribution.labels.index(slug)
    row = attribution.confusion[i]
    total = sum(row)
    return row[i] / total if total else None


def _diagonal(matrix: Matrix | None, slug: str) -> float | None:
    if matrix is None or slug not in matrix.labels:
        return None
    i = matrix.labels.index(slug)
    return matrix.values[i][i]


def _belief_margin(matrix: Matrix | None, slug: str) -> float | None:
    if matrix is None or slug not in matrix.labels or len(matrix.labels) < 2:
        return None
    i = matrix.labels.index(slug)
    rows = matrix.values
    # Removing column means cancels how plausible a persona's positions are to any model.
    means = [sum(row[j] for row in rows) / len(rows) for j in range(len(rows[0]))]
    centred = [value - means[j] for j, value in enumerate(rows[i])]
    others = [value for j, value in enumerate(centred) if j != i]
    return centred[i] - max(others)


def decide(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    policy: PromotionConfig,
    force: bool = False,
    *,
    champion_version: int | None = None,
    intervals: Mapping[str, Sequence[float]] | None = None,
    champion_intervals: Mapping[str, Sequence[float]] | None = None,
    is_derived: bool = False,
) -> Decision:
    """Decide whether a candidate adapter replaces the champion.

    Absolute gates first (`content_recall >= min_content_recall`, `style_recall >=
    min_style_recall` (default: the candidate's `chance`), `fluency_nll <= max_fluency_nll`,
    `copy_rate <= max_copy_rate`; a missing gated metric fails), then, when there is a champion,
    every metric of `policy.compare` present on both sides must not be worse than the
    champion's by more than `policy.tolerance` (direction from
    `METRIC_DIRECTIONS`). A metric that comes with a 95 % interval is judged on it, not on its
    point: the gate fails only when the whole interval is on the wrong side of the limit, and a
    regression only when the candidate's interval lies wholly below (or above, for lower-is-better)
    the champion's, so a difference within the prompts' noise refuses nothing.

    Args:
        candidate: The candidate's metrics.
        champion: The current champion's metrics; None for a persona's first version.
        policy: The promotion policy.
        force: Promote even if checks fail (`forced` is set, reasons still list the failures).
        champion_version: The champion's version number, named in the reasons.
        intervals: The candidate's 95 % intervals by metric, where known.
        champion_intervals: The champion's, where known.
        is_derived: the candidate is a derived persona (`foundry merge`): the metrics of
            `NOT_FOR_DERIVED` are neither gated nor compared (a row and a note say so).

    Returns:
        The decision, with one row per gated or compared metric.

    Raises:
        ValueError: `policy.compare` names a metric without a known direction.
    """
    unknown = [name for name in policy.compare if name not in METRIC_DIRECTIONS]
    if unknown:
        raise ValueError(
            f"`registry.promotion.compare` has unknown metric(s) {unknown}; use names from "
            f"{sorted(METRIC_DIRECTIONS)}"
        )
    gates = {
        "content_recall": policy.min_content_recall,
        # Chance (1 / personas) unless set; 0 for versions evaluated before chance was recorded.
        "style_recall": (
            policy.min_style_recall
            if policy.min_style_recall is not None
            else candidate.get("chance", 0.0)
        ),
        "fluency_nll": policy.max_fluency_nll,
        "copy_rate": policy.max_copy_rate,
    }
    compared = policy.compare if champion is not None else []
    rows: list[ComparisonRow] = []
    reasons: list[str] = []
    notes: list[str] = []
    if is_derived:
        skipped = [m for m in dict.fromkeys([*gates, *compared]) if m in NOT_FOR_DERIVED]
        gates = {m: limit for m, limit in gates.items() if m not in NOT_FOR_DERIVED}
        compared = [m for m in compared if m not in NOT_FOR_DERIVED]
        rows += [
            ComparisonRow(metric=m, candidate=None, champion=None, ok=True,
                          rule="not applied (derived persona)")
            for m in skipped
        ]  # fmt: skip
        notes.append(DERIVED_NOTE.format(metrics=", ".join(skipped)))
    for metric in dict.fromkeys([*gates, *compared]):
        value = candidate.get(metric)
        previous = champion.get(metric) if champion is not None else None
        interval = _interval(intervals, metric)
        previous_interval = _interval(champion_intervals, metric) if champion is not None else None
        failures, rules = [], []
        if metric in gates:
            rule, failure = _gate(metric, value, gates[metric], interval)
            rules.append(rule)
            failures += [failure] if failure else []
        if metric in compared:
            rule, failure = _regression(
                metric, value, previous, policy.tolerance, champion_version,
                interval, previous_interval,
            )  # fmt: skip
            rules.append(rule)
            failures += [failure] if failure else []
        reasons += failures
        row = ComparisonRow(
            metric=metric,
            candidate=value,
            champion=previous,
            ok=not failures,
            rule="; ".join(rules),
            candidate_interval=interval,
            champion_interval=previous_interval,
        )
        rows.append(row)
    return Decision(
        promote=force or not reasons, forced=force and bool(reasons), reasons=reasons, rows=rows,
        notes=notes,
    )  # fmt: skip


def _gate(
    metric: str, value: float | None, limit: float, interval: list[float] | None = None
) -> tuple[str, str | None]:
    """The gate's rule text and, when it fails, the reason."""
    higher = METRIC_DIRECTIONS[metric] == "higher"
    sign, broken = (">=", "<") if higher else ("<=", ">")
    rule = f"{sign} {limit:.2f}"
    if value is None:
        return rule, f"{metric} is missing (needs {sign} {limit:.2f}); evaluate the version first"
    word = "required" if higher else "allowed"
    if interval is not None:
        bound = interval[1] if higher else interval[0]
        failed = bound < limit - _EPSILON if higher else bound > limit + _EPSILON
        which = "upper" if higher else "lower"
        reason = (
            f"{metric} {value:.2f} {_span(interval)}: even its {which} bound {bound:.2f} "
            f"{broken} {limit:.2f} {word}"
        )
        return f"{rule} (on the 95 % interval)", reason if failed else None
    failed = value < limit - _EPSILON if higher else value > limit + _EPSILON
    return rule, f"{metric} {value:.2f} {broken} {limit:.2f} {word}" if failed else None


def _interval(intervals: Mapping[str, Sequence[float]] | None, metric: str) -> list[float] | None:
    found = (intervals or {}).get(metric)
    return [float(found[0]), float(found[1])] if found is not None and len(found) == 2 else None


def _span(interval: Sequence[float]) -> str:
    return f"[{interval[0]:.2f}, {interval[1]:.2f}]"


def _regression(
    metric: str,
    value: float | None,
    previous: float | None,
    tolerance: float,
    champion_version: int | None,
    interval: list[float] | None = None,
    previous_interval: list[float] | None = None,
) -> tuple[str, str | None]:
    """The no-regression rule's text and, when the candidate regresses, the reason."""
    name = f"champion v{champion_version}" if champion_version is not None else "champion"
    higher = METRIC_DIRECTIONS[metric] == "higher"
    if interval is not None and previous_interval is not None and value is not None:
        rule = f"95 % interval not wholly {'below' if higher else 'above'} {name}'s"
        if higher:
            failed = interval[1] < previous_interval[0] - _EPSILON
        else:
            failed = interval[0] > previous_interval[1] + _EPSILON
        reason = (
            f"{metric} {value:.2f} {_span(interval)} is wholly {'below' if higher else 'above'} "
            f"{name}'s {_span(previous_interval)}"
        )
        return rule, reason if failed else None
    rule = f"within {tolerance:.2f} of {name}"
    if value is None or previous is None:
        return f"{rule} (skipped: missing on one side)", None
    if higher:
        failed = value < previous - tolerance - _EPSILON
    else:
        failed = value > previous + tolerance + _EPSILON
    if not failed:
        return rule, None
    return rule, (
        f"{metric} {value:.2f} regresses {name} {previous:.2f} by more than {tolerance:.2f}"
    )


def comparison_markdown(
    slug: str, version: int, champion_version: int | None, decision: Decision
) -> str:
    """Render a promotion decision as markdown: one table row per metric, then the verdict.

    Args:
        slug: The persona's slug.
        version: The candidate's version number.
        champion_version: The champion's version number; None when there is none.
        decision: The decision to render.

    Returns:
        Markdown text.
    """
    against = f"champion v{champion_version}" if champion_version is not None else "no champion"
    lines = [
        f"## Promotion of persona-{slug} v{version} (against {against})",
        "",
        "| metric | candidate | champion | rule | ok |",
        "|---|---|---|---|---|",
    ]
    for row in decision.rows:
        verdict = "yes" if row.ok else "**no**"
        lines.append(
            f"| {row.metric} | {_number(row.candidate, row.candidate_interval)} | "
            f"{_number(row.champion, row.champion_interval)} | "
            f"{row.rule} | {verdict} |"
        )
    if decision.forced:
        outcome = "promoted (forced despite failed checks)"
    else:
        outcome = "promoted" if decision.promote else "refused"
    lines += ["", f"**Decision:** {outcome}"]
    if decision.reasons:
        lines += ["", "Reasons:", *(f"- {reason}" for reason in decision.reasons)]
    else:
        lines += ["", "All gates and comparisons passed."]
    lines += ["", *(f"Note: {note}" for note in decision.notes)] if decision.notes else []
    return "\n".join(lines) + "\n"


def _number(value: float | None, interval: Sequence[float] | None = None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" + (f" {_span(interval)}" if interval is not None else "")
