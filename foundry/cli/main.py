"""The `foundry` command line: one Typer app; each command loads the config, calls one function
or flow, and prints a summary. Errors a user can fix exit with status 1 and a message, no traceback.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.logging import RichHandler
from rich.table import Table

from foundry.cli.common import (
    ConfigOption,
    PersonaOption,
    console,
    err_console,
    load_cli_config,
    user_errors,
)
from foundry.errors import Problem

app = typer.Typer(
    help="Persona Foundry: per-persona weights and activations for multi-agent debate.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
import_app = typer.Typer(help="Import personas from other products.", no_args_is_help=True)
data_app = typer.Typer(help="Data versions (DVC).", no_args_is_help=True)
personas_app = typer.Typer(help="Inspect personas.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
prompts_app = typer.Typer(
    help="Persona system prompts for prompt-only systems.", no_args_is_help=True
)
app.add_typer(import_app, name="import")
app.add_typer(data_app, name="data")
app.add_typer(personas_app, name="personas")
app.add_typer(config_app, name="config")
app.add_typer(prompts_app, name="prompts")


@app.command(epilog="Example: foundry init")
def init(config: ConfigOption = None) -> None:
    """Seed data/ from the sample (or pull it from the DVC remote), set up DVC, version the data."""
    from tasks.versioning import init_project

    cfg = load_cli_config(config)
    with user_errors(), console.status("Setting up data and DVC..."):
        result = init_project(cfg)
    seeded = {
        "examples": f"seeded {cfg.data_dir} from {cfg.examples_dir}",
        "remote": f"pulled {cfg.data_dir} from the DVC remote",
        "": f"kept the personas already in {cfg.data_dir}",
    }[result.seeded_from]
    console.print(f"[green]✓[/] {seeded}")
    console.print(
        f"[green]✓[/] DVC {'initialised' if result.dvc_initialised else 'ready'}; "
        f"remote {result.remote_url}"
    )
    console.print(
        f"[green]✓[/] {len(result.version.personas)} persona(s), "
        f"{result.version.nfiles} files versioned"
    )
    console.print(f"data version: {result.version.data_rev}")


@app.command(epilog="Example: foundry validate --persona tobias-renn")
def validate(config: ConfigOption = None, persona: PersonaOption = None) -> None:
    """Check every persona's contract and corpus, and the debate topics; exit 1 on errors."""
    from foundry.data.validation import validate_personas

    cfg = load_cli_config(config)
    with user_errors():
        summary = validate_personas(cfg, persona)
    for prepared in summary.personas:
        console.print(_persona_table(prepared))
    if summary.topic_problems or not summary.topics:
        console.print(_problem_table("topics", summary.topic_problems))
    errors = summary.error_count
    warnings = len(summary.problems) - errors
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


