"""The data commands of `foundry`: `init`, `validate`, `import faultline`, `data version`,
`personas list` and `config show`.

Registered on the app in `foundry.cli.main`: `init` and `validate` as commands, `import_app`,
`data_app`, `personas_app` and `config_app` as command groups.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.table import Table

from foundry.cli.common import (
    ConfigOption,
    PersonaOption,
    console,
    err_console,
    load_cli_config,
    print_table,
    user_errors,
)
from foundry.cli.problems import persona_table, problem_table
from foundry.errors import Problem

import_app = typer.Typer(help="Import personas from other products.", no_args_is_help=True)
data_app = typer.Typer(help="Data versions (DVC).", no_args_is_help=True)
personas_app = typer.Typer(help="Inspect personas.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


def init(config: ConfigOption = None) -> None:
    """Seed data/ from the sample (or pull it from the DVC remote), set up DVC, version the data."""
    from foundry.data.versions import init_project

    cfg = load_cli_config(config)
    with user_errors(), console.status("Setting up data and DVC..."):
        result = init_project(cfg)
    seeded = {
        "examples": f"seeded {cfg.data_dir} from {cfg.examples_dir}",
        "remote": f"pulled {cfg.data_dir} from the DVC remote",
        "": f"kept the personas already in {cfg.data_dir}",
    }[result.seeded_from]
    note = f" ({result.pull_note}, as in a fresh clone)" if result.pull_note else ""
    console.print(f"[green]✓[/] {seeded}{note}")
    console.print(
        f"[green]✓[/] DVC {'initialised' if result.dvc_initialised else 'ready'}; "
        f"remote {result.remote_url}"
    )
    console.print(
        f"[green]✓[/] {len(result.version.personas)} persona(s), "
        f"{result.version.nfiles} files versioned"
    )
    console.print(f"data version: {result.version.data_rev}")


def validate(config: ConfigOption = None, persona: PersonaOption = None) -> None:
    """Check every persona's contract and corpus, and the debate topics; exit 1 on errors."""
    from foundry.data.validation import validate_personas

    cfg = load_cli_config(config)
    with user_errors():
        summary = validate_personas(cfg, persona)
    for prepared in summary.personas:
        console.print(persona_table(prepared))
    if summary.topic_problems or not summary.topics:
        console.print(problem_table("topics", summary.topic_problems))
    if summary.conflict_problems:
        console.print(problem_table("conflicts", summary.conflict_problems))
    errors = summary.error_count
    warnings = len(summary.problems) - errors
    kinds = Counter(c.kind for c in summary.conflicts)
    console.print(
        f"{len(summary.conflicts)} conflict(s) (test data)"
        + (f": {', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}" if kinds else "")
    )
    console.print(
        f"{len(summary.personas)} persona(s), {len(summary.topics)} topic(s): "
        f"{errors} error(s), {warnings} warning(s)"
    )
    if not summary.personas:
        err_console.print(
            f"[red]no personas in {cfg.personas_dir}[/]; run `foundry init` or "
            "`foundry import faultline DIR`"
        )
        raise typer.Exit(1)
    if errors:
        raise typer.Exit(1)


