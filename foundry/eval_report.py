"""The evaluation report for humans: markdown and PNG plots, both read from one `EvalReport`.

`render_markdown` writes the report (summary table, how to read it, per-variant detail, skipped
variants, notes); `summary_rows` gives the summary table's formatted rows, for the CLI too;
`write_plots` draws the confusion matrices, the belief and perplexity heatmaps and a bar chart
comparing the variants. Matplotlib is imported inside `write_plots` only.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from foundry.atomic import write_bytes_atomic
from foundry.eval_schema import Attribution, EvalReport, Matrix, VariantMetrics

MISSING = "-"
REAL_CORPUS = "real corpus"
DPI = 110
NA_STYLE = {"fontsize": 7, "color": "0.5"}
STANCE_CHANCE = 0.5  # a stance is scored as one of two sides
COLUMNS = (
    "style acc",
    "content acc",
    "stance acc",
    "stance divergence",
    "belief dominance",
    "perplexity dominance",
    "homogeneity (cosine)",
    "fluency NLL",
    "distinct-2",
)
JUDGE_COLUMN = "judge win vs prompt"  # only when Claude judged the run
# The bar chart's metrics: (label, summary column, whether 1 - value is drawn, chance kind).
BAR_METRICS = (
    ("style\nacc", "style acc", False, "personas"),
    ("content\nacc", "content acc", False, "personas"),
    ("stance\nacc", "stance acc", False, "stance"),
    ("belief\ndominance", "belief dominance", False, "personas"),
    ("perplexity\ndominance", "perplexity dominance", False, "personas"),
    ("1 - homogeneity\n(cosine)", "homogeneity (cosine)", True, None),
)

HOW_TO_READ = """\
**Style vs content attribution.** A classifier trained on the personas' real writing guesses who \
wrote each answer. *Style* sees only how things are said (function words, punctuation, rhythm); \
*content* sees only what is said (topic words, claims). Chance is 1/personas = {chance}; the \
"{real}" row is the same classifier on real held-out text, the best to hope for.

**Stance and belief measure reasoning, not style.** *Stance acc* is the share of a persona's \
contested positions where its variant prefers the persona's side over the counterclaim (chance \
0.5); *stance divergence* is the share of persona pairs that disagree in their contracts whose \
variants also take opposite sides. *Belief dominance* is the share of personas whose variant finds \
its own persona's positions the most likely; *perplexity dominance* is the same on the held-out \
corpus (lower perplexity wins). Both have chance 1/personas = {chance}.

**Homogeneity** is the mean pairwise cosine between the personas' answers to the same prompt: \
lower means more different voices; compare it with the {real} row.

**Fluency must be read beside the persona scores.** *Fluency NLL* is the answers' mean token \
negative log-likelihood under the base model (higher = stranger text) and *distinct-2* the share \
of unique word bigrams (lower = more repetition). A variant that gains persona scores while its \
NLL jumps or its distinct-2 collapses is probably producing degenerate text, not a persona."""


# Formatting -----------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _chance(report: EvalReport) -> float | None:
    return 1 / len(report.personas) if report.personas else None


def _variant_names(report: EvalReport) -> list[str]:
    """The report's variants in order, then any variant that has metrics but is not listed."""
    return list(report.variants) + [v for v in report.metrics if v not in report.variants]


def _metric_values(metrics: VariantMetrics | None) -> dict[str, float | None]:
    """One variant's raw summary numbers, keyed by `COLUMNS`; None where not computed."""
    m = metrics or VariantMetrics(personas=[], answers=0)
    style, content, stance, fluency = (
        m.attribution_style,
        m.attribution_content,
        m.stance,
        m.fluency,
    )
    values = (
        style.accuracy if style else None,
        content.accuracy if content else None,
        stance.accuracy if stance else None,
        stance.divergence if stance else None,
        m.belief.diagonal_dominance if m.belief else None,
        m.perplexity.diagonal_dominance if m.perplexity else None,
        m.homogeneity.mean_pairwise_cosine if m.homogeneity else None,
        fluency.nll_under_base if fluency else None,
        fluency.distinct_2 if fluency else None,
    )
    return dict(zip(COLUMNS, values, strict=True))


