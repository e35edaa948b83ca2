"""The evaluation report for humans, as markdown read from one `EvalReport`.

`render_markdown` writes the report: it leads with the headline table and a verdict per variant
against the prompt-only baseline (`foundry.evaluation.verdict`), then every number (the summary
table), how to read it, per-variant detail, skipped variants and notes; `summary_rows` gives the
summary table's formatted rows (the Prefect artifact). The helpers the plots share
(`format_number`, `persona_chance`, `variant_names`, `metric_values`, `real_values`) live here
too; the PNG plots are `foundry.evaluation.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from foundry.evaluation.landing import derived_lines
from foundry.evaluation.schema import (
    Attribution,
    ConflictFidelity,
    EvalReport,
    Matrix,
    VariantMetrics,
)
from foundry.evaluation.verdict import BASELINE, Guards, headline_rows, heldout_sentence, verdicts

MISSING = "-"
REAL_CORPUS = "real corpus"
COLUMNS = (
    "style acc",
    "content acc",
    "copy rate",
    "stance acc",
    "stance divergence",
    "belief dominance",
    "perplexity dominance",
    "homogeneity (cosine)",
    "fluency NLL",
    "distinct-2",
)
JUDGE_COLUMN = "judge win vs prompt"  # only when Claude judged the run

HOW_TO_READ = """\
**Style vs content attribution.** A classifier trained on the personas' real writing guesses who \
wrote each answer. *Style* sees only how things are said (function words, punctuation, rhythm); \
*content* sees only what is said (topic words, claims). Chance is 1/personas = {chance}; the \
"{real}" row is the same classifier on real held-out text, the best to hope for.

**Numbers in brackets** are 95 % bootstrap intervals: the prompts are resampled with \
replacement (all answers to one prompt together), so they show how far a figure could move with \
other prompts of the same kind. Two variants whose intervals overlap are not shown to differ.

**Copy rate guards attribution.** A recited training paragraph is attributed to its persona \
perfectly, so every answer is checked against its persona's training texts: *copy rate* is the \
share of answers that share a long run of consecutive words with one of them (the run length is \
`evaluation.copy_run_words`). A variant with a high copy rate scores by memory, not by persona; \
its attribution without the copying answers is in its section below, and promotion refuses an \
adapter above `registry.promotion.max_copy_rate`.

**Conflict fidelity measures reasoning where personas disagree.** Each conflict of \
`data/conflicts.yaml` is a question two personas would answer differently; an answer holds its \
persona's side when, after reading it, the base model finds the persona's own assumption more \
likely than the opponent's (chance 0.50; its interval resamples conflicts). *Answer divergence* \
is the mean cosine between the two sides' answers to the same question: lower means they said \
more different things.

**Stance and belief measure reasoning, not style.** *Stance acc* is the share of a persona's \
contested positions where its variant prefers the persona's side over the counterclaim (chance \
0.5); *stance divergence* is the share of persona pairs that disagree in their contracts whose \
variants also take opposite sides. *Belief dominance* is the share of personas whose variant finds \
its own persona's positions the most likely; *perplexity dominance* is the same on the held-out \
corpus (lower perplexity wins). Both have chance 1/personas = {chance}, move in steps of \
1/personas, and so do their intervals (which resample each column's positions or texts). \
Positions that training states (`training.position_rows`: those not on a held-out topic) are \
left out of both: only held-out positions and the conflicts' assumptions are judged.

**Homogeneity** is the mean pairwise cosine between the personas' answers to the same prompt: \
lower means more different voices; compare it with the {real} row.

**Fluency must be read beside the persona scores.** *Fluency NLL* is the answers' mean token \
negative log-likelihood under the base model (higher = stranger text) and *distinct-2* the share \
of unique word bigrams (lower = more repetition). A variant that gains persona scores while its \
NLL jumps or its distinct-2 collapses is probably producing degenerate text, not a persona."""


# Formatting -----------------------------------------------------------------------------------


def format_number(value: float | None, digits: int = 2) -> str:
    """`value` with `digits` decimals, or `"-"` when it was not computed."""
    return MISSING if value is None else f"{value:.{digits}f}"


def _with_interval(cell: str, interval: list[float] | None) -> str:
    if interval is None or cell == MISSING:
        return cell
    return f"{cell} [{interval[0]:.2f}, {interval[1]:.2f}]"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def persona_chance(report: EvalReport) -> float | None:
    """Chance level for guessing the persona (1/personas), or None without personas."""
    return 1 / len(report.personas) if report.personas else None


def variant_names(report: EvalReport) -> list[str]:
    """The report's variants in order, then any variant that has metrics but is not listed."""
    return list(report.variants) + [v for v in report.metrics if v not in report.variants]


