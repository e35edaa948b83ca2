"""`foundry debate`: multi-round debates among the personas, streamed, measured and compared."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from foundry.cli.common import (
    ConfigOption,
    console,
    load_cli_config,
    print_table,
    user_errors,
)


def debate(
    question: Annotated[
        str | None, typer.Argument(help="The debate question (or use --conflict / --topics).")
    ] = None,
    conflict: Annotated[
        list[str] | None,
        typer.Option(help="A conflict id of data/conflicts.yaml (repeat; `all`: every one)."),
    ] = None,
    topics: Annotated[
        Path | None,
        typer.Option(help="A file of topics (`topics:`) or conflicts (`conflicts:`) to debate."),
    ] = None,
    persona: Annotated[
        list[str] | None,
        typer.Option(help="Who debates (repeat; default: the conflict's two, or everyone)."),
    ] = None,
    rounds: Annotated[int | None, typer.Option(min=1, help="Rounds (default 3).")] = None,
    variant: Annotated[
        str | None, typer.Option(help="prompt, sft, dpo, steer or dpo+steer (default dpo).")
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(help="Variants to compare on the same debates and seeds, e.g. prompt,dpo."),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(help="in-process (default), local, vllm, together or fireworks."),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="A served target's OpenAI-compatible URL (…/v1).")
    ] = None,
    critique: Annotated[
        bool, typer.Option(help="One self-critique pass per turn against the constitution.")
    ] = False,
    seed: Annotated[int | None, typer.Option(min=0, help="Sampling seed (default 0).")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for transcripts, table and plot (default .foundry/debates/…)."),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="Do not print the turns as they come.")] = False,
    config: ConfigOption = None,
) -> None:
    """Debate a question, a conflict or a file of them among the personas, round by round, and
    measure whether they stay different (homogeneity by round, conflict fidelity per round).

    Each later round shows a persona the others' latest turns; it says of each whether it agrees
    or disagrees (and which assumption it contests), and the last round ends with a final
    position and confidence. Transcripts are JSONL that `foundry monitor` reads.
    """
    from foundry.debate.config import DebateConfig
    from foundry.debate.report import comparison_markdown, comparison_rows, write_homogeneity_plot
    from foundry.debate.run import DebateProject, InProcessModel, debate_specs, debate_variant
    from foundry.debate.targets import served_speaker

    cfg = load_cli_config(config)
    with user_errors():
        updates = {"rounds": rounds, "variant": variant, "target": target, "seed": seed}
        settings = DebateConfig.model_validate(
            cfg.debate.model_dump()
            | {k: v for k, v in updates.items() if v is not None}
            | {"critique": critique or cfg.debate.critique}
        )
        variants = (
            [v.strip() for v in compare.split(",") if v.strip()] if compare else [settings.variant]
        )
        for name in variants:
            DebateConfig(variant=name)  # the same check and message as foundry.yaml
        project = DebateProject.load(cfg)
        specs = debate_specs(project, question, conflict or (), topics, persona or ())
        folder = out or cfg.resolve(Path(settings.out_dir)) / datetime.now(UTC).strftime(
            "%Y%m%d-%H%M%S"
        )
        slugs = sorted({s for spec in specs for s in spec.personas})
        console.print(
            f"{len(specs)} debate(s) among {', '.join(slugs)}: {settings.rounds} round(s), "
            f"variant(s) {', '.join(variants)}, target {settings.target}"
        )
        local = None
        if settings.target == "in-process":
            with console.status("Loading the base model and adapters..."):
                local = InProcessModel.load(project, specs, variants)
        results = []
        for name in variants:
            if local is not None:
                speaker = local.speaker(name, settings)
                scorer = local.scorer(settings.batch_size)
            else:
                speaker = served_speaker(
                    cfg, project.contracts, slugs, name, settings.target, settings, base_url
                )
                scorer = None

            def show(number: int, records, name=name) -> None:
                if quiet:
                    return
                for r in records:
                    console.print(
                        f"[bold]{escape(r.debate_id)} · round {number} · {escape(r.speaker)} "
                        f"({name})[/]\n{escape(r.text)}\n"
                    )

            with console.status(f"Debating through {name}..."):
                _, measures, paths = debate_variant(
                    project, specs, speaker, settings, name, folder, scorer, show
                )
            results.append(measures)
            console.print(f"[green]✓[/] {name}: {len(paths)} transcript(s) in {folder}")
        table = Table(title=f"Debates: {len(specs)} x {settings.rounds} round(s)")
        table.add_column("measure")
        for m in results:
            table.add_column(m.variant, justify="right")
        for label, cells in comparison_rows(results):
            table.add_row(label, *cells)
        print_table(table, console)
        from foundry.atomic import write_text_atomic

        write_text_atomic(folder / "comparison.md", comparison_markdown(results))
        write_text_atomic(
            folder / "measures.json",
            "[\n" + ",\n".join(m.model_dump_json(indent=2) for m in results) + "\n]\n",
        )
        plot = write_homogeneity_plot(results, folder / "homogeneity.png")
    console.print(
        f"Table: {folder / 'comparison.md'}; plot: {plot}; measures: {folder / 'measures.json'}"
    )
    console.print(
        f"Next: `foundry monitor {next(iter(sorted(folder.glob('*.jsonl'))), 'TRANSCRIPT')}`"
    )