def _real_values(report: EvalReport) -> dict[str, float | None] | None:
    """The real corpus' numbers (attribution ceilings, homogeneity), or None when there are none."""
    style, content, homog = report.ceiling_style, report.ceiling_content, report.real_homogeneity
    if style is None and content is None and homog is None:
        return None
    values: dict[str, float | None] = dict.fromkeys(COLUMNS)
    values["style acc"] = style.accuracy if style else None
    values["content acc"] = content.accuracy if content else None
    values["homogeneity (cosine)"] = homog.mean_pairwise_cosine if homog else None
    return values


def summary_rows(report: EvalReport) -> list[dict[str, str]]:
    """The summary table: one row per variant, then the real corpus row when it has data.

    Args:
        report: The evaluation report.

    Returns:
        One dict per row with the key `variant` and then every name in `COLUMNS`, in order;
        numbers have two decimals and a value that was not computed is `"-"`.
    """
    rows = []
    judged = any(m.judge for m in report.metrics.values())
    for name in _variant_names(report):
        values = _metric_values(report.metrics.get(name))
        rows.append({"variant": name} | {k: _fmt(v) for k, v in values.items()})
        if judged:
            judge = report.metrics[name].judge if name in report.metrics else None
            rows[-1][JUDGE_COLUMN] = _fmt(judge.win_rate if judge else None)
    real = _real_values(report)
    if real is not None:
        rows.append({"variant": REAL_CORPUS} | {k: _fmt(v) for k, v in real.items()})
        if judged:
            rows[-1][JUDGE_COLUMN] = "-"
    return rows


# Markdown -------------------------------------------------------------------------------------


def _attribution_lines(title: str, attribution: Attribution) -> list[str]:
    head = (
        f"**{title}**: accuracy {_fmt(attribution.accuracy)}, "
        f"macro-F1 {_fmt(attribution.macro_f1)} (rows: true persona, columns: predicted)"
    )
    rows = [
        [label, *counts]
        for label, counts in zip(attribution.labels, attribution.confusion, strict=True)
    ]
    return [head, "", *_table(["true / predicted", *attribution.labels], rows), ""]


def _matrix_lines(title: str, matrix: Matrix, chance: float | None) -> list[str]:
    better = "lower" if matrix.lower_is_better else "higher"
    head = (
        f"**{title}** ({better} is better; rows: variant's persona, columns: data's persona): "
        f"diagonal dominance {_fmt(matrix.diagonal_dominance)} (chance {_fmt(chance)})"
    )
    rows = [
        [label, *map(_fmt, row)] for label, row in zip(matrix.labels, matrix.values, strict=True)
    ]
    return [head, "", *_table(["variant / data", *matrix.labels], rows), ""]


def _variant_lines(name: str, m: VariantMetrics, chance: float | None) -> list[str]:
    lines = [f"### {name}", "", f"{m.answers} answers for {len(m.personas)} personas.", ""]
    if m.fluency:
        f = m.fluency
        lines += [
            f"- Fluency: NLL under base {_fmt(f.nll_under_base)}, distinct-1 "
            f"{_fmt(f.distinct_1)}, distinct-2 {_fmt(f.distinct_2)}, "
            f"mean words {_fmt(f.mean_words, 1)}"
        ]
    if m.homogeneity:
        h = m.homogeneity
        lines += [
            f"- Homogeneity: mean pairwise cosine {_fmt(h.mean_pairwise_cosine)}, effective "
            f"rank {_fmt(h.effective_rank)} of {len(m.personas)} ({h.backend})"
        ]
    if m.stance:
        s = m.stance
        lines += [
            f"- Stance: accuracy {_fmt(s.accuracy)} over {s.positions} positions, "
            f"divergence {_fmt(s.divergence)}"
        ]
    if m.judge:
        j = m.judge
        lines += [
            f"- Judge ({j.model}): more like the persona than `{j.against}` in "
            f"{_fmt(j.win_rate)} of {j.judgements} verdicts (chance 0.50; {j.invalid} invalid)"
        ]
    parts = {
        "fluency": m.fluency,
        "homogeneity": m.homogeneity,
        "stance": m.stance,
        "style attribution": m.attribution_style,
        "content attribution": m.attribution_content,
        "belief": m.belief,
        "perplexity": m.perplexity,
    }
    absent = [part for part, value in parts.items() if value is None]
    if absent:
        lines += [f"- Not computed: {', '.join(absent)} (see Notes)."]
    lines.append("")
    if m.attribution_style:
        lines += _attribution_lines("Style attribution", m.attribution_style)
    if m.attribution_content:
        lines += _attribution_lines("Content attribution", m.attribution_content)
    if m.belief:
        lines += _matrix_lines("Belief (mean log-likelihood of positions)", m.belief, chance)
    if m.perplexity:
        lines += _matrix_lines("Held-out perplexity", m.perplexity, chance)
    return lines