def metric_values(metrics: VariantMetrics | None) -> dict[str, float | None]:
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
        m.memorisation.copy_rate if m.memorisation else None,
        stance.accuracy if stance else None,
        stance.divergence if stance else None,
        m.belief.diagonal_dominance if m.belief else None,
        m.perplexity.diagonal_dominance if m.perplexity else None,
        m.homogeneity.mean_pairwise_cosine if m.homogeneity else None,
        fluency.nll_under_base if fluency else None,
        fluency.distinct_2 if fluency else None,
    )
    return dict(zip(COLUMNS, values, strict=True))


def real_values(report: EvalReport) -> dict[str, float | None] | None:
    """The real corpus' numbers (attribution ceilings, homogeneity), or None when there are none."""
    style, content, homog = report.ceiling_style, report.ceiling_content, report.real_homogeneity
    if style is None and content is None and homog is None:
        return None
    values: dict[str, float | None] = dict.fromkeys(COLUMNS)
    values["style acc"] = style.accuracy if style else None
    values["content acc"] = content.accuracy if content else None
    values["homogeneity (cosine)"] = homog.mean_pairwise_cosine if homog else None
    return values


def metric_intervals(metrics: VariantMetrics | None) -> dict[str, list[float]]:
    """One variant's 95 % bootstrap intervals, keyed by `COLUMNS`, where they were computed."""
    m = metrics or VariantMetrics(personas=[], answers=0)
    found = {
        "style acc": m.attribution_style.accuracy_interval if m.attribution_style else None,
        "content acc": m.attribution_content.accuracy_interval if m.attribution_content else None,
        "copy rate": m.memorisation.copy_rate_interval if m.memorisation else None,
        "stance acc": m.stance.accuracy_interval if m.stance else None,
        "belief dominance": m.belief.dominance_interval if m.belief else None,
        "perplexity dominance": m.perplexity.dominance_interval if m.perplexity else None,
        "homogeneity (cosine)": m.homogeneity.cosine_interval if m.homogeneity else None,
        "fluency NLL": m.fluency.nll_interval if m.fluency else None,
    }
    return {column: interval for column, interval in found.items() if interval}


def summary_rows(report: EvalReport, with_intervals: bool = False) -> list[dict[str, str]]:
    """The summary table: one row per variant, then the real corpus row when it has data.

    Args:
        report: The evaluation report.
        with_intervals: follow each number that has one by its 95 % interval, `0.62 [0.50,
            0.75]`.

    Returns:
        One dict per row with the key `variant` and then every name in `COLUMNS`, in order;
        numbers have two decimals and a value that was not computed is `"-"`.
    """
    rows = []
    judged = any(m.judge for m in report.metrics.values())
    for name in variant_names(report):
        values = metric_values(report.metrics.get(name))
        intervals = metric_intervals(report.metrics.get(name)) if with_intervals else {}
        rows.append(
            {"variant": name}
            | {k: _with_interval(format_number(v), intervals.get(k)) for k, v in values.items()}
        )
        if judged:
            judge = report.metrics[name].judge if name in report.metrics else None
            rows[-1][JUDGE_COLUMN] = format_number(judge.win_rate if judge else None)
    real = real_values(report)
    if real is not None:
        rows.append({"variant": REAL_CORPUS} | {k: format_number(v) for k, v in real.items()})
        if judged:
            rows[-1][JUDGE_COLUMN] = "-"
    return rows


# Markdown -------------------------------------------------------------------------------------


def _attribution_lines(title: str, attribution: Attribution) -> list[str]:
    head = (
        f"**{title}**: accuracy {format_number(attribution.accuracy)}, "
        f"macro-F1 {format_number(attribution.macro_f1)} (rows: true persona, columns: predicted)"
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
        "diagonal dominance "
        f"{_with_interval(format_number(matrix.diagonal_dominance), matrix.dominance_interval)} "
        f"(chance {format_number(chance)})"
    )
    rows = [
        [label, *map(format_number, row)]
        for label, row in zip(matrix.labels, matrix.values, strict=True)
    ]
    return [head, "", *_table(["variant / data", *matrix.labels], rows), ""]


def _conflict_line(c: ConflictFidelity) -> str:
    kinds = ", ".join(f"{kind} {format_number(v)}" for kind, v in sorted(c.by_kind.items()))
    return (
        f"- Conflicts: {c.answers} answers to {c.conflicts} conflict questions hold their "
        f"persona's side in {_with_interval(format_number(c.likelihood), c.likelihood_interval)} "
        "by likelihood, "
        f"{_with_interval(format_number(c.embedding), c.embedding_interval)} by embedding "
        f"(chance 0.50){f'; by kind: {kinds}' if kinds else ''}; answer divergence (A-B "
        f"cosine) {_with_interval(format_number(c.answer_cosine), c.answer_cosine_interval)}"
    )