def _persona_table(prepared) -> Table:  # noqa: ANN001 - foundry.data.validation.PreparedPersona
    name = prepared.contract.name if prepared.contract else "(no valid contract)"
    stats = prepared.stats
    table = Table(title=f"{prepared.slug}: {name}", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row(
        "items",
        f"{stats.items} ({stats.train} train, {stats.eval} eval) from {stats.files} file(s)",
    )
    table.add_row("kinds", ", ".join(f"{k} {v}" for k, v in sorted(stats.by_kind.items())) or "-")
    table.add_row("~tokens", str(stats.approx_tokens))
    table.add_row(
        "dropped",
        f"{stats.exact_duplicates} exact and {stats.near_duplicates} near "
        f"duplicates, {stats.empty_dropped} empty",
    )
    if prepared.contract:
        method = prepared.contract.reasoning_method
        table.add_row("reasoning", method.name if method else "[yellow]missing[/]")
        table.add_row("positions", str(len(prepared.contract.positions)))
    for problem in prepared.problems:
        table.add_row(_level(problem), _describe(problem))
    if not prepared.problems:
        table.add_row("[green]ok[/]", "no problems")
    return table


def _problem_table(title: str, problems: list[Problem]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("level")
    table.add_column("problem")
    for problem in problems:
        table.add_row(_level(problem), _describe(problem))
    return table


def _level(problem: Problem) -> str:
    return "[red]error[/]" if problem.level == "error" else "[yellow]warning[/]"


def _describe(problem: Problem) -> str:
    location = _short_path(problem.path) if problem.path else ""
    if problem.where:
        location = f"{location}, {problem.where}" if location else problem.where
    text = f"{location}: {problem.message}" if location else problem.message
    return f"{text}\n  fix: {problem.fix}" if problem.fix else text


def _short_path(path: Path) -> str:
    """`path` relative to the working directory when it lies below it (easier to read)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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
    console.print(table)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print("Next: `foundry validate`, then `foundry data version`.")


@data_app.command("version", epilog="Example: foundry data version")
def data_version(
    config: ConfigOption = None,
    push: Annotated[bool, typer.Option(help="Push to the DVC remote after adding.")] = True,
) -> None:
    """Record the current data/ with DVC (and push); the version is the last line printed."""
    from tasks.versioning import version_data

    cfg = load_cli_config(config)
    with user_errors(), console.status("Versioning data with DVC..."):
        version = version_data(cfg, push=push)
    table = Table(title="Persona content hashes")
    table.add_column("persona")
    table.add_column("content hash")
    for slug, digest in version.personas.items():
        table.add_row(slug, digest)
    console.print(table)
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
    console.print(table)
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


def main() -> None:
    """Console-script entry point: quiet third-party telemetry, log warnings, run the app."""
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Our own progress bars replace the libraries' tqdm bars and notices.
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # Commands draw their own progress; Prefect's per-task lines still reach its API and UI.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )
    app()


def _register_model_commands() -> None:
    from foundry.cli import models as cli_models
    from foundry.cli import run as cli_run
    from foundry.cli import ui as cli_ui

    app.command(
        "run",
        epilog="Example: foundry run   (again: only what changed is redone; --force redoes all)",
    )(cli_run.run)
    app.command("ui", epilog="Example: foundry ui   (then: foundry ui --stop)")(cli_ui.ui)
    from foundry.cli.schedule import schedule_app

    app.add_typer(schedule_app, name="schedule")

    app.command(epilog="Example: foundry train --persona tobias-renn --stage all", name="train")(
        cli_models.train
    )
    app.command(
        epilog="Example: foundry generate --persona tobias-renn --variant prompt --variant dpo "
        '"Will AI capex pay off?"',
        name="generate",
    )(cli_models.generate)
    from foundry.cli import synth as cli_synth

    app.command(
        epilog="Example: foundry synth --persona tobias-renn --n 40 --provider offline",
        name="synth",
    )(cli_synth.synth)
    app.command(
        epilog="Example: foundry pairs --persona tobias-renn --export together --out pairs.jsonl",
        name="pairs",
    )(cli_synth.pairs)
    prompts_app.command("export", epilog="Example: foundry prompts export --out prompts/")(
        cli_synth.prompts_export
    )
    from foundry.cli import eval as cli_eval
    from foundry.cli.registry import registry_app

    app.add_typer(registry_app, name="registry")

    app.command(
        "eval",
        epilog="Example: foundry eval --variant prompt --variant dpo --json metrics.json",
    )(cli_eval.evaluate)
    from foundry.cli import serve as cli_serve
    from foundry.cli import vectors as cli_vectors

    app.command(
        "serve", epilog="Example: foundry serve --port 8000   (then any OpenAI client, model=SLUG)"
    )(cli_serve.serve)

    app.add_typer(cli_vectors.vectors_app, name="vectors")
    from foundry.cli.deploy import deploy_app

    app.add_typer(deploy_app, name="deploy")
    from foundry.cli import costs as cli_costs

    app.command("costs", epilog="Example: foundry costs --turns 20 --personas 3 --json costs.json")(
        cli_costs.costs
    )
    app.command("monitor", epilog="Example: foundry monitor debate.jsonl --json scores.json")(
        cli_vectors.monitor
    )


_register_model_commands()
