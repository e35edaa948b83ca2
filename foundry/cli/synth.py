"""`foundry synth`, `foundry pairs` and `foundry prompts export`: the data the adapters learn from.

Registered on the app in `foundry.cli.main`. Each generation round shows a progress bar; each
command ends with a table of what was made, what was filtered out and why, and what it cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
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
from foundry.config import FoundryConfig

ProviderOption = Annotated[
    str,
    typer.Option(
        "--provider",
        help="anthropic, offline or local (default: `synthesis.provider`; auto means anthropic "
        "when ANTHROPIC_API_KEY is set, else offline).",
    ),
]
BudgetOption = Annotated[
    float | None,
    typer.Option(
        "--budget", help="Most dollars this run may spend (default: synthesis.budget_usd)."
    ),
]


@contextmanager
def phase_bars() -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Yield `start(label, jobs)`, which adds a bar and returns its per-job advance hook."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:

        def start(label: str, jobs: int) -> Callable[[int], None]:
            task_id = progress.add_task(label, total=jobs)
            return lambda done: progress.advance(task_id, done)

        yield start


def synth(
    config: ConfigOption = None,
    persona: PersonaOption = None,
    n: Annotated[
        int | None,
        typer.Option("--n", min=1, help="Turns per persona (default: turns_per_persona)."),
    ] = None,
    provider: ProviderOption = "",
    budget: BudgetOption = None,
    prompts: Annotated[
        Path | None,
        typer.Option(help="Debate prompts YAML ({topics: [{id, prompt}]}; default: topics.yaml)."),
    ] = None,
) -> None:
    """Generate synthetic debate turns grounded in each persona's corpus and reasoning method."""
    from foundry.config import load_settings
    from foundry.synthesis.turn_synthesis import synthesize
    from foundry.training.base_model import ensure_base

    cfg = load_cli_config(config)
    with user_errors(), phase_bars() as bars:
        result = synthesize(
            cfg, load_settings(), personas=persona, count=n, provider=provider,
            budget_usd=budget, topics_path=prompts, load_base=lambda: ensure_base(cfg),
            progress=bars,
        )  # fmt: skip
    table = Table(title=f"synthesis: {result.provider} ({result.model}, {result.mode})")
    for column in ("persona", "planned", "cached", "made", "kept", "filtered out (why)", "cost $"):
        table.add_column(column, justify="left" if column[:3] in ("per", "fil") else "right")
    for slug, row in result.personas.items():
        why = ", ".join(f"{k} {v}" for k, v in sorted(row.rejected.items())) or "-"
        kept = f"{row.accepted} ({row.kept_by_floor} by floor)" if row.kept_by_floor else ""
        table.add_row(
            slug, str(row.planned), str(row.reused), str(row.generated), kept or str(row.accepted),
            why, f"{row.cost_usd:.4f}",
        )  # fmt: skip
    print_table(table, console)
    for slug, row in result.personas.items():
        for note in row.notes:
            console.print(f"[yellow]{slug}:[/] {escape(note)}", highlight=False)
    for slug, row in result.personas.items():
        if row.failed or row.skipped_for_budget:
            console.print(
                f"[yellow]{slug}:[/] {row.failed} failed, {row.skipped_for_budget} not started "
                "(budget)"
            )
    for failure in result.failures:
        console.print(f"[yellow]failed:[/] {failure}")
    if result.stopped_by_budget:
        console.print(
            f"[yellow]stopped at the ${result.budget_usd:.2f} budget[/]: everything paid for is "
            "saved; rerun with a larger --budget to make the rest"
        )
    console.print(
        f"spent ${result.cost_usd:.4f} in {result.duration_s:.1f} s, {result.retries} retries; "
        f"turns in {cfg.data_dir / 'synthetic'}/<persona>/turns.jsonl"
    )
    failed = sum(row.failed for row in result.personas.values())
    if failed:
        err_console.print(
            f"[red]{failed} request(s) failed[/] (reasons above); what was made is saved: rerun "
            "`foundry synth` to retry only the missing ones"
        )
        raise typer.Exit(1)