def _variant_lines(
    name: str, m: VariantMetrics, chance: float | None, has_conflicts: bool = False
) -> list[str]:
    lines = [f"### {name}", "", f"{m.answers} answers for {len(m.personas)} personas.", ""]
    if m.fluency:
        f = m.fluency
        lines += [
            "- Fluency: NLL under base "
            f"{_with_interval(format_number(f.nll_under_base), f.nll_interval)}, distinct-1 "
            f"{format_number(f.distinct_1)}, distinct-2 {format_number(f.distinct_2)}, "
            f"mean words {format_number(f.mean_words, 1)}"
        ]
    if m.homogeneity:
        h = m.homogeneity
        lines += [
            "- Homogeneity: mean pairwise cosine "
            f"{_with_interval(format_number(h.mean_pairwise_cosine), h.cosine_interval)}, "
            f"effective rank {format_number(h.effective_rank)} of {len(m.personas)} "
            f"({h.backend})"
        ]
    if m.stance:
        s = m.stance
        lines += [
            f"- Stance: accuracy {_with_interval(format_number(s.accuracy), s.accuracy_interval)} "
            f"over {s.positions} positions, "
            f"divergence {format_number(s.divergence)}"
        ]
    if m.memorisation:
        c = m.memorisation
        lines += [
            f"- Copying: {c.copied} of {m.answers} answers share {c.run_words}+ words in a row "
            f"with their persona's training texts (copy rate {format_number(c.copy_rate)}; "
            f"longest run {c.max_run} words; 8-gram share {format_number(c.mean_ngram_share)}); "
            f"attribution without them: style {format_number(c.style_accuracy_without_copies)}, "
            f"content {format_number(c.content_accuracy_without_copies)}"
        ]
    if m.conflicts:
        lines += [_conflict_line(m.conflicts)]
    if m.judge:
        j = m.judge
        lines += [
            f"- Judge ({j.model}): more like the persona than `{j.against}` in "
            f"{format_number(j.win_rate)} of {j.judgements} verdicts "
            f"(chance 0.50; {j.invalid} invalid)"
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
    if has_conflicts:
        parts["conflicts"] = m.conflicts
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


def _lead_lines(report: EvalReport, guards: Guards | None, chance_text: str) -> list[str]:
    """The headline table, each variant's verdict and what was held out: what a reader needs."""
    rows = headline_rows(report)
    if not rows:
        return []
    lines = ["## Headline", ""]
    lines += _table(list(rows[0]), [list(row.values()) for row in rows])
    lines += [
        "",
        "In brackets: 95 % bootstrap intervals, resampling prompts (conflicts for conflict "
        "fidelity and divergence, positions for stance, each column's texts or positions for "
        f"belief dominance). Chance: 0.50 for conflict fidelity and stance, {chance_text} for "
        "belief dominance and attribution. Lower is better for copy rate, fluency NLL and "
        "answer divergence.",
        "",
        f"## Verdict against prompt-only (`{BASELINE}`)",
        "",
    ]
    lines += [f"- {verdict.text}" for verdict in verdicts(report, guards)]
    return lines + ["", heldout_sentence(report), ""]


def render_markdown(
    report: EvalReport, plots: Mapping[str, str] | None = None, guards: Guards | None = None
) -> str:
    """Render the report as markdown, for people.

    Args:
        report: The evaluation report.
        plots: Plot name -> file name relative to the markdown file (as
            `foundry.evaluation.plots.write_plots` wrote them); each is embedded under a "Plots"
            heading. None or empty: no such section.
        guards: the promotion gate's fluency and copy limits the verdicts check
            (`Guards.from_config`); None leaves them unchecked, and the verdicts say so.

    Returns:
        The markdown text, ending with a newline.
    """
    chance = persona_chance(report)
    chance_text = f"1/{len(report.personas)} = {format_number(chance)}" if chance else MISSING
    rows = summary_rows(report, with_intervals=True)
    lines = _header_lines(report) + _lead_lines(report, guards, chance_text)
    lines += ["## All numbers", ""]
    if rows:
        lines += _table(list(rows[0]), [list(row.values()) for row in rows])
    else:
        lines.append("No variant was evaluated.")
    lines += ["", f"Chance for attribution, belief and perplexity: {chance_text}.", ""]
    how_to_read = HOW_TO_READ.format(chance=format_number(chance), real=REAL_CORPUS)
    lines += ["## How to read this", "", how_to_read]
    lines.append("")
    for name in variant_names(report):
        if name in report.metrics:
            lines += _variant_lines(name, report.metrics[name], chance, bool(report.conflict_ids))
    if report.ceiling_style or report.ceiling_content:
        lines += [f"### {REAL_CORPUS} (attribution ceiling)", ""]
        for title, ceiling in (
            ("Style", report.ceiling_style),
            ("Content", report.ceiling_content),
        ):
            if ceiling:
                lines += _attribution_lines(f"{title} attribution", ceiling)
    lines += derived_lines(report)
    if plots:
        lines += ["## Plots", ""] + [f"![{name}]({file})\n" for name, file in plots.items()]
    if report.skipped:
        lines += ["## Skipped", ""]
        lines += [f"- `{s.variant}` for `{s.persona}`: {s.reason}" for s in report.skipped]
        lines.append("")
    if report.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in report.notes] + [""]
    return "\n".join(lines).rstrip("\n") + "\n"
