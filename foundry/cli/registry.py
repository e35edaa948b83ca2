"""`foundry registry list|show|promote|rollback`: the MLflow model registry, per persona.

Registered on the app in `foundry.cli.main`. Every command reads the store in
`registry.tracking_uri` (else MLFLOW_TRACKING_URI, else the project's `mlflow.db`).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from foundry.cli.common import ConfigOption, console, load_cli_config, print_table, user_errors

registry_app = typer.Typer(
    help="Persona adapters in the MLflow model registry: list, show, promote, roll back.",
    no_args_is_help=True,
)
SlugArgument = Annotated[str, typer.Argument(help="Persona slug, e.g. tobias-renn.")]
HEADLINE = ("content_recall", "style_recall", "belief_margin", "fluency_nll")


@registry_app.command("list", epilog="Example: foundry registry list")
def list_cmd(config: ConfigOption = None) -> None:
    """Every persona's registered model: versions, champion, challenger, key metrics, data."""
    from registry.tracking import open_client
    from registry.views import list_personas

    cfg = load_cli_config(config)
    with user_errors():
        rows = list_personas(open_client(cfg))
    table = Table(title="persona models")
    for column in ("model", "versions", "champion", "challenger", *HEADLINE, "data version"):
        table.add_column(column, justify="left" if column in ("model", "data version") else "right")
    for row in rows:
        metrics = row.get("metrics", {})
        table.add_row(
            f"persona-{row['persona']}",
            str(row["versions"]),
            _version(row.get("champion")),
            _version(row.get("challenger")),
            *(f"{metrics[k]:.2f}" if k in metrics else "-" for k in HEADLINE),
            str(row.get("data_rev") or "-")[:12],
        )
    if rows:
        print_table(table, console)
    else:
        console.print("no persona models registered yet; run `foundry run`")


@registry_app.command("show", epilog="Example: foundry registry show tobias-renn")
def show_cmd(slug: SlugArgument, config: ConfigOption = None) -> None:
    """One persona's versions with their aliases, lineage and promotion decisions."""
    from registry.tracking import open_client
    from registry.views import show_persona

    cfg = load_cli_config(config)
    with user_errors():
        info = show_persona(open_client(cfg), slug)
    table = Table(title=f"persona-{slug}")
    columns = ("version", "aliases", "decision", "data version", "git commit", "vector", "created")
    for column in columns:
        table.add_column(column)
    for version in info["versions"]:
        tags = version.get("tags", {})
        table.add_row(
            str(version["version"]),
            ", ".join(version.get("aliases", [])) or "-",
            tags.get("promotion.decision", "-"),
            tags.get("data_rev", "-")[:12],
            tags.get("git_commit", "-")[:12],
            _vector(tags),
            str(version.get("created", "")),
        )
    print_table(table, console)
    for version in info["versions"]:
        tags = version.get("tags", {})
        console.print(f"v{version['version']}: {_figures(tags) or 'no metrics'}")
        if "promotion.reasons" in tags:
            console.print(f"  decision: {tags['promotion.reasons']}")


def _figures(tags: dict[str, str]) -> str:
    """The metrics the gates read, each with its 95 % interval where it has one."""
    from types import SimpleNamespace

    from registry.models import version_intervals, version_metrics

    version = SimpleNamespace(tags=tags)
    intervals = version_intervals(version)
    figures = []
    for name, value in sorted(version_metrics(version).items()):
        bounds = intervals.get(name)
        span = f" [{bounds[0]:.2f}, {bounds[1]:.2f}]" if bounds else ""
        figures.append(f"{name} {value:.2f}{span}")
    return ", ".join(figures)


def _vector(tags: dict[str, str]) -> str:
    """`L<layer> a<steer>/<dpo+steer>` for a version registered with its persona vector."""
    if "vector.layer" not in tags:
        return "-"
    alphas = [tags.get(f"vector.alpha.{v}", "-") for v in ("steer", "dpo_steer")]
    return f"L{tags['vector.layer']} a{'/'.join(alphas)}"


@registry_app.command("promote", epilog="Example: foundry registry promote tobias-renn --version 3")
def promote_cmd(
    slug: SlugArgument,
    config: ConfigOption = None,
    version: Annotated[
        int | None, typer.Option(help="Version to promote (default: the challenger).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Promote even when the policy refuses (recorded as forced).")
    ] = False,
) -> None:
    """Make a version the champion if the promotion policy (or --force) allows it."""
    from registry.champions import promote_version
    from registry.tracking import open_client

    cfg = load_cli_config(config)
    with user_errors():
        decision = promote_version(open_client(cfg), slug, version, cfg.registry.promotion, force)
    for reason in decision.reasons:
        console.print(f"- {reason}")
    if not decision.promote:
        console.print(f"[red]refused:[/] persona-{slug} keeps its champion")
        raise typer.Exit(1)
    console.print(
        f"[green]persona-{slug}: champion updated{' (forced)' if decision.forced else ''}"
    )


@registry_app.command("rollback", epilog="Example: foundry registry rollback tobias-renn")
def rollback_cmd(slug: SlugArgument, config: ConfigOption = None) -> None:
    """Put the previous champion back (the change is recorded on both versions)."""
    from registry.champions import rollback
    from registry.tracking import open_client

    cfg = load_cli_config(config)
    with user_errors():
        demoted, restored = rollback(open_client(cfg), slug)
    console.print(f"persona-{slug}: champion v{demoted} -> v{restored}")


def _version(value: object) -> str:
    return f"v{value}" if value else "-"