@import_app.command(
    "faultline",
    epilog="Example: foundry import faultline ../faultline/personas --deck tech-investors",
)
def import_faultline_cmd(
    source: Annotated[
        Path,
        typer.Argument(
            help="Faultline folder with contracts/ and corpus/.", exists=True, file_okay=False
        ),
    ],
    deck: Annotated[str | None, typer.Option(help="Import only this deck's personas.")] = None,
    force: Annotated[
        bool, typer.Option(help="Replace personas not imported from Faultline.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Import Faultline persona contracts, corpora and worldviews into data/personas/."""
    from foundry.data.faultline import import_faultline
    from foundry.data.validation import prepare_persona

    cfg = load_cli_config(config)

    def check(folder: Path) -> list[Problem]:
        return prepare_persona(cfg, folder.name, persona_dir=folder).problems

    with user_errors(), console.status(f"Importing from {source}..."):
        report = import_faultline(source, cfg, deck=deck, force=force, validate=check)
    table = Table(title=f"Imported from {source}" + (f" (deck {deck})" if deck else ""))
    for column in ("persona", "name", "items", "positions", "trainable", "action"):
        table.add_column(column, no_wrap=column == "persona")
    for p in report.personas:
        table.add_row(
            p.slug,
            p.name,
            str(p.items),
            str(p.positions),
            "yes" if p.trainable else "[yellow]no[/]",
            "replaced" if p.replaced else "added",
        )
    print_table(table, console)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print("Next: `foundry validate`, then `foundry data version`.")


@data_app.command("version", epilog="Example: foundry data version")
def data_version(
    config: ConfigOption = None,
    push: Annotated[bool, typer.Option(help="Push to the DVC remote after adding.")] = True,
) -> None:
    """Record the current data/ with DVC (and push); the version is the last line printed."""
    from foundry.data.versions import version_data

    cfg = load_cli_config(config)
    with user_errors(), console.status("Versioning data with DVC..."):
        version = version_data(cfg, push=push)
    table = Table(title="Persona content hashes")
    table.add_column("persona")
    table.add_column("content hash")
    for slug, digest in version.personas.items():
        table.add_row(slug, digest)
    print_table(table, console)
    console.print(
        f"{version.nfiles} files, {version.size_bytes} bytes, "
        f"{'pushed' if version.pushed else 'not pushed'}"
    )
    console.print(version.data_rev, highlight=False)


@personas_app.command("list", epilog="Example: foundry personas list --plain")
def personas_list(
    config: ConfigOption = None,
    plain: Annotated[bool, typer.Option(help="One slug a line, nothing else.")] = False,
) -> None:
    """List the personas in data/personas/ with their reasoning method and positions."""
    from foundry.data.personas import discover_personas, load_contract

    cfg = load_cli_config(config)
    slugs = discover_personas(cfg.personas_dir)
    if plain:
        for slug in slugs:
            console.print(slug, highlight=False)
        return
    table = Table(title=f"Personas in {cfg.personas_dir}")
    for column in ("persona", "name", "reasoning method", "positions", "trainable"):
        table.add_column(column, no_wrap=column == "persona")
    for slug in slugs:
        contract, _ = load_contract(cfg.personas_dir / slug)
        if contract is None:
            table.add_row(slug, "[red]invalid contract (see foundry validate)[/]", "", "", "")
            continue
        method = contract.reasoning_method.name if contract.reasoning_method else "-"
        table.add_row(
            slug,
            contract.name,
            method,
            str(len(contract.positions)),
            "yes" if contract.trainable else "no",
        )
    print_table(table, console)
    if not slugs:
        console.print("No personas yet: run `foundry init` or `foundry import faultline DIR`.")


@config_app.command(
    "show", epilog="Example: FOUNDRY_PERSONAS__EVAL_FRACTION=0.2 foundry config show"
)
def config_show(config: ConfigOption = None) -> None:
    """Print the resolved configuration (file plus FOUNDRY_ overrides) with each key's meaning."""
    cfg = load_cli_config(config)
    console.print(f"# project root: {cfg.root}", highlight=False)
    console.print(f"# loaded from: {cfg.source or '(defaults: no foundry.yaml)'}", highlight=False)
    for section_name, section in cfg:
        console.print(f"{section_name}:", highlight=False)
        _print_section(section, indent="  ")


def _print_section(section: BaseModel, indent: str) -> None:
    for key, field in type(section).model_fields.items():
        value = getattr(section, key)
        if isinstance(value, BaseModel):
            console.print(f"{indent}{key}:", highlight=False)
            _print_section(value, indent + "  ")
            continue
        shown = str(value) if not isinstance(value, list) else f"[{', '.join(map(str, value))}]"
        console.print(
            f"{indent}{key}: {shown or repr('')}  # {field.description}",
            highlight=False,
            markup=False,
        )
