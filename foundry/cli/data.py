"""The data commands of `foundry`: `init`, `validate`, `import faultline`, `data version`,
`personas list`, `personas show` and `config show`.

Registered on the app in `foundry.cli.main`: `init` and `validate` as commands, `import_app`,
`data_app`, `personas_app` and `config_app` as command groups.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import BaseModel
from rich.markup import escape
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

if TYPE_CHECKING:
    from foundry.data.beliefs import BeliefGraph

import_app = typer.Typer(help="Import personas from other products.", no_args_is_help=True)
data_app = typer.Typer(help="Data versions (DVC).", no_args_is_help=True)
personas_app = typer.Typer(help="Inspect personas.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


def init(
    config: ConfigOption = None,
    empty: Annotated[
        bool,
        typer.Option(
            "--empty",
            help="Start data/ with no sample personas or topics, to bring your own (personas "
            "already in data/ are kept).",
        ),
    ] = False,
) -> None:
    """Seed data/ from the sample (or pull it from the DVC remote), set up DVC, version the data."""
    from foundry.data.versions import init_project

    cfg = load_cli_config(config)
    with user_errors(), console.status("Setting up data and DVC..."):
        result = init_project(cfg, empty=empty)
    seeded = {
        "examples": f"seeded {cfg.data_dir} from {cfg.examples_dir}",
        "remote": f"pulled {cfg.data_dir} from the DVC remote",
        "empty": f"started an empty {cfg.data_dir}: add data/personas/<slug>/ (contract.yaml and "
        "corpus/) and data/topics.yaml, or run `foundry import faultline DIR`",
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
    for prepared in summary.derived:
        blend = prepared.contract.derived_from  # type: ignore[union-attr]
        console.print(f"{prepared.slug}: derived persona ({blend.label()}); no corpus")
        if prepared.problems:
            console.print(problem_table(prepared.slug, prepared.problems))
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
        f"{len(summary.personas)} persona(s)"
        + (f" and {len(summary.derived)} derived" if summary.derived else "")
        + f", {len(summary.topics)} topic(s): "
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
    """Import Faultline contracts, corpora, worldviews and belief graphs into data/personas/,
    their conflicts into data/conflicts.yaml and their debate topics into data/topics.yaml."""
    from foundry.data.faultline import import_faultline
    from foundry.data.validation import prepare_persona

    cfg = load_cli_config(config)

    def check(folder: Path) -> list[Problem]:
        return prepare_persona(cfg, folder.name, persona_dir=folder).problems

    with user_errors(), console.status(f"Importing from {source}..."):
        report = import_faultline(source, cfg, deck=deck, force=force, validate=check)
    table = Table(title=f"Imported from {source}" + (f" (deck {deck})" if deck else ""))
    columns = ("persona", "faultline id", "name", "items", "positions", "beliefs", "trainable")
    for column in (*columns, "action"):
        table.add_column(column, no_wrap=column == "persona")
    for p in report.personas:
        table.add_row(
            p.slug,
            escape(p.source_id),
            escape(p.name),
            str(p.items),
            str(p.positions),
            f"{p.belief_nodes} nodes, {p.belief_edges} edges" if p.belief_nodes else "-",
            "yes" if p.trainable else "[yellow]no[/]",
            "replaced" if p.replaced else "added",
        )
    print_table(table, console)
    if report.conflicts is not None:
        console.print(report.conflicts.summary(), highlight=False, markup=False)
    if report.topics is not None:
        console.print(report.topics.summary(), highlight=False, markup=False)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
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


@personas_app.command("show", epilog="Example: foundry personas show ada-quill --edges 40")
def personas_show(
    slug: Annotated[str, typer.Argument(help="Persona slug (`foundry personas list --plain`).")],
    edges: Annotated[
        int, typer.Option(min=0, help="Belief edges to print; the rest are counted.")
    ] = 20,
    config: ConfigOption = None,
) -> None:
    """Print a persona's contract summary and its belief graph; exit 1 if either is invalid."""
    from foundry.data.beliefs import BELIEFS_FILENAME, load_beliefs
    from foundry.data.personas import discover_personas, require_contract, select_personas
    from foundry.data.validation import prepare_persona

    cfg = load_cli_config(config)
    with user_errors():
        select_personas(discover_personas(cfg.personas_dir), [slug], cfg.personas_dir)
        contract = require_contract(cfg.persona_dir(slug))
        items = prepare_persona(cfg, slug).stats.items
    method = contract.reasoning_method
    lines = [
        f"[bold]{escape(contract.name)}[/] ({contract.slug})",
        f"handle: {escape(contract.handle or '-')}",
        f"source: {contract.source}"
        + (f", id {escape(contract.source_id)}" if contract.source_id else ""),
        f"reasoning method: {escape(method.name) if method else '[yellow]missing[/]'}",
        *[f"  {i}. {escape(step)}" for i, step in enumerate(method.steps if method else [], 1)],
        f"constitution: {len(contract.constitution)} principle(s)",
        *[f"  - {escape(principle)}" for principle in contract.constitution],
        f"positions: {len(contract.positions)}",
        f"corpus items: {items}",
    ]
    for line in lines:
        console.print(line, highlight=False)
    path = cfg.persona_dir(slug) / BELIEFS_FILENAME
    if not path.is_file():
        console.print("belief graph: none (Faultline's beliefs/<Name>.json brings one)")
        return
    graph, problems = load_beliefs(path)
    for problem in problems:
        color = "red" if problem.level == "error" else "yellow"
        console.print(f"[{color}]{problem.level}:[/] {escape(str(problem))}", highlight=False)
    if graph is None:
        raise typer.Exit(1)
    _print_beliefs(graph, edges)
    if any(p.level == "error" for p in problems):
        raise typer.Exit(1)


def _print_beliefs(graph: BeliefGraph, max_edges: int) -> None:
    """Node counts by type, then up to `max_edges` edges as "A --supports (0.80)--> B"."""
    counts = ", ".join(f"{kind} {n}" for kind, n in graph.node_counts().items())
    console.print(
        f"belief graph: {len(graph.nodes)} node(s) ({counts or 'none'}), "
        f"{len(graph.edges)} edge(s)",
        highlight=False,
    )
    concepts = {node.id: node.concept for node in graph.nodes}
    for edge in graph.edges[:max_edges]:
        verb = "supports" if edge.polarity == 1 else "opposes"
        start = concepts.get(edge.from_node, edge.from_node)
        end = concepts.get(edge.to_node, edge.to_node)
        console.print(
            f"  {start} --{verb} ({edge.confidence:.2f})--> {end}", highlight=False, markup=False
        )
    if len(graph.edges) > max_edges:
        console.print(f"  ... {len(graph.edges) - max_edges} more", highlight=False)


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
