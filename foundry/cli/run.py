"""`foundry run`: the main job, the `retrain` flow, with a live view of each persona's steps and
a summary of what was retrained, what was cached, the metrics and the champions."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Annotated, Any

import typer
from rich import box
from rich.live import Live
from rich.table import Table

from foundry.cli.common import (
    ConfigOption,
    PersonaOption,
    console,
    err_console,
    load_cli_config,
    print_table,
    user_errors,
    wide_console,
)
from foundry.config import FoundryConfig
from foundry.orchestration.run_events import STEPS, StepEvent, listening

STATUS_STYLE = {
    "running": "[yellow]running[/]",
    "done": "[green]done[/]",
    "cached": "[cyan]cached[/]",
    "failed": "[bold red]FAILED[/]",
}


def run(
    config: ConfigOption = None,
    persona: PersonaOption = None,
    force: Annotated[
        bool, typer.Option(help="Redo every step, even those whose inputs did not change.")
    ] = False,
    deploy: Annotated[
        bool, typer.Option(help="Deploy new champions to `deploy.target` after promotion.")
    ] = False,
    provider: Annotated[
        str, typer.Option(help="Synthesis provider: anthropic, offline or local (default: config).")
    ] = "",
) -> None:
    """Run the main job (the `retrain` flow); a rerun redoes only what changed.

    Exits 1 when a persona failed: the others are still trained and registered, and the failed
    persona's champion stays as it was."""
    from flows.retrain import retrain

    cfg = load_cli_config(config)
    view = _StepView()
    started = time.perf_counter()
    with user_errors(), _prefect_api(cfg) as api, listening(view.update), _warnings_only():
        console.print(f"Prefect API: {api or 'a temporary local server (start one: foundry ui)'}")
        if cfg.orchestration.executor == "ray":
            address = cfg.orchestration.ray.address or "a local Ray started for this run"
            shared = cfg.paths.shared_url or "the project folder (shared filesystem)"
            console.print(f"Model steps on Ray: {address}; artifacts through {shared}")
        shown = wide_console(console)  # in a log, the progress table's last frame stays whole
        with Live(view.render(), console=shown, refresh_per_second=2, transient=False) as live:
            view.live = live
            state = retrain(
                config_path=str(cfg.source) if cfg.source else None,
                personas=persona,
                force=force,
                deploy=deploy,
                provider=provider,
                return_state=True,
            )
            live.update(view.render())
        if not console.is_terminal:  # rich ends a live display's last line only on a terminal
            console.line()
        result = state.result(raise_on_failure=False)
        if isinstance(result, BaseException):
            raise result
    print_summary(result, time.perf_counter() - started)
    if result["failed"]:
        raise typer.Exit(1)


def print_summary(result: dict[str, Any], seconds: float) -> None:
    from flows.retrain_summary import persona_rows
    from registry.promotion import decision_text

    # Short headers, no outer edge and the data hash's first 8 characters, so a row of the
    # sample's personas stays one line in an 80-column terminal; the caption names the columns.
    table = Table(
        title=f"Retrain: data {result['data_rev']}",
        caption="content, style: attribution recall; NLL: fluency, lower is better",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in ("persona", "data", "status", "content", "style", "NLL", "champion", "s"):
        table.add_column(column, no_wrap=True, justify="right" if column == "s" else "left")
    for row in persona_rows(result):
        table.add_row(
            row["persona"],
            row["data hash"][:8],
            STATUS_STYLE.get(row["status"], row["status"]) if row["status"] != "retrained"
            else "[green]retrained[/]",
            _cell(row["content recall"]),
            _cell(row["style recall"]),
            _cell(row["fluency nll"]),
            f"v{row['champion']}" if row["champion"] else "-",
            _cell(row["seconds"]),
        )  # fmt: skip
    print_table(table, console)
    for slug, why in result["failed"].items():
        err_console.print(f"[bold red]{slug} failed[/] at {why}; its champion is unchanged")
    for slug, row in result["personas"].items():
        reg = row.get("registry") or {}
        if reg and row["steps"].get("register") == "done":
            why = decision_text(reg.get("reasons") or [], reg.get("notes") or [])
            console.print(f"persona-{slug} v{reg['version']}: {reg['decision']} ({why})")
    evaluation = result.get("evaluation") or {}
    console.print(f"Done in {seconds:.0f} s; synthesis cost ${result['cost_usd']:.4f}.")
    console.print("Where to look next:")
    if evaluation.get("folder"):
        console.print(f"  evaluation report  {evaluation['folder']}/report.md")
    console.print("  registry           foundry registry list")
    console.print("  serve champions    foundry deploy --target local, then foundry serve")
    console.print("  Prefect and MLflow UIs  foundry ui  (the run's `retrain-summary` artifact)")


class _StepView:
    """persona x step statuses, redrawn as events come in."""

    def __init__(self) -> None:
        self.cells: dict[str, dict[str, str]] = {}
        self.shared: dict[str, str] = {}
        self.live: Live | None = None
        self.lock = threading.Lock()

    def update(self, event: StepEvent) -> None:
        with self.lock:
            text = STATUS_STYLE.get(event.status, event.status)
            if event.status == "done" and event.seconds and event.seconds >= 1:
                text = f"[green]done {event.seconds:.0f}s[/]"
            if event.persona:
                self.cells.setdefault(event.persona, {})[event.step] = text
            else:
                self.shared[event.step] = text
        if self.live is not None:
            self.live.update(self.render())

    def render(self) -> Table:
        table = Table(title="retrain", show_edge=False)
        table.add_column("persona")
        with self.lock:
            # Optional steps get a column only when the run has them.
            present = {step for cells in self.cells.values() for step in cells}
            steps = [s for s in STEPS if s not in ("vectors", "merge", "deploy") or s in present]
            for step in steps:
                table.add_column(step)
            for slug, cells in self.cells.items():
                shared = {} if STATUS_STYLE["failed"] in cells.values() else self.shared
                row = [cells.get(step) or shared.get(step, "") for step in steps]
                table.add_row(slug, *row)
        if not self.cells:
            table.add_row("[dim]checking the data and the cache...[/]", *[""] * len(steps))
        return table


@contextmanager
def _warnings_only() -> Iterator[None]:
    """Only warnings on the terminal while the live table draws: step lines go to Prefect."""
    import logging

    handlers = logging.getLogger().handlers
    levels = [handler.level for handler in handlers]
    for handler in handlers:
        handler.setLevel(max(handler.level, logging.WARNING))
    try:
        yield
    finally:
        for handler, level in zip(handlers, levels, strict=True):
            handler.setLevel(level)


@contextmanager
def _prefect_api(config: FoundryConfig) -> Iterator[str]:
    """Report to the server `foundry ui` started, when PREFECT_API_URL is not set already."""
    url = os.environ.get("PREFECT_API_URL", "")
    context: Any = nullcontext()
    if not url:
        from foundry.orchestration.ui_servers import running_prefect_api

        url = running_prefect_api(config) or ""
        if url:
            from prefect.settings import PREFECT_API_URL, temporary_settings

            context = temporary_settings(updates={PREFECT_API_URL: url})
    with context:
        yield url


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)
