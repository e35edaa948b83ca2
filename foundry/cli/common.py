"""What every `foundry` command shares: the consoles, the shared options, config loading, and
turning errors a user can fix into one red line and exit status 1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, RenderableType

from foundry.config import FoundryConfig, load_config
from foundry.errors import FoundryError

console = Console()
err_console = Console(stderr=True)
PIPED_WIDTH = 240  # columns a table gets when the output is not a terminal (a file, a CI log)


def print_table(table: RenderableType, out: Console | None = None) -> None:
    """Print a table whole on `out` (default: stdout's console): on a terminal at its width,
    elsewhere wide enough not to be cut (rich would squeeze it into 80 columns)."""
    wide_console(out or console).print(table)


def wide_console(out: Console) -> Console:
    """`out` itself on a terminal; elsewhere a console on the same file with room for tables."""
    if out.is_terminal:
        return out
    return Console(file=out.file, width=max(out.width, PIPED_WIDTH), color_system=None)


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Project config file (default: ./foundry.yaml).",
        envvar="FOUNDRY_CONFIG",
    ),
]
PersonaOption = Annotated[
    list[str] | None,
    typer.Option("--persona", "-p", help="Persona slug; repeat for several (default: all)."),
]


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn errors a user can fix into a red message and exit status 1."""
    try:
        yield
    except FoundryError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def load_cli_config(config_path: Path | None) -> FoundryConfig:
    """Load the config or exit 1 with the reason."""
    with user_errors():
        return load_config(config_path)
