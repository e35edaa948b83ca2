"""`foundry run`'s closing summary reads whole in a narrow terminal and in a log file."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from foundry.cli import run as cli_run

PERSONAS = ["jonah-okafor", "marguerite-vale", "priya-castellanos", "tobias-renn"]


def _result() -> dict:
    return {
        "data_rev": "29a967de81100c91dbb047135e6fc642",
        "failed": {},
        "cost_usd": 0.0,
        "evaluation": {
            "folder": ".foundry/eval",
            "per_persona": {
                slug: {"content_recall": 0.8125, "style_recall": 0.6875, "fluency_nll": 4.4312}
                for slug in PERSONAS
            },
        },
        "personas": {
            slug: {
                "status": "retrained",
                "content_hash": "3f9a0c2b7d1e",
                "registry": {
                    "version": 1,
                    "decision": "promoted",
                    "champion": 1,
                    "reasons": [],
                },
                "steps": {"register": "done"},
                "seconds": 61.4,
            }
            for slug in PERSONAS
        },
    }


@pytest.mark.parametrize("is_terminal", [True, False], ids=["80-column terminal", "log file"])
def test_every_persona_row_is_one_unclipped_line(monkeypatch, is_terminal):
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=is_terminal, color_system=None)
    monkeypatch.setattr(cli_run, "console", console)

    cli_run.print_summary(_result(), 250.0)

    text = out.getvalue()
    assert "…" not in text, text
    for slug in PERSONAS:
        rows = [line for line in text.splitlines() if slug in line and "retrained" in line]
        assert len(rows) == 1, text
        assert all(cell in rows[0] for cell in ("0.81", "0.69", "4.43", "v1", "3f9a0c2b")), rows[0]
    header = next(line for line in text.splitlines() if "persona" in line and "status" in line)
    assert "content" in header and "NLL" in header and "champion" in header
    assert max(len(line) for line in text.splitlines()) <= 80
