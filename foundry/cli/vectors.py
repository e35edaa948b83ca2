"""`foundry vectors extract|show` and `foundry monitor`: persona vectors, made and used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
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
from foundry.cli.synth import phase_bars

vectors_app = typer.Typer(
    help="Persona vectors for activation steering: extract, inspect.", no_args_is_help=True
)


@vectors_app.command("extract", epilog="Example: foundry vectors extract --persona tobias-renn")
def extract(config: ConfigOption = None, persona: PersonaOption = None) -> None:
    """Extract each persona's vector, pick its layer (AUC) and strength (sweep), and store it.

    Every persona's texts serve as contrast, so all personas' data is read even with --persona.
    The strength sweep is scored by style and content attribution and guarded by fluency; a
    `dpo+steer` strength is swept too when the persona's DPO adapter is trained.
    """
    from foundry.cli.models import read_data_rev
    from tasks.steering import extract_persona_vectors

    cfg = load_cli_config(config)
    with user_errors(), phase_bars() as bars:
        results = extract_persona_vectors(cfg, persona, data_rev=read_data_rev(cfg), progress=bars)
    table = Table(
        title="Persona vectors",
        caption="alpha: steer / dpo+steer; attribution and NLL +: steer at its alpha vs none",
    )
    table.add_column("persona", no_wrap=True)
    for column in ("layer", "AUC", "alpha", "attribution", "NLL +"):
        table.add_column(column, justify="right", no_wrap=True)
    for result in results:
        chosen = _chosen_row(result.sweep.get("steer", []), result.alpha.get("steer"))
        table.add_row(
            result.persona,
            str(result.layer),
            f"{result.auc:.2f}",
            f"{_alpha(result.alpha.get('steer'))} / {_alpha(result.alpha.get('dpo+steer'))}",
            f"{chosen['zero']:.2f}→{chosen['attribution']:.2f}" if chosen else "-",
            f"{chosen['nll_gain']:+.2f}" if chosen else "-",
        )
    print_table(table, console)
    for result in results:
        for note in result.notes:
            err_console.print(f"[yellow]warning[/] {result.persona}: {note}", highlight=False)
    console.print(
        f"Stored under {cfg.adapters_dir}/<persona>/vector (sweep.png plots each sweep). Next: "
        "`foundry eval --variant steer --variant dpo+steer`, or "
        '`foundry generate --variant steer "Will AI capex pay off?"`.'
    )


@vectors_app.command("show", epilog="Example: foundry vectors show --persona tobias-renn")
def show(config: ConfigOption = None, persona: PersonaOption = None) -> None:
    """Print each stored vector's layer, AUCs, strength sweep and measured cross-effects."""
    from foundry.data.personas import discover_personas
    from foundry.steering.store import load_persona_vector

    cfg = load_cli_config(config)
    with user_errors():
        slugs = persona or discover_personas(cfg.personas_dir)
        vectors = [load_persona_vector(cfg.vector_dir(slug)) for slug in slugs]
    for vector in vectors:
        meta = vector.meta
        console.print(
            f"[bold]{vector.persona}[/]: {meta['family']} at layer {meta['layer']} "
            f"({meta['layer_choice']}), base {meta['base_model']}, "
            f"data {meta.get('data_version') or '-'}"
        )
        console.print(f"  AUC per layer: {meta['auc']}", highlight=False)
        for variant, rows in meta.get("sweep", {}).items():
            table = Table(title=f"{vector.persona} {variant} sweep")
            for column in ("alpha", "attribution", "style", "content", "NLL", "NLL gain", "ok"):
                table.add_column(column, justify="right")
            for row in rows:
                mark = "chosen" if row["alpha"] == meta["alpha"].get(variant) else ""
                table.add_row(
                    f"{row['alpha']:g}", f"{row['attribution']:.3f}", f"{row['style']:.3f}",
                    f"{row['content']:.3f}", f"{row['nll']:.3f}", f"{row['nll_gain']:+.3f}",
                    mark or ("" if row["fluent"] else "[red]refused[/]"),
                )  # fmt: skip
            print_table(table, console)
        effects = meta.get("cross_effects") or {}
        for label in [k for k in effects if k == "vector" or k.startswith("away_from:")]:
            shares = ", ".join(f"{s} {p:.2f}" for s, p in effects[label].items())
            console.print(f"  steered by {label}: attribution {shares}", highlight=False)


