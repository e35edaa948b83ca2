"""`foundry ui`: a local Prefect server and MLflow UI in the background, and `--stop` to end them.

Registered on the app in `foundry.cli.main`; the work is done in `foundry.orchestration.ui_servers`.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from foundry.cli.common import ConfigOption, console, err_console, load_cli_config, user_errors
from foundry.orchestration.ui_processes import StopOutcome
from foundry.orchestration.ui_records import LABELS, ServerStartError, state_path
from foundry.orchestration.ui_servers import StartResult, start_servers, stop_servers


def ui(
    config: ConfigOption = None,
    prefect_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port of the Prefect server and its UI.")
    ] = 4200,
    mlflow_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port of the MLflow UI (the project's store).")
    ] = 5000,
    host: Annotated[
        str, typer.Option(help="Address both servers listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    stop: Annotated[
        bool, typer.Option("--stop", help="Stop the servers an earlier `foundry ui` started.")
    ] = False,
) -> None:
    """Start a local Prefect server and MLflow UI in the background (`--stop` ends them)."""
    cfg = load_cli_config(config)
    if stop:
        with user_errors():
            outcomes = stop_servers(cfg)
        _print_stopped(outcomes, str(state_path(cfg)))
        return
    with user_errors():
        try:
            with console.status("starting the Prefect server and the MLflow UI..."):
                result = start_servers(
                    cfg, host=host, prefect_port=prefect_port, mlflow_port=mlflow_port
                )
        except ServerStartError as exc:
            _print_start_failure(exc)
            raise typer.Exit(1) from None
    _print_started(result, prefect_port, mlflow_port)


def _print_start_failure(exc: ServerStartError) -> None:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
    err_console.print(f"last lines of {exc.log_path}:", highlight=False, markup=False)
    err_console.print(exc.log_tail or "(empty)", highlight=False, markup=False)


def _print_started(result: StartResult, prefect_port: int, mlflow_port: int) -> None:
    prefect, mlflow = result.servers["prefect"], result.servers["mlflow"]
    if result.already_running:
        console.print(
            f"already running (since {prefect.started_at}, pids {prefect.pid} and {mlflow.pid}); "
            "nothing new started",
            highlight=False,
            soft_wrap=True,
        )
        if (prefect.port, mlflow.port) != (prefect_port, mlflow_port):
            console.print(
                "[yellow]note:[/] they use other ports than asked; run `foundry ui --stop` first "
                "to move them",
                soft_wrap=True,
            )
    for record, title in ((prefect, "Prefect UI"), (mlflow, "MLflow UI ")):
        took = result.ready_s.get(record.name)
        detail = f"ready in {took:.1f} s, " if took is not None else ""
        console.print(
            f"{title}  {record.url}  [dim]({detail}log: {escape(str(record.log_path))})[/]",
            highlight=False,
            soft_wrap=True,
        )
    console.print("Send flow runs to this Prefect server:", highlight=False)
    console.print(f"  export PREFECT_API_URL={prefect.url}/api", highlight=False, soft_wrap=True)
    console.print("Stop both with: foundry ui --stop", highlight=False)


def _print_stopped(outcomes: list[StopOutcome], state_file: str) -> None:
    if not outcomes:
        console.print("no servers recorded; nothing to stop", highlight=False)
        return
    for outcome in outcomes:
        record = outcome.record
        label = LABELS[record.name]
        if outcome.was_running:
            how = " (forced with SIGKILL)" if outcome.forced else ""
            console.print(f"stopped the {label} (pid {record.pid}, {record.url}){how}")
        else:
            console.print(f"the {label} (pid {record.pid}) was no longer running")
    console.print(f"removed {escape(state_file)}", highlight=False, soft_wrap=True)
