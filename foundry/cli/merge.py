"""`foundry merge`: a derived persona blended from existing personas' adapters (issue 22).

Writes the derived persona's contract (`data/personas/<as>/contract.yaml`, marked
`derived_from`), merges the sources' adapters into its `dpo` (and `sft`) adapter folders and,
when every source has one, composes its persona vector. Registered on the app in
`foundry.cli.main`; the work is `foundry.orchestration.derived.create_derived`.
"""

from __future__ import annotations

from typing import Annotated, get_args

import typer

from foundry.cli.common import ConfigOption, console, load_cli_config, user_errors
from foundry.data.schemas import DerivedMethod

METHODS = get_args(DerivedMethod)


def merge(
    source: Annotated[
        list[str],
        typer.Option(
            "--from",
            help="A source persona and its weight, SLUG:WEIGHT (e.g. jonah-okafor:0.7); repeat "
            "for each source. A negative weight subtracts (cat, linear, dare_linear, svd only).",
        ),
    ],
    slug: Annotated[
        str, typer.Option("--as", help="Slug of the derived persona (its folder and model name).")
    ],
    method: Annotated[
        str,
        typer.Option(
            help="PEFT combination: cat (the exact weighted sum of the updates), linear, ties, "
            "dare_linear, dare_ties (these combine the A and B factors separately: not a "
            "weighted sum of updates) or svd (weighted sum truncated to the sources' rank).",
        ),
    ] = "cat",
    density: Annotated[
        float | None,
        typer.Option(help="Share of each source's weights TIES/DARE keep, in (0, 1]; e.g. 0.5."),
    ] = None,
    stage: Annotated[
        str, typer.Option(help="Which adapter of each source to blend: dpo or sft.")
    ] = "dpo",
    name: Annotated[
        str, typer.Option(help="The derived persona's name (default: 'Blend of A and B').")
    ] = "",
    config: ConfigOption = None,
) -> None:
    """Blend personas' adapters into a derived persona: contract, adapters, persona vector."""
    from foundry.cli.models import read_data_rev
    from foundry.orchestration.derived import MergeError, create_derived

    cfg = load_cli_config(config)
    with user_errors():
        if method not in METHODS:
            raise MergeError(f"--method {method!r} is not one of {', '.join(METHODS)}")
        if stage not in ("dpo", "sft"):
            raise MergeError(f"--stage {stage!r}: use dpo or sft")
        result = create_derived(
            cfg, source, method=method, density=density, slug=slug, name=name,  # type: ignore[arg-type]
            stage=stage, data_rev=read_data_rev(cfg),
        )  # fmt: skip
    console.print(f"[green]✓[/] contract {result['contract']}")
    for target, folder in result["adapters"].items():
        console.print(f"[green]✓[/] {target} adapter {folder} ({method})")
    if result["vector"]:
        console.print(f"[green]✓[/] persona vector {result['vector']} (weighted sum)")
    for note in result["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    console.print(
        "next: `foundry eval` (every persona, so its landing is read against the same "
        "classifiers and prompts as theirs; only its own answers are new), or `foundry run` to "
        f"evaluate and register {slug}"
    )
