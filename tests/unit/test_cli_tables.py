"""Tables printed to a file or a CI log come out whole, not cut at 80 columns."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from foundry.cli.common import print_table

CELLS = [f"cell-{i}-with-a-long-value" for i in range(8)]


def _table() -> Table:
    table = Table()
    for i in range(len(CELLS)):
        table.add_column(f"column {i}")
    table.add_row(*CELLS)
    return table


@pytest.mark.parametrize("is_terminal", [True, False], ids=["terminal", "piped"])
def test_a_wide_table_is_cut_only_on_a_narrow_terminal(is_terminal):
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=is_terminal, color_system=None)

    print_table(_table(), console)

    text = out.getvalue()
    whole = all(cell in text for cell in CELLS)
    assert whole is not is_terminal, text
    if not is_terminal:
        assert max(len(line) for line in text.splitlines()) > 80
