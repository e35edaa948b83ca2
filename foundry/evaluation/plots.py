"""The evaluation report's PNG plots, drawn from one `EvalReport`.

`write_plots` is the entry point: it draws the confusion matrices, the belief and perplexity
heatmaps and a bar chart comparing the variants. Numbers, variant order and chance come from
`foundry.evaluation.report`, so the plots and the markdown agree. Matplotlib is imported inside the
drawing helpers only.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from foundry.atomic import write_bytes_atomic
from foundry.evaluation.report import (
    REAL_CORPUS,
    format_number,
    metric_values,
    persona_chance,
    real_values,
    variant_names,
)
from foundry.evaluation.schema import Attribution, EvalReport, Landing, Matrix

DPI = 110
NA_STYLE = {"fontsize": 7, "color": "0.5"}
STANCE_CHANCE = 0.5  # a stance is scored as one of two sides
# The bar chart's metrics: (label, summary column, whether 1 - value is drawn, chance kind).
BAR_METRICS = (
    ("style\nacc", "style acc", False, "personas"),
    ("content\nacc", "content acc", False, "personas"),
    ("stance\nacc", "stance acc", False, "stance"),
    ("belief\ndominance", "belief dominance", False, "personas"),
    ("perplexity\ndominance", "perplexity dominance", False, "personas"),
    ("1 - homogeneity\n(cosine)", "homogeneity (cosine)", True, None),
)


def _file_slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "variant"


def _save(fig: Any, path: Path) -> Path:
    """Render `fig` to PNG in memory, then write it atomically: never a half-written file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def _number_format(values: Sequence[Sequence[float]]) -> str:
    """Counts as integers; other numbers with fewer decimals the larger they get."""
    if all(isinstance(v, int) for row in values for v in row):
        return "d"
    largest = max((abs(v) for row in values for v in row if math.isfinite(v)), default=0.0)
    return ".0f" if largest >= 100 else ".1f" if largest >= 10 else ".2f"


def _heatmap(ax: Any, values: Sequence[Sequence[float]], labels: list[str], cmap: str) -> Any:
    """Draw an annotated persona x persona heatmap on `ax`; returns the image (for a colorbar)."""
    from matplotlib import colormaps

    # inf or nan cells (a perplexity that overflowed) are drawn light grey and labelled.
    image = ax.imshow(values, cmap=colormaps[cmap].with_extremes(bad="0.85"), aspect="equal")
    fmt = _number_format(values)
    size = 9 if len(labels) <= 6 else 7
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            red, green, blue, _ = image.cmap(image.norm(value))
            is_dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            is_finite = math.isfinite(value)
            text = format(value, fmt) if is_finite else str(value)
            color = "white" if is_dark and is_finite else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=size, color=color)
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels, rotation=40, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(ticks, labels, fontsize=8)
    return image


def _side_in(labels: list[str]) -> float:
    """A heatmap panel's side in inches: room for the cells and the longest label."""
    return 1.2 + 0.55 * len(labels) + 0.06 * max((len(label) for label in labels), default=0)


def _plot_confusion(title: str, panels: list[tuple[str, Attribution]]) -> Any:
    from matplotlib.figure import Figure

    side = _side_in(panels[0][1].labels)
    fig = Figure(figsize=(side * len(panels) + 0.4, side + 0.7), layout="constrained")
    fig.suptitle(title, fontsize=11)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, attribution) in zip(axes, panels, strict=True):
        _heatmap(ax, attribution.confusion, attribution.labels, "Blues")
        scores = (
            f"acc {format_number(attribution.accuracy)}, "
            f"macro-F1 {format_number(attribution.macro_f1)}"
        )
        ax.set_title(f"{name}: {scores}", fontsize=9)
        ax.set_xlabel("predicted persona", fontsize=9)
        ax.set_ylabel("true persona", fontsize=9)
    return fig


def _plot_matrix(title: str, matrix: Matrix, chance: float | None) -> Any:
    from matplotlib.figure import Figure

    side = _side_in(matrix.labels)
    fig = Figure(figsize=(side + 1.3, side + 0.7), layout="constrained")
    ax = fig.subplots()
    # Reversed colormap where lower is better, so the bright cells are always the good ones.
    cmap = "viridis_r" if matrix.lower_is_better else "viridis"
    image = _heatmap(ax, matrix.values, matrix.labels, cmap)
    better = "lower" if matrix.lower_is_better else "higher"
    fig.colorbar(image, ax=ax, shrink=0.8).set_label(f"{better} is better", fontsize=8)
    dominance = (
        f"diagonal dominance {format_number(matrix.diagonal_dominance)} "
        f"(chance {format_number(chance)})"
    )
    ax.set_title(f"{title}\n{dominance}", fontsize=10)
    ax.set_xlabel("data of persona", fontsize=9)
    ax.set_ylabel("variant for persona", fontsize=9)
    return fig


def _bar_series(report: EvalReport) -> list[tuple[str, list[float | None]]]:
    """The bar chart's series: each variant, then the real corpus; those with no value dropped."""
    named = [(v, metric_values(report.metrics.get(v))) for v in variant_names(report)]
    real = real_values(report)
    if real is not None:
        named.append((REAL_CORPUS, real))
    series = []
    for name, values in named:
        bars = []
        for _, column, is_flipped, _ in BAR_METRICS:
            value = values[column]
            bars.append(1 - value if value is not None and is_flipped else value)
        if any(v is not None for v in bars):
            series.append((name, bars))
    return series


