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
    from foundry.debate.report import comparison_rows
    from foundry.debate.session import open_session, write_outputs

    cfg = load_cli_config(config)
    with user_errors():
        variants = [v.strip() for v in (compare or variant or cfg.debate.variant).split(",")]
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        folder = out or cfg.resolve(Path(cfg.debate.out_dir)) / stamp
        with console.status("Loading the personas (and in-process, the base and adapters)..."):
            session = open_session(
                cfg,
                folder,
                conflicts=conflict or (),
                topics_file=topics,
                personas=persona or (),
                variants=[v for v in variants if v],
                rounds=rounds,
                target=target,
                question=question,
                overrides={"seed": seed, "critique": critique or None},
                base_url=base_url,
            )
        settings = session.settings
        console.print(
            f"{len(session.specs)} debate(s) among {', '.join(session.personas)}: "
            f"{settings.rounds} round(s), variant(s) {', '.join(session.variants)}, target "
            f"{settings.target}"
        )
        results = []
        for name in session.variants:

            def show(number: int, records: list, name: str = name) -> None:
                if quiet:
                    return
                for r in records:
                    console.print(
                        f"[bold]{escape(r.debate_id)} · round {number} · {escape(r.speaker)} "
                        f"({name})[/]\n{escape(r.text)}\n"
                    )

            with console.status(f"Debating through {name}..."):
                results.append(session.debate(name, show))
            console.print(f"[green]✓[/] {name}: transcripts in {folder}")
        paths = write_outputs(folder, results)
    table = Table(title=f"Debates: {len(session.specs)} x {settings.rounds} round(s)")
    table.add_column("measure")
    for m in results:
        table.add_column(m.variant, justify="right")
    for label, cells in comparison_rows(results):
        table.add_row(label, *cells)
    print_table(table, console)
    console.print(f"Table: {paths['comparison']}; plot: {paths['plot']}")
    first = min(folder.glob("*.jsonl"), default="TRANSCRIPT")
    console.print(f"Next: `foundry monitor {first}` reads a transcript on the persona vectors.")