def pairs(
    config: ConfigOption = None,
    persona: PersonaOption = None,
    provider: Annotated[
        str,
        typer.Option(
            "--provider",
            help="Who writes the generic and violation negatives: anthropic, or offline/local "
            "(the base model prompted with the contract). Default: `synthesis.provider`.",
        ),
    ] = "",
    budget: BudgetOption = None,
    export: Annotated[
        Literal["trl", "together"] | None,
        typer.Option(help="Also write the pairs in this format to --out."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="File for --export (JSONL).")] = None,
) -> None:
    """Build DPO preference pairs (chosen vs rejected) from the synthetic turns."""
    from foundry.config import load_settings
    from foundry.synthesis.pair_building import build_pairs
    from foundry.synthesis.pair_sets import export_pairs
    from foundry.training.base_model import ensure_base

    if export and out is None:
        raise typer.BadParameter("--export needs --out FILE", param_hint="--out")
    cfg = load_cli_config(config)
    with user_errors(), phase_bars() as bars:
        result = build_pairs(
            cfg, load_settings(), personas=persona, provider=provider, budget_usd=budget,
            load_base=lambda: ensure_base(cfg), progress=bars,
        )  # fmt: skip
        exported = export_pairs(cfg, list(result.personas), export, out) if export and out else 0
    strategies = sorted({k for row in result.personas.values() for k in row if k != "validation"})
    table = Table(title=f"preference pairs (negatives by {result.provider})")
    table.add_column("persona")
    for name in [*strategies, "validation split", "file"]:
        table.add_column(name, justify="right" if name != "file" else "left")
    for slug, row in result.personas.items():
        cells = [str(row.get(name, 0)) for name in strategies]
        table.add_row(
            slug, *cells, str(row.get("validation", 0)), _relative(result.paths[slug], cfg.root)
        )
    print_table(table, console)
    for warning in result.warnings.values():
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    console.print(f"spent ${result.cost_usd:.4f}")
    if export and out:
        console.print(f"exported {exported} pair(s) in {export} format to {out}")


def _relative(path: str, root: Path) -> str:
    """`path` relative to the project root when it is inside it (short table cells)."""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def prompts_export(
    config: ConfigOption = None,
    persona: PersonaOption = None,
    export_format: Annotated[
        Literal["markdown", "faultline"],
        typer.Option(
            "--format",
            help="markdown: <slug>.md enhanced system prompts in a folder; faultline: one JSON "
            "list of {name, system_prompt, id} for Faultline's `--personas-json`.",
        ),
    ] = "markdown",
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for markdown (default: prompts/), file for faultline (default: "
            "personas.json)."
        ),
    ] = None,
    base_url: Annotated[
        str,
        typer.Option(
            help="faultline only: an OpenAI-compatible endpoint serving the adapters (e.g. "
            "http://127.0.0.1:8000/v1 for `foundry serve`); each entry then names its adapter "
            "(`model`, `base_url`) instead of carrying the contract as system prompt."
        ),
    ] = "",
    target: Annotated[
        Literal["local", "vllm", "together", "fireworks"] | None,
        typer.Option(
            help="With --base-url: where the adapters are served, which gives each `model` name "
            "(local: the slug; vllm, together, fireworks: the name `foundry deploy` recorded). "
            "Default: local."
        ),
    ] = None,
) -> None:
    """Write each persona's system prompt for another engine: enhanced prompts (contract,
    reasoning method, constitution) as markdown, or Faultline's personas JSON."""
    if export_format == "markdown" and (base_url or target):
        raise typer.BadParameter(
            "--base-url and --target apply to --format faultline only", param_hint="--format"
        )
    if target and not base_url:
        raise typer.BadParameter(
            "--target picks the served model names; give the endpoint with --base-url URL",
            param_hint="--base-url",
        )
    if base_url and not base_url.startswith(("http://", "https://")):
        raise typer.BadParameter(
            f"expected an http(s) URL such as http://127.0.0.1:8000/v1, got {base_url!r}",
            param_hint="--base-url",
        )
    cfg = load_cli_config(config)
    if export_format == "faultline":
        _export_faultline(cfg, persona, out or Path("personas.json"), base_url, target or "local")
        return
    from foundry.synthesis.system_prompts import export_system_prompts

    folder = out or Path("prompts")
    with user_errors():
        written = export_system_prompts(cfg, persona, folder)
    for path in written:
        console.print(f"[green]✓[/] {path}")
    console.print(f"{len(written)} system prompt(s) in {folder}")


def _export_faultline(
    cfg: FoundryConfig, persona: list[str] | None, out: Path, base_url: str, target: str
) -> None:
    """Write Faultline's personas JSON; with `base_url`, each entry names its served adapter."""
    from foundry.synthesis.system_prompts import ServedModels, export_faultline_personas

    models: ServedModels | None = None
    if base_url:
        from deploy.records import served_models

        models = partial(served_models, cfg, target=target)
    with user_errors():
        count = export_faultline_personas(cfg, persona, out, models, base_url)
    if base_url:
        console.print(
            f"{count} persona(s) in {out}: each names its adapter on {target} at {base_url}, "
            "with an empty system_prompt (the adapter is the persona)",
            highlight=False,
        )
    else:
        console.print(
            f"{count} persona(s) in {out}, each with its contract as system_prompt "
            "(the prompt-only baseline)",
            highlight=False,
        )
