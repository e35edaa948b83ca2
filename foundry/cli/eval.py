"""`foundry eval`: the evaluation of every variant, as a table, a report folder and JSON.

The table is the report's headline (each metric with its 95 % interval), then each variant's
verdict against the prompt-only baseline. Registered on the app in `foundry.cli.main`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from foundry.cli.common import (
    ConfigOption,
    PersonaOption,
    console,
    load_cli_config,
    print_table,
    user_errors,
)
from foundry.cli.synth import phase_bars
from foundry.evaluation.verdict import format_cell


def evaluate(
    config: ConfigOption = None,
    persona: PersonaOption = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            "-v",
            help="base, prompt, sft or dpo; repeat for several. Default: `evaluation.variants`, "
            "skipping adapters not trained yet (an explicit variant must exist).",
        ),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write metrics.json to this file.")
    ] = None,
    judge: Annotated[
        bool | None,
        typer.Option(
            "--judge/--no-judge",
            help="Ask Claude which answer is more like the persona (needs ANTHROPIC_API_KEY). "
            "Default: `evaluation.judge`.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Report folder (default: .foundry/eval): report.md, plots/, metrics."),
    ] = None,
) -> None:
    """Measure persona fidelity and differentiation of each variant on held-out prompts."""
    from foundry.atomic import write_text_atomic
    from foundry.cli.models import read_data_rev
    from foundry.evaluation.run import evaluate as run_evaluation
    from foundry.evaluation.verdict import Guards, headline_rows, verdicts

    cfg = load_cli_config(config)
    with user_errors(), phase_bars() as bars:
        report, folder = run_evaluation(
            cfg, personas=persona, variants=variant, out_dir=out, progress=bars,
            data_rev=read_data_rev(cfg), judge=judge,
        )  # fmt: skip
    rows = headline_rows(report)
    table = Table(
        title=f"evaluation on {len(report.heldout_topics)} held-out prompts "
        "(95 % intervals in brackets)"
    )
    for column in rows[0] if rows else []:
        table.add_column(column, justify="left" if column == "variant" else "right")
    for row in rows:
        table.add_row(*row.values())
    print_table(table, console)
    for verdict in verdicts(report, Guards.from_config(cfg)):
        console.print(verdict.text, soft_wrap=True, markup=False, highlight=False)
    for skipped in report.skipped:
        console.print(f"[yellow]skipped[/] {skipped.persona} {skipped.variant}: {skipped.reason}")
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")
    if json_path:
        write_text_atomic(json_path, report.model_dump_json(indent=2) + "\n")
        console.print(f"metrics written to {json_path}")
    console.print(f"report: {folder / 'report.md'}")


def compare(
    reports: Annotated[
        list[Path],
        typer.Argument(
            help="Two or more report folders (or their metrics.json).", show_default=False
        ),
    ],
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="A name per report, in order (default: folder names)."),
    ] = None,
    variant: Annotated[str, typer.Option(help="The variant to compare.")] = "dpo",
    baseline: Annotated[
        str | None,
        typer.Option(
            help="Also show this variant of the first report (e.g. prompt) as a reference."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for compare.md and compare.png (default: print only)."),
    ] = None,
) -> None:
    """Put evaluation reports side by side (e.g. one adapter per persona vs style+reasoning
    experts): every headline figure and each persona's content recall, with 95 % intervals, and
    which differences the intervals show. The reports must have answered the same prompts."""
    from foundry.atomic import write_text_atomic
    from foundry.errors import FoundryError
    from foundry.evaluation.comparison import (
        compare_reports,
        comparison_markdown,
        plot_comparison,
    )
    from foundry.evaluation.schema import EvalReport

    names = label or [p.name if p.is_dir() else p.parent.name for p in reports]
    if len(names) != len(reports):
        raise typer.BadParameter(
            f"{len(names)} label(s) for {len(reports)} report(s): give one per report",
            param_hint="--label",
        )
    with user_errors():
        loaded = {}
        for name, path in zip(names, reports, strict=True):
            file = path / "metrics.json" if path.is_dir() else path
            if not file.is_file():
                raise FoundryError(f"{file}: no evaluation report there (run `foundry eval`)")
            loaded[name] = EvalReport.model_validate_json(file.read_text())
        comparison = compare_reports(loaded, variant, baseline)
    table = Table(title=f"{variant}: 95 % intervals over held-out prompts")
    for column in ("figure", *comparison.labels, "difference"):
        table.add_column(column)
    for metric in comparison.cells:
        cells = [comparison.cells[metric][name] for name in comparison.labels]
        table.add_row(metric, *(format_cell(*c) for c in cells), comparison.difference(metric))
    print_table(table, console)
    if out:
        write_text_atomic(out / "compare.md", comparison_markdown(comparison))
        plot_comparison(comparison, out / "compare.png")
        console.print(f"written: {out / 'compare.md'}, {out / 'compare.png'}")
