"""Evaluation reports side by side: one variant's headline figures from two or more runs (e.g.
one adapter per persona against style+reasoning experts), each with its 95 % interval.

A difference is claimed only where two runs' intervals are apart, as in the report's verdicts
(`foundry.evaluation.verdict`); the runs must have answered the same held-out prompts and
conflicts, else their figures are not comparable and `compare_reports` refuses.

Public entry points: `compare_reports(reports, variant)` -> `Comparison`, `comparison_markdown`,
`plot_comparison`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from foundry.atomic import write_bytes_atomic
from foundry.errors import FoundryError
from foundry.evaluation.schema import EvalReport
from foundry.evaluation.verdict import HEADLINE, format_cell

Cell = tuple[float | None, list[float] | None]


class ComparisonError(FoundryError):
    """The reports cannot be compared: different prompts, personas or a missing variant."""


@dataclass
class Comparison:
    variant: str
    labels: list[str]
    # metric -> label -> (value, interval); per-persona content recall as `content recall: slug`
    cells: dict[str, dict[str, Cell]] = field(default_factory=dict)

    def difference(self, metric: str) -> str:
        """Which runs' intervals are apart on `metric`, or that none are."""
        cells = self.cells[metric]
        claims = []
        for i, first in enumerate(self.labels):
            for second in self.labels[i + 1 :]:
                (a, ai), (b, bi) = cells[first], cells[second]
                if a is None or b is None or not ai or not bi:
                    continue
                if ai[0] > bi[1]:
                    claims.append(f"{first} > {second}")
                elif ai[1] < bi[0]:
                    claims.append(f"{first} < {second}")
        return "; ".join(claims) or "intervals overlap: no difference shown"


def compare_reports(
    reports: Mapping[str, EvalReport], variant: str, baseline: str | None = None
) -> Comparison:
    """The headline figures (`verdict.HEADLINE`) and each persona's content recall of `variant`
    in every report, keyed by the reports' labels; with `baseline` (e.g. `prompt`), the first
    report's `baseline` variant first, as the reference both are read against.

    Raises:
        ComparisonError: fewer than two reports, a report without `variant`, or reports that
            answered different prompts, conflicts or personas.
    """
    if len(reports) < 2:
        raise ComparisonError("comparing needs two reports or more")
    labels = list(reports)
    first = reports[labels[0]]
    for label, report in reports.items():
        if variant not in report.metrics:
            raise ComparisonError(
                f"report {label!r} has no {variant!r} variant (it has "
                f"{', '.join(report.metrics) or 'none'})"
            )
        for part in ("heldout_topics", "conflict_ids", "personas"):
            if getattr(report, part) != getattr(first, part):
                raise ComparisonError(
                    f"reports {labels[0]!r} and {label!r} differ in {part}: their figures are not "
                    "comparable; evaluate both on the same data and settings"
                )
    columns = {label: (report, variant) for label, report in reports.items()}
    if baseline:
        if baseline not in first.metrics:
            raise ComparisonError(
                f"report {labels[0]!r} has no {baseline!r} variant to compare with"
            )
        columns = {f"{baseline} ({labels[0]})": (first, baseline)} | columns
    comparison = Comparison(variant=variant, labels=list(columns))
    for metric, read in HEADLINE.items():
        comparison.cells[metric] = {
            label: read(report.metrics[name]) for label, (report, name) in columns.items()
        }
    for slug in first.personas:
        comparison.cells[f"content recall: {slug}"] = {
            label: _recall(report, name, slug) for label, (report, name) in columns.items()
        }
    return comparison


def _recall(report: EvalReport, variant: str, slug: str) -> Cell:
    scores = report.metrics[variant].attribution_content
    if scores is None or slug not in scores.labels:
        return None, None
    row = scores.confusion[scores.labels.index(slug)]
    value = row[scores.labels.index(slug)] / sum(row) if sum(row) else None
    return value, scores.recall_intervals.get(slug)


def comparison_markdown(comparison: Comparison) -> str:
    """A table: one row per figure, one column per run, and which differences are shown."""
    header = ["figure", *comparison.labels, "difference (95 % intervals apart)"]
    lines = [
        f"Variant `{comparison.variant}`; each figure with its 95 % bootstrap interval over "
        "held-out prompts.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for metric, cells in comparison.cells.items():
        row = [metric, *(format_cell(*cells[label]) for label in comparison.labels)]
        lines.append("| " + " | ".join(row + [comparison.difference(metric)]) + " |")
    return "\n".join(lines) + "\n"


def plot_comparison(comparison: Comparison, path: Path) -> Path:
    """One small panel per figure: each run's value with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m, cells in comparison.cells.items() if any(v for v, _ in cells.values())]
    columns = 4
    rows = -(-len(metrics) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for x, label in enumerate(comparison.labels):
            value, interval = comparison.cells[metric][label]
            if value is None:
                continue
            low, high = interval if interval else (value, value)
            ax.errorbar(
                [x], [value], yerr=[[value - low], [high - value]], fmt="o", capsize=4,
                color=f"C{x}",
            )  # fmt: skip
        ax.set_xticks(range(len(comparison.labels)), comparison.labels, fontsize=8)
        ax.set_xlim(-0.6, len(comparison.labels) - 0.4)
        ax.set_title(metric, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.suptitle(f"{comparison.variant}: 95 % intervals over held-out prompts", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
    return path