def _plot_variants(series: list[tuple[str, list[float | None]]], chance: float | None) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.5, 4.6), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(series)
    for k, (name, bars) in enumerate(series):
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(BAR_METRICS))]
        heights = [math.nan if v is None else v for v in bars]
        look = {"color": "0.65", "hatch": "//", "edgecolor": "0.35"} if name == REAL_CORPUS else {}
        ax.bar(xs, heights, width * 0.92, label=name, **look)
        if name != REAL_CORPUS:  # tell "not computed" apart from a bar of height zero
            missing = [x for x, value in zip(xs, bars, strict=True) if value is None]
            for x in missing:
                ax.text(x, 0.01, "n/a", rotation=90, ha="center", va="bottom", **NA_STYLE)
    chance_label = "chance"
    for i, (_, _, _, kind) in enumerate(BAR_METRICS):
        level = {"stance": STANCE_CHANCE, "personas": chance}.get(kind or "")
        if level is not None:
            span = (i - 0.45, i + 0.45)
            ax.hlines(level, *span, colors="black", linestyles="dashed", label=chance_label)
            chance_label = "_nolegend_"
    drawn = [v for _, bars in series for v in bars if v is not None]
    ax.set_ylim(min(0.0, *drawn), max(1.05, *(v + 0.05 for v in drawn)))
    ax.set_xticks(range(len(BAR_METRICS)), [label for label, *_ in BAR_METRICS], fontsize=9)
    ax.set_ylabel("higher = more persona-specific", fontsize=9)
    ax.set_title("Variants compared (dashed: chance, 1/personas; 0.5 for stance)", fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9, frameon=False)
    return fig


def write_plots(report: EvalReport, out_dir: Path) -> dict[str, Path]:
    """Draw the report's plots as PNG files; only plots whose data exist are drawn.

    Files: `confusion_<variant>.png` (style and content attribution side by side),
    `belief_<variant>.png` and `perplexity_<variant>.png` (persona x persona heatmaps),
    `confusion_real_corpus.png` (the classifier on real text) and `variants.png` (every variant
    on every persona metric, with chance marked). Each file is written atomically. Variant names
    are made file-safe (characters other than letters, digits, `.`, `_`, `-` become `_`).

    Args:
        report: The evaluation report.
        out_dir: Folder for the PNG files; created when a plot is written.

    Returns:
        Plot name (the file name without `.png`) -> path of the file written.
    """
    # matplotlib.figure.Figure draws with Agg and keeps no pyplot state: no backend switch for
    # the caller, and no figure registry to close, so repeated calls do not grow memory.
    chance = persona_chance(report)
    paths: dict[str, Path] = {}

    def save(name: str, fig: Any) -> None:
        paths[name] = _save(fig, out_dir / f"{name}.png")

    for variant in variant_names(report):
        m = report.metrics.get(variant)
        if m is None:
            continue
        slug = _file_slug(variant)
        panels = [("style", m.attribution_style), ("content", m.attribution_content)]
        panels = [(name, a) for name, a in panels if a is not None]
        if panels:
            title = f"{variant}: who wrote this? (chance {format_number(chance)})"
            save(f"confusion_{slug}", _plot_confusion(title, panels))
        if m.belief:
            title = f"{variant}: belief (log-likelihood of positions)"
            save(f"belief_{slug}", _plot_matrix(title, m.belief, chance))
        if m.perplexity:
            title = f"{variant}: held-out perplexity"
            save(f"perplexity_{slug}", _plot_matrix(title, m.perplexity, chance))
    ceilings = [("style", report.ceiling_style), ("content", report.ceiling_content)]
    ceilings = [(name, a) for name, a in ceilings if a is not None]
    if ceilings:
        title = f"{REAL_CORPUS}: who wrote this? (chance {format_number(chance)})"
        save("confusion_real_corpus", _plot_confusion(title, ceilings))
    series = _bar_series(report)
    if series:
        save("variants", _plot_variants(series, chance))
    for variant, m in report.metrics.items():
        if m.landing:
            save(f"landing_{_file_slug(variant)}", _plot_landing(variant, m.landing))
    return paths


def _plot_landing(variant: str, landings: dict[str, Landing]) -> Any:
    """Each derived persona's position between its sources (content, style) against the share
    its weights predict: on the dashed diagonal, a 0.7/0.3 blend is 70 % that source."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    names = sorted(landings)
    for ax, kind in zip(axes, ("content", "style"), strict=True):
        ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1)
        for index, name in enumerate(names):
            for number, (_, s) in enumerate(sorted(landings[name].sources.items())):
                position = getattr(s, f"{kind}_position")
                if position is None:
                    continue
                low, high = getattr(s, f"{kind}_position_interval") or (position, position)
                x = s.expected_share + (index - len(names) / 2) * 0.006  # spread overlaps
                ax.errorbar(
                    [x], [position], yerr=[[position - low], [high - position]], capsize=3,
                    fmt="os"[number % 2], color=f"C{index % 10}",
                    label=name if number == 0 else None,
                )  # fmt: skip
        ax.set_title(f"{kind}: position between its sources", fontsize=9)
        ax.set_xlabel("weight share (w / sum |w|)", fontsize=8)
        ax.set_xlim(-0.05, 1.05)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("position (0: like the other sources, 1: like this one)", fontsize=8)
    axes[1].legend(fontsize=6, loc="upper left")
    fig.suptitle(f"{variant}: where each blend lands (95 % intervals; o first source, s second)",
                 fontsize=9)  # fmt: skip
    return fig
