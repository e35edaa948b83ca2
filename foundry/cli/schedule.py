"""`foundry schedule list|serve|deploy`: the Prefect deployments in the project's `prefect.yaml`.

Registered on the app in `foundry.cli.main`. The project root is the folder of `--config` (default:
the working directory). `list` needs no server; `serve` and `deploy` need a lasting Prefect server
(`foundry ui`, then export the PREFECT_API_URL it prints).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from foundry.cli.common import ConfigOption, console, load_cli_config, print_table, user_errors

schedule_app = typer.Typer(
    help="Prefect schedules from prefect.yaml: list them, serve them here, or deploy them.",
    no_args_is_help=True,
)
NameOption = Annotated[
    list[str] | None,
    typer.Option(
        "--name", "-n", help="Deployment name in prefect.yaml; repeat for several (default: all)."
    ),
]


@schedule_app.command("list", epilog="Example: foundry schedule list")
def list_cmd(config: ConfigOption = None) -> None:
    """The deployments in prefect.yaml, checked against their flows (no server needed)."""
    from foundry.orchestration.prefect_file import PREFECT_FILE, load_deployments

    cfg = load_cli_config(config)
    with user_errors():
        specs = load_deployments(cfg.root)
    table = Table(title=f"{cfg.root / PREFECT_FILE}")
    for column in ("deployment", "flow", "schedule", "work pool", "parameters"):
        table.add_column(column, no_wrap=column == "deployment")
    for spec in specs:
        table.add_row(
            spec.name,
            spec.flow_name,
            "\n".join(s.describe() for s in spec.schedules) or "-",
            spec.work_pool + (f" / {spec.work_queue}" if spec.work_queue else ""),
            json.dumps(spec.parameters) if spec.parameters else "-",
        )
    print_table(table, console)


@schedule_app.command("serve", epilog="Example: foundry schedule serve --name data-watch")
def serve_cmd(config: ConfigOption = None, name: NameOption = None) -> None:
    """Run the schedules in this process until Ctrl-C; runs start in the project folder."""
    from foundry.orchestration.schedules import serve

    cfg = load_cli_config(config)
    with user_errors():
        serve(cfg.root, name)


@schedule_app.command(
    "deploy",
    epilog="Example: foundry schedule deploy --name nightly-retrain --work-pool gpu-k8s "
    "--code-dir /opt/foundry",
)
def deploy_cmd(
    config: ConfigOption = None,
    name: NameOption = None,
    work_pool: Annotated[
        str | None,
        typer.Option(
            help="Work pool for every selected deployment (default: each one's work_pool.name; "
            "foundry-local is created as a process pool when missing)."
        ),
    ] = None,
    code_dir: Annotated[
        str | None,
        typer.Option(
            help="Folder the worker runs flows in (default: the project root); for container "
            "pools, where the image holds the project."
        ),
    ] = None,
) -> None:
    """Register the deployments on the Prefect server; a worker then runs them on schedule."""
    from foundry.orchestration.schedules import register

    cfg = load_cli_config(config)
    with user_errors(), console.status("Registering deployments with Prefect..."):
        registered = register(cfg.root, name, work_pool, code_dir)
    table = Table(title="registered deployments")
    for column in ("deployment", "flow", "schedule", "next run", "work pool"):
        table.add_column(column, no_wrap=column == "deployment")
    for row in registered:
        next_run = row.next_run.strftime("%Y-%m-%d %H:%M %Z") if row.next_run else "-"
        table.add_row(
            row.name,
            row.flow_name,
            "\n".join(row.schedules) or "-",
            next_run,
            row.work_pool + (" (created)" if row.pool_created else ""),
        )
    print_table(table, console)
    for pool in sorted({row.work_pool for row in registered}):
        console.print(f"Start a worker to run them: prefect worker start --pool {pool}")