def _header_lines(report: EvalReport) -> list[str]:
    topics = report.heldout_topics
    shown = ", ".join(topics[:10]) + (", ..." if len(topics) > 10 else "")
    return [
        f"# Persona evaluation report ({report.data_rev or 'unversioned data'})",
        "",
        f"- Data version: `{report.data_rev or 'unversioned'}`",
        f"- Base model: `{report.base_model}`",
        f"- Personas ({len(report.personas)}): {', '.join(report.personas) or MISSING}",
        f"- Held-out prompts: {len(topics)}" + (f" (topics: {shown})" if topics else ""),
        f"- Created: {report.created_at}",
        "",
    ]


def render_markdown(report: EvalReport, plots: Mapping[str, str] | None = None) -> str:
    """Render the report as markdown, for people.

    Args:
        report: The evaluation report.
        plots: Plot name -> file name relative to the markdown file (as `write_plots` wrote
            them); each is embedded under a "Plots" heading. None or empty: no such section.

    Returns:
        The markdown text, ending with a newline.
    """
    chance = _chance(report)
    chance_text = f"1/{len(report.personas)} = {_fmt(chance)}" if chance else MISSING
    rows = summary_rows(report)
    lines = _header_lines(report)
    lines += ["## Summary", ""]
    if rows:
        lines += _table(list(rows[0]), [list(row.values()) for row in rows])
    else:
        lines.append("No variant was evaluated.")
    lines += ["", f"Chance for attribution, belief and perplexity: {chance_text}.", ""]
    lines += ["## How to read this", "", HOW_TO_READ.format(chance=_fmt(chance), real=REAL_CORPUS)]
    lines.append("")
    for name in _variant_names(report):
        if name in report.metrics:
            lines += _variant_lines(name, report.metrics[name], chance)
    if report.ceiling_style or report.ceiling_content:
        lines += [f"### {REAL_CORPUS} (attribution ceiling)", ""]
        for title, ceiling in (
            ("Style", report.ceiling_style),
            ("Content", report.ceiling_content),
        ):
            if ceiling:
                lines += _attribution_lines(f"{title} attribution", ceiling)
    if plots:
        lines += ["## Plots", ""] + [f"![{name}]({file})\n" for name, file in plots.items()]
    if report.skipped:
        lines += ["## Skipped", ""]
        lines += [f"- `{s.variant}` for `{s.persona}`: {s.reason}" for s in report.skipped]
        lines.append("")
    if report.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in report.notes] + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


# Plots ----------------------------------------------------------------------------------------


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
        scores = f"acc {_fmt(attribution.accuracy)}, macro-F1 {_fmt(attribution.macro_f1)}"
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
    dominance = f"diagonal dominance {_fmt(matrix.diagonal_dominance)} (chance {_fmt(chance)})"
    ax.set_title(f"{title}\n{dominance}", fontsize=10)
    ax.set_xlabel("data of persona", fontsize=9)
    ax.set_ylabel("variant for persona", fontsize=9)
    return fig


def _bar_series(report: EvalReport) -> list[tuple[str, list[float | None]]]:
    """The bar chart's series: each variant, then the real corpus; those with no value dropped."""
    named = [(v, _metric_values(report.metrics.get(v))) for v in _variant_names(report)]
    real = _real_values(report)
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
    chance = _chance(report)
    paths: dict[str, Path] = {}

    def save(name: str, fig: Any) -> None:
        paths[name] = _save(fig, out_dir / f"{name}.png")

    for variant in _variant_names(report):
        m = report.metrics.get(variant)
        if m is None:
            continue
        slug = _file_slug(variant)
        panels = [("style", m.attribution_style), ("content", m.attribution_content)]
        panels = [(name, a) for name, a in panels if a is not None]
        if panels:
            title = f"{variant}: who wrote this? (chance {_fmt(chance)})"
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
        title = f"{REAL_CORPUS}: who wrote this? (chance {_fmt(chance)})"
        save("confusion_real_corpus", _plot_confusion(title, ceilings))
    series = _bar_series(report)
    if series:
        save("variants", _plot_variants(series, chance))
    return paths
