"""The evaluation report's markdown and plots, from a hand-made `EvalReport`."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from foundry.evaluation.plots import write_plots
from foundry.evaluation.report import COLUMNS, render_markdown, summary_rows
from foundry.evaluation.schema import (
    Attribution,
    EvalReport,
    Fluency,
    Homogeneity,
    Matrix,
    Skipped,
    Stance,
    VariantMetrics,
)
from foundry.evaluation.verdict import Guards

PERSONAS = ["ayn-rand", "karl-marx", "adam-smith"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _attribution(accuracy: float, diagonal: int, macro_f1: float = 0.5) -> Attribution:
    off = 8 - diagonal
    confusion = [[diagonal if i == j else 0 for j in range(3)] for i in range(3)]
    for i in range(3):
        confusion[i][(i + 1) % 3] = off
    return Attribution(accuracy=accuracy, macro_f1=macro_f1, labels=PERSONAS, confusion=confusion)


def _matrix(dominance: float, lower_is_better: bool) -> Matrix:
    values = [[12.5, 20.25, 31.0], [25.0, 10.75, 28.5], [30.0, 22.0, 14.125]]
    if not lower_is_better:
        values = [[-v / 10 for v in row] for row in values]
    return Matrix(
        labels=PERSONAS,
        values=values,
        diagonal_dominance=dominance,
        lower_is_better=lower_is_better,
    )


def _report() -> EvalReport:
    base = VariantMetrics(
        personas=PERSONAS,
        answers=12,
        attribution_style=_attribution(0.3125, diagonal=3),
        fluency=Fluency(nll_under_base=2.25, distinct_1=0.5, distinct_2=0.8149, mean_words=90.0),
        homogeneity=Homogeneity(mean_pairwise_cosine=0.8123, effective_rank=1.4, backend="tfidf"),
    )
    sft = VariantMetrics(
        personas=PERSONAS,
        answers=12,
        attribution_style=_attribution(0.875, diagonal=7, macro_f1=0.84),
        attribution_content=_attribution(0.6, diagonal=5),
        fluency=Fluency(nll_under_base=None, distinct_1=0.5, distinct_2=0.71, mean_words=80.5),
        homogeneity=Homogeneity(mean_pairwise_cosine=0.41, effective_rank=2.6, backend="minilm"),
        perplexity=_matrix(1.0, lower_is_better=True),
        belief=_matrix(0.6667, lower_is_better=False),
        stance=Stance(accuracy=0.8, positions=10, divergence=0.6667),
    )
    dpo = VariantMetrics(
        personas=PERSONAS,
        answers=12,
        stance=Stance(accuracy=None, positions=0, divergence=None),
        belief=_matrix(0.3333, lower_is_better=False),
    )
    return EvalReport(
        created_at="2025-01-01T00:00:00Z",
        data_rev="abc123",
        base_model="tiny-gpt2",
        personas=PERSONAS,
        variants=["base", "prompt", "sft", "dpo"],
        heldout_topics=["t1", "t2", "t3", "t4"],
        ceiling_style=_attribution(0.9583, diagonal=8),
        real_homogeneity=Homogeneity(
            mean_pairwise_cosine=0.25, effective_rank=2.9, backend="tfidf"
        ),
        metrics={"base": base, "sft": sft, "dpo": dpo},
        skipped=[Skipped(persona="karl-marx", variant="prompt", reason="no system prompt file")],
        notes=["fluency NLL for sft: base model could not be loaded"],
    )


def _row(markdown: str, name: str) -> list[str]:
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {name} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def _png_size(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.size


@pytest.fixture(scope="module")
def plots(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    out_dir = tmp_path_factory.mktemp("plots")
    return out_dir, write_plots(_report(), out_dir)


def test_summary_rows_format_every_variant_then_the_real_corpus():
    rows = summary_rows(_report())
    assert [row["variant"] for row in rows] == ["base", "prompt", "sft", "dpo", "real corpus"]
    assert all(list(row) == ["variant", *COLUMNS] for row in rows)
    assert rows[2]["style acc"] == "0.88"
    assert set(rows[1].values()) == {"prompt", "-"}


def test_markdown_summary_has_exact_cells_for_each_variant():
    full = render_markdown(_report())
    markdown = full[full.index("## All numbers") :]
    header = _row(markdown, "variant")
    assert header == ["variant", *COLUMNS]
    assert _row(markdown, "base") == [
        "base", "0.31", "-", "-", "-", "-", "-", "-", "0.81", "2.25", "0.81",
    ]  # fmt: skip
    assert _row(markdown, "prompt") == ["prompt"] + ["-"] * len(COLUMNS)
    assert _row(markdown, "sft") == [
        "sft", "0.88", "0.60", "-", "0.80", "0.67", "0.67", "1.00", "0.41", "-", "0.71",
    ]  # fmt: skip
    assert _row(markdown, "dpo") == ["dpo", "-", "-", "-", "-", "-", "0.33", "-", "-", "-", "-"]
    assert _row(markdown, "real corpus") == [
        "real corpus", "0.96", "-", "-", "-", "-", "-", "-", "0.25", "-", "-",
    ]  # fmt: skip


def test_the_report_leads_with_the_headline_and_a_verdict_per_variant():
    report = _report()
    report.metrics["sft"].fluency.nll_under_base = 3.5
    report.metrics["sft"].fluency.nll_interval = [3.25, 3.75]
    report.metrics["sft"].belief.dominance_interval = [0.3333, 1.0]
    markdown = render_markdown(report, guards=Guards(max_fluency_nll=8.0, max_copy_rate=0.1))
    order = ["## Headline", "## Verdict", "classifiers were fitted", "## All numbers",
             "## How to read this", "### base"]  # fmt: skip
    assert [markdown.index(part) for part in order] == sorted(markdown.index(p) for p in order)
    headline = markdown[markdown.index("## Headline") : markdown.index("## Verdict")]
    assert _row(headline, "sft") == [
        "sft", "-", "0.80", "0.67 [0.33, 1.00]", "0.60", "0.88", "-", "3.50 [3.25, 3.75]", "-",
    ]  # fmt: skip
    verdict = markdown[markdown.index("## Verdict") : markdown.index("## All numbers")]
    assert "- sft: beliefs not measured (no conflicts were asked" in verdict
    assert "within the fluency guard (NLL 3.50 [3.25, 3.75] <= 8.00)" in verdict
    assert "- prompt:" not in verdict  # skipped: no metrics, no verdict
    sft = markdown[markdown.index("### sft") : markdown.index("### dpo")]
    assert "diagonal dominance 0.67 [0.33, 1.00] (chance 0.33)" in sft
    assert "NLL under base 3.50 [3.25, 3.75]" in sft


def test_markdown_explains_chance_and_lists_context_skipped_and_notes():
    markdown = render_markdown(_report())
    assert markdown.startswith("# Persona evaluation report (abc123)")
    assert "- Base model: `tiny-gpt2`" in markdown
    assert "- Personas (3): ayn-rand, karl-marx, adam-smith" in markdown
    assert "- Held-out prompts: 4" in markdown
    assert "Chance for attribution, belief and perplexity: 1/3 = 0.33." in markdown
    assert "## How to read this" in markdown
    for phrase in ("Style vs content", "reasoning, not style", "lower means more different"):
        assert phrase in markdown
    assert "- `prompt` for `karl-marx`: no system prompt file" in markdown
    assert "## Notes\n\n- fluency NLL for sft: base model could not be loaded" in markdown


def test_markdown_has_per_variant_confusion_tables():
    markdown = render_markdown(_report())
    sft = markdown[markdown.index("### sft") : markdown.index("### dpo")]
    assert "**Style attribution**: accuracy 0.88, macro-F1 0.84" in sft
    assert "| true / predicted | ayn-rand | karl-marx | adam-smith |" in sft
    assert "| ayn-rand | 7 | 1 | 0 |" in sft
    assert "diagonal dominance 1.00 (chance 0.33)" in sft
    assert "| karl-marx | 25.00 | 10.75 | 28.50 |" in sft
    dpo = markdown[markdown.index("### dpo") :]
    assert "- Not computed: fluency, homogeneity, style attribution" in dpo


def test_markdown_embeds_plots_under_a_heading():
    markdown = render_markdown(_report(), {"variants": "plots/variants.png"})
    assert "## Plots\n\n![variants](plots/variants.png)" in markdown
    assert "## Plots" not in render_markdown(_report())


def test_an_empty_report_renders():
    report = EvalReport(
        created_at="2025-01-01T00:00:00Z",
        base_model="tiny-gpt2",
        personas=[],
        variants=[],
        heldout_topics=[],
    )
    markdown = render_markdown(report)
    assert "No variant was evaluated." in markdown
    assert "unversioned" in markdown
    assert summary_rows(report) == []


def test_a_report_without_metrics_draws_no_plot(tmp_path):
    report = _report().model_copy(
        update={"metrics": {}, "ceiling_style": None, "real_homogeneity": None}
    )
    assert "| sft | - |" in render_markdown(report)
    assert write_plots(report, tmp_path / "plots") == {}
    assert not (tmp_path / "plots").exists()


def test_write_plots_draws_only_plots_with_data(plots):
    out_dir, paths = plots
    expected = {
        "confusion_base",
        "confusion_sft",
        "belief_sft",
        "perplexity_sft",
        "belief_dpo",
        "confusion_real_corpus",
        "variants",
    }
    assert set(paths) == expected
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(f"{n}.png" for n in expected)


def test_write_plots_writes_valid_readable_pngs(plots):
    _, paths = plots
    for name, path in paths.items():
        width, height = _png_size(path)
        assert width > 300 and height > 250, name
    assert _png_size(paths["confusion_sft"])[0] > _png_size(paths["confusion_base"])[0]
    assert _png_size(paths["variants"])[0] > 900


def test_write_plots_leaves_no_open_pyplot_figure(tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    write_plots(_report(), tmp_path)
    assert plt.get_fignums() == before


def test_an_infinite_perplexity_is_shown_not_dropped(tmp_path):
    report = _report()
    report.metrics["sft"].perplexity.values[0][1] = float("inf")
    assert "| ayn-rand | 12.50 | inf | 31.00 |" in render_markdown(report)
    assert _png_size(write_plots(report, tmp_path)["perplexity_sft"])[0] > 300
