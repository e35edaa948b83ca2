"""The retrain summary artifact leads its evaluation table with the report's headline metrics,
each with its 95 % interval."""

from __future__ import annotations

from flows.retrain_summary import render_summary


def _result(evaluation: dict) -> dict:
    return {
        "data_rev": "1ab6ca94",
        "seconds": 12.0,
        "failed": {},
        "personas": {},
        "evaluation": evaluation,
    }


def test_the_evaluation_table_shows_headline_metrics_with_their_intervals():
    evaluation = {
        "folder": ".foundry/eval",
        "metrics": {
            "eval.dpo_steer.conflict_fidelity": 0.52,
            "eval.dpo_steer.copy_rate": 0.0,
            "eval.base.conflict_fidelity": 0.55,
        },
        "intervals": {"eval.dpo_steer.conflict_fidelity": [0.5, 0.55]},
    }

    text = render_summary(_result(evaluation))

    header = next(line for line in text.splitlines() if line.startswith("| variant |"))
    assert header.split("|")[2].strip() == "conflict fidelity"
    assert "copy rate" in header and "A-B cosine" in header
    row = next(line for line in text.splitlines() if line.startswith("| dpo_steer |"))
    assert row.split("|")[2].strip() == "0.52 [0.50, 0.55]"
    assert row.split("|")[7].strip() == "0.00"  # copy rate: a point, no interval given
    base = next(line for line in text.splitlines() if line.startswith("| base |"))
    assert base.split("|")[2].strip() == "0.55" and base.split("|")[3].strip() == "-"
