"""Evaluation reports side by side (`foundry.evaluation.comparison`, `foundry compare`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundry.cli.main import app
from foundry.evaluation.comparison import ComparisonError, compare_reports, comparison_markdown
from foundry.evaluation.schema import EvalReport

PERSONAS = ["a", "b"]


def _report(fidelity: float, interval: list[float], confusion: list[list[int]]) -> EvalReport:
    right = sum(confusion[i][i] for i in range(2)) / sum(map(sum, confusion))
    return EvalReport.model_validate(
        {
            "created_at": "2026-12-06T00:00:00",
            "base_model": "tiny",
            "personas": PERSONAS,
            "variants": ["dpo"],
            "heldout_topics": ["t1", "t2"],
            "metrics": {
                "prompt": {
                    "personas": PERSONAS,
                    "answers": 4,
                    "conflicts": {
                        "conflicts": 3,
                        "answers": 6,
                        "likelihood": 0.3,
                        "likelihood_interval": [0.25, 0.35],
                    },  # fmt: skip
                },
                "dpo": {
                    "personas": PERSONAS,
                    "answers": 4,
                    "attribution_content": {
                        "accuracy": right,
                        "macro_f1": right,
                        "labels": PERSONAS,
                        "confusion": confusion,
                        "accuracy_interval": [right - 0.1, right + 0.1],
                        "recall_intervals": {"a": [0.1, 0.9]},
                    },  # fmt: skip
                    "conflicts": {
                        "conflicts": 3,
                        "answers": 6,
                        "likelihood": fidelity,
                        "likelihood_interval": interval,
                    },  # fmt: skip
                },
            },
        }
    )


def test_a_difference_is_claimed_only_where_intervals_are_apart() -> None:
    single = _report(0.40, [0.35, 0.45], [[3, 1], [2, 2]])
    experts = _report(0.60, [0.55, 0.65], [[4, 0], [2, 2]])
    overlapping = _report(0.50, [0.44, 0.56], [[3, 1], [2, 2]])
    comparison = compare_reports({"single": single, "experts": experts}, "dpo")
    assert comparison.cells["conflict fidelity"]["experts"] == (0.60, [0.55, 0.65])
    assert comparison.difference("conflict fidelity") == "single < experts"
    assert comparison.cells["content recall: a"]["single"] == (0.75, [0.1, 0.9])
    assert comparison.cells["content recall: a"]["experts"] == (1.0, [0.1, 0.9])
    assert comparison.cells["content recall: b"]["experts"] == (0.5, None)
    assert "no difference" in comparison.difference("content recall: a")
    close = compare_reports({"single": single, "other": overlapping}, "dpo")
    assert "no difference" in close.difference("conflict fidelity")
    with_baseline = compare_reports({"single": single, "experts": experts}, "dpo", "prompt")
    assert with_baseline.labels == ["prompt (single)", "single", "experts"]
    assert with_baseline.cells["conflict fidelity"]["prompt (single)"] == (0.30, [0.25, 0.35])
    # [0.25, 0.35] and [0.35, 0.45] touch: not apart, so no difference is claimed there.
    assert with_baseline.difference("conflict fidelity") == (
        "prompt (single) < experts; single < experts"
    )
    table = comparison_markdown(comparison)
    assert (
        "| conflict fidelity | 0.40 [0.35, 0.45] | 0.60 [0.55, 0.65] | single < experts |" in table
    )


def test_reports_on_different_prompts_are_refused() -> None:
    single = _report(0.40, [0.35, 0.45], [[3, 1], [2, 2]])
    other = single.model_copy(update={"heldout_topics": ["t1", "t3"]})
    with pytest.raises(ComparisonError, match="heldout_topics"):
        compare_reports({"x": single, "y": other}, "dpo")
    with pytest.raises(ComparisonError, match="no 'sft' variant"):
        compare_reports({"x": single, "y": single}, "sft")


def test_compare_command_writes_the_table_and_plot(tmp_path: Path) -> None:
    for name, value in (("single", 0.4), ("experts", 0.6)):
        folder = tmp_path / name
        folder.mkdir()
        report = _report(value, [value - 0.05, value + 0.05], [[3, 1], [2, 2]])
        (folder / "metrics.json").write_text(report.model_dump_json())
    out = tmp_path / "out"
    args = ["compare", str(tmp_path / "single"), str(tmp_path / "experts"), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "single < experts" in (out / "compare.md").read_text()
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    result = CliRunner().invoke(app, [*args, "--label", "only-one"])
    assert result.exit_code != 0 and "1 label(s) for 2 report(s)" in result.output