def monitor(
    transcript: Annotated[
        Path, typer.Argument(help='JSONL: one turn a line, {"speaker": slug, "text": ...}.')
    ],
    config: ConfigOption = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the per-turn scores and flags here.")
    ] = None,
    drift_threshold: Annotated[
        float, typer.Option(help="Own-persona score below which a turn counts as drifting.")
    ] = 0.5,
    converge_drop: Annotated[
        float, typer.Option(help="Drop in two speakers' separation that flags convergence.")
    ] = 0.3,
    window: Annotated[int, typer.Option(min=1, help="Turns compared at each end.")] = 2,
) -> None:
    """Score each turn of a debate transcript on every persona's vector and flag drift and
    convergence.

    Scores are calibrated per vector on the personas' validation texts: 1 reads like the persona's
    own writing, 0 like the others'. Drift: a speaker below --drift-threshold on its own vector
    for --window turns in a row. Convergence: two speakers whose separation fell by more than
    --converge-drop between their first and last --window turns.
    """
    from foundry.atomic import write_text_atomic

    cfg = load_cli_config(config)
    with user_errors(), console.status("Reading the transcript through the persona vectors..."):
        report, matrix = _monitor(cfg, transcript, drift_threshold, converge_drop, window)
    calibration = Table(
        title="Validation texts (rows) on each persona's vector (columns): mean projection; "
        f"diagonal dominance {matrix.diagonal_dominance():.2f}"
    )
    calibration.add_column("texts of", no_wrap=True)
    for column in matrix.columns:
        calibration.add_column(column, justify="right")
    for owner, values in zip(matrix.rows, matrix.values, strict=True):
        calibration.add_row(owner, *(f"{v:.3f}" for v in values))
    console.print(calibration)
    console.print(report.render_table())
    for flag in report.flags:
        console.print(f"[bold red]{flag.kind}[/]: {flag.message}", highlight=False)
    if not report.flags:
        console.print("[green]no drift or convergence flagged[/]")
    if json_out:
        document = {**report.to_dict(), "calibration": matrix.to_dict()}
        write_text_atomic(json_out, json.dumps(document, indent=2) + "\n")
        console.print(f"wrote {json_out}")


def _monitor(cfg: Any, transcript: Path, drift: float, drop: float, window: int) -> Any:
    from foundry.steering.inputs import read_steering_corpus
    from foundry.steering.monitoring import monitor_transcript
    from foundry.steering.projections import baselines, projection_matrix
    from foundry.steering.store import load_steer_vectors
    from foundry.steering.transcripts import read_transcript
    from foundry.training.base_model import load_base

    base = load_base(cfg)
    held = read_steering_corpus(cfg).validation
    missing = [s for s in held if not (cfg.vector_dir(s) / "vector.json").is_file()]
    if missing:
        from foundry.errors import FoundryError

        raise FoundryError(
            f"no persona vector for {', '.join(missing)}; run `foundry vectors extract` first"
        )
    hidden = int(base.model.config.hidden_size)
    vectors = load_steer_vectors({s: cfg.vector_dir(s) for s in held}, base.identity, hidden)
    turns = read_transcript(transcript, known=list(vectors))
    matrix = projection_matrix(base.model, base.tokenizer, held, vectors)
    report = monitor_transcript(
        base.model, base.tokenizer, turns, vectors, baselines(matrix),
        drift_threshold=drift, converge_drop=drop, window=window,
    )  # fmt: skip
    return report, matrix


def _chosen_row(rows: list[dict[str, Any]], alpha: float | None) -> dict[str, Any] | None:
    """The sweep row of the chosen strength, with the unsteered attribution beside it."""
    zero = next((r for r in rows if r["alpha"] == 0.0), None)
    chosen = next((r for r in rows if r["alpha"] == alpha), None)
    if zero is None or chosen is None:
        return None
    return {**chosen, "zero": zero["attribution"]}


def _alpha(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
