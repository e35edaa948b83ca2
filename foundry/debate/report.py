"""The debate comparison: one row per measure, one column per variant, and a PNG of homogeneity by
round per variant (with 95 % intervals). The CLI prints the rows, the flow publishes the markdown
and logs the numbers to MLflow.

Entry points: `comparison_rows(measures)`, `comparison_markdown(measures)`,
`write_homogeneity_plot(measures, path)`, and `flat_measures(measures)` /
`flat_intervals(measures)` (MLflow's names: `debate.<variant>.<measure>[.round<r>]`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from foundry.atomic import write_bytes_atomic
from foundry.debate.measures import DebateMeasures, Estimate

DPI = 110


def _estimate(e: Estimate) -> str:
    if e.value is None:
        return "-"
    if e.interval is None:
        return f"{e.value:.2f}"
    return f"{e.value:.2f} [{e.interval[0]:.2f}, {e.interval[1]:.2f}]"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _count(done: int, expected: int) -> str:
    return f"{done}/{expected}" if expected else "-"


def comparison_rows(measures: Sequence[DebateMeasures]) -> list[tuple[str, list[str]]]:
    """(measure, one cell per variant), in the order they read best."""
    rounds = max((m.rounds for m in measures), default=0)
    rows: list[tuple[str, list[str]]] = []
    for r in range(rounds):
        rows.append((f"homogeneity, round {r + 1}", [_at(m.homogeneity, r) for m in measures]))
    rows.append(("homogeneity slope / round", [_estimate(m.homogeneity_slope) for m in measures]))
    for r in range(rounds):
        cells = [_at(m.fidelity_likelihood, r) for m in measures]
        rows.append((f"conflict fidelity (likelihood), round {r + 1}", cells))
    for r in range(rounds):
        cells = [_at(m.fidelity_embedding, r) for m in measures]
        rows.append((f"conflict fidelity (embedding), round {r + 1}", cells))
    cells = {
        "stance changes (citing a flip condition)": [
            f"{m.stance_changes} of {m.sides} ({m.changes_citing_flip})" if m.sides else "-"
            for m in measures
        ],
        "agree/disagree lines read": [
            _count(m.stance_lines, m.stance_lines_expected) for m in measures
        ],
        "share disagreeing": [_share(m.disagree_share) for m in measures],
        "disagreements naming a type": [_share(m.typed_share) for m in measures],
        "final positions read": [_count(m.finals_read, m.finals_expected) for m in measures],
        "mean final confidence": [_share(m.mean_confidence) for m in measures],
        "distinct-2, last round": [
            _share(m.distinct_2[-1] if m.distinct_2 else None) for m in measures
        ],
        "copy rate": [_share(m.copy_rate) for m in measures],
        "mean tokens per turn": [f"{m.mean_tokens:.0f}" for m in measures],
        "empty turns": [str(m.empty_turns) for m in measures],
    }
    for r in range(rounds):
        cells[f"own persona-vector score, round {r + 1}"] = [
            _share(m.vectors.own_score[r] if m.vectors and r < len(m.vectors.own_score) else None)
            for m in measures
        ]
    cells["drift / convergence flags"] = [
        f"{m.vectors.drift_flags} / {m.vectors.convergence_flags}" if m.vectors else "-"
        for m in measures
    ]
    return rows + list(cells.items())


def _at(values: Sequence[Estimate], index: int) -> str:
    return _estimate(values[index]) if index < len(values) else "-"


def comparison_markdown(measures: Sequence[DebateMeasures]) -> str:
    """The comparison as a markdown table, with how it was measured."""
    if not measures:
        return "No debates were measured.\n"
    first = measures[0]
    head = "| measure | " + " | ".join(m.variant for m in measures) + " |"
    lines = [head, "|---|" + "---:|" * len(measures)]
    lines += [
        f"| {name} | " + " | ".join(cells) + " |" for name, cells in comparison_rows(measures)
    ]
    note = (
        f"{first.debates} debate(s) x {first.rounds} round(s) per variant, target "
        f"{first.target}, embeddings {first.embeddings}. Homogeneity: mean pairwise cosine of a "
        "round's turns within a debate (lower: more distinct); fidelity: share of conflict sides "
        "whose turn holds its own assumption (chance 0.50). In brackets: 95 % bootstrap "
        "intervals resampling debates. Own persona-vector score: 1 reads like the persona's own "
        "texts, 0 like the others' (`foundry monitor`; '-' without persona vectors)."
    )
    return "\n".join(lines) + "\n\n" + note + "\n"


def write_homogeneity_plot(measures: Sequence[DebateMeasures], path: Path) -> Path:
    """Homogeneity by round, one line per variant, error bars from the intervals."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for offset, m in enumerate(measures):
        points = [(r + 1, e) for r, e in enumerate(m.homogeneity) if e.value is not None]
        if not points:
            continue
        xs = [x + (offset - (len(measures) - 1) / 2) * 0.06 for x, _ in points]
        ys = [e.value for _, e in points]
        low = [e.value - e.interval[0] if e.interval else 0.0 for _, e in points]
        high = [e.interval[1] - e.value if e.interval else 0.0 for _, e in points]
        ax.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, label=m.variant)
    ax.set_xlabel("round")
    ax.set_ylabel("homogeneity (mean pairwise cosine)")
    rounds = max((m.rounds for m in measures), default=1)
    ax.set_xticks(range(1, rounds + 1))
    ax.set_title("Do the personas converge over the debate? (lower: more distinct)", fontsize=10)
    ax.legend(title="variant")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def _numbers(m: DebateMeasures) -> dict[str, Estimate]:
    """Every number of one variant's measures under its MLflow name (without the prefix)."""
    found: dict[str, Estimate] = {"homogeneity_slope": m.homogeneity_slope}
    series = {
        "homogeneity": m.homogeneity,
        "fidelity_likelihood": m.fidelity_likelihood,
        "fidelity_embedding": m.fidelity_embedding,
        "distinct_2": [Estimate(value=v) for v in m.distinct_2],
        "own_vector_score": [Estimate(value=v) for v in (m.vectors.own_score if m.vectors else [])],
    }
    for name, estimates in series.items():
        found |= {f"{name}.round{r}": e for r, e in enumerate(estimates, start=1)}
    scalars = {
        "copy_rate": m.copy_rate,
        "disagree_share": m.disagree_share,
        "typed_share": m.typed_share,
        "mean_confidence": m.mean_confidence,
        "stance_changes": m.stance_changes,
        "mean_tokens": m.mean_tokens,
        "empty_turns": m.empty_turns,
        "debates": m.debates,
        "drift_flags": m.vectors.drift_flags if m.vectors else None,
        "convergence_flags": m.vectors.convergence_flags if m.vectors else None,
    }
    return found | {name: Estimate(value=value) for name, value in scalars.items()}


def _prefix(variant: str) -> str:
    return f"debate.{variant.replace('+', '_')}."  # MLflow names allow no "+" (dpo+steer)


def flat_measures(measures: Sequence[DebateMeasures]) -> dict[str, float]:
    """`debate.<variant>.<measure>` -> value for every number that exists; per-round measures
    end in `.round<r>` (`debate.dpo.homogeneity.round2`)."""
    return {
        _prefix(m.variant) + name: float(e.value)
        for m in measures
        for name, e in _numbers(m).items()
        if e.value is not None
    }


def flat_intervals(measures: Sequence[DebateMeasures]) -> dict[str, list[float]]:
    """The 95 % intervals of the numbers of `flat_measures` that have one, under the same names."""
    return {
        _prefix(m.variant) + name: list(e.interval)
        for m in measures
        for name, e in _numbers(m).items()
        if e.value is not None and e.interval
    }
