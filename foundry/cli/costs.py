"""`foundry costs`: what a debate and a persona set-up cost per serving approach, as two tables
(approaches; the inputs, each measured in this project or a default) and optionally JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from foundry.atomic import write_text_atomic
from foundry.cli.common import ConfigOption, console, load_cli_config, user_errors
from foundry.costs.estimate import BATCH_DEBATES, ApproachCost, CostReport, estimate_costs


def costs(
    config: ConfigOption = None,
    turns: Annotated[
        int | None,
        typer.Option(min=1, help="Turns per debate (default: `costs.turns_per_debate`)."),
    ] = None,
    personas: Annotated[
        int | None,
        typer.Option(min=1, help="Personas per debate (default: `costs.personas_per_debate`)."),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the numbers to this JSON file.")
    ] = None,
) -> None:
    """Estimate the cost per debate and per persona set-up of each serving approach: a
    prompt-only API, serverless multi-LoRA, self-hosted vLLM, and persona-vector steering.

    Token counts come from this project (contracts, topics, synthetic turns, evaluation answers,
    training summaries) where they exist, else from `costs.default_*`; prices come from `costs:`
    and are example list prices: check them before deciding.
    """
    cfg = load_cli_config(config)
    with user_errors():
        report = estimate_costs(cfg, turns=turns, personas=personas)
    console.print(_approach_table(report))
    for note in _notes(report):
        console.print(f"  - {note}", highlight=False)
    console.print(_inputs_table(report))
    console.print(
        "Prices are example list prices from `costs:` in the config: check each against the "
        "provider's page. Inputs marked [bold]assumed[/] are not measured in this project (yet).",
        highlight=False,
    )
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(report.to_dict(), indent=2) + "\n")
        console.print(f"Wrote {json_path}", highlight=False)


def _approach_table(report: CostReport) -> Table:
    table = Table(
        title=f"Cost per debate: {report.turns_per_debate} turns, "
        f"{report.personas_per_debate} personas",
        caption="break-even: debates of the same personas after which the set-up is paid back "
        "against `prompt` (-: never, it is dearer per debate)",
    )
    table.add_column("approach", no_wrap=True)
    for column in ("per debate", "set-up/persona", f"per {BATCH_DEBATES}", "break-even"):
        table.add_column(column, justify="right", no_wrap=True)
    for approach in report.approaches:
        table.add_row(
            approach.name,
            _usd(approach.per_debate_usd),
            _usd(approach.setup_usd_per_persona),
            _usd(approach.per_1000_debates_usd),
            _break_even(approach),
        )
    return table


def _notes(report: CostReport) -> list[str]:
    return [
        f"{a.name}: {a.input_tokens:,} input ({a.cached_input_tokens:,} cached) and "
        f"{a.output_tokens:,} output tokens per debate; " + "; ".join(a.notes)
        for a in report.approaches
    ]


def _inputs_table(report: CostReport) -> Table:
    table = Table(title="Inputs")
    table.add_column("input", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("source")
    for measure in report.inputs.rows():
        kind = "measured" if measure.is_measured else "[bold]assumed[/]"
        value = f"{_number(measure.value)} {measure.unit}"
        table.add_row(measure.name, value, f"{kind}: {measure.source}")
    return table


def _break_even(approach: ApproachCost) -> str:
    if approach.name == "prompt":
        return ""
    if approach.break_even_debates is None:
        return "-"
    return f"{approach.break_even_debates:,.1f}"


def _usd(value: float) -> str:
    if value == 0:
        return "$0"
    if value >= 100:
        return f"${value:,.0f}"
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:.3g}"
