"""`foundry train` and `foundry generate`: a persona's weights, trained and heard.

Registered on the app in `foundry.cli.main`. Long work shows rich progress bars fed by the
callbacks of the tiny-base pretraining and the TRL trainers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from foundry.cli.common import (
    ConfigOption,
    PersonaOption,
    console,
    load_cli_config,
    print_table,
    user_errors,
)
from foundry.config import FoundryConfig
from foundry.steering.variants import VARIANTS

STAGES = ("sft", "dpo", "all", "combine")


@contextmanager
def progress_bars() -> Iterator[Callable[[str], Callable[..., None]]]:
    """Yield `bar(label)`, which makes a progress callback `(step, total, *info)` for one bar."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:

        def bar(label: str) -> Callable[..., None]:
            task_id = progress.add_task(label, total=None, info="")

            def update(step: int, total: int, info: Any = None) -> None:
                text = f"loss {info:.3f}" if isinstance(info, float) else _loss_text(info)
                progress.update(task_id, completed=step, total=total, info=text)

            return update

        yield bar


def _loss_text(logs: Any) -> str:
    if isinstance(logs, dict):
        loss = logs.get("loss", logs.get("eval_loss"))
        return f"loss {loss:.3f}" if isinstance(loss, int | float) else ""
    return ""


def train(
    config: ConfigOption = None,
    persona: PersonaOption = None,
    stage: Annotated[
        str,
        typer.Option(
            help="sft, dpo, all (sft then dpo), or combine: no training, the installed "
            "style+reasoning experts combined again with the current `training.expert_weights` "
            "or `expert_gate`."
        ),
    ] = "all",
) -> None:
    """Train persona adapters: SFT on the persona's corpus, then DPO on preference pairs
    (with `training.experts: style+reasoning`, a style and a reasoning expert each, combined)."""
    from foundry.data.validation import validate_personas
    from foundry.training.adapter_training import recombine_experts, train_sft
    from foundry.training.base_model import ensure_base

    if stage not in STAGES:
        raise typer.BadParameter(f"use one of {', '.join(STAGES)}", param_hint="--stage")
    cfg = load_cli_config(config)
    with user_errors():
        slugs = _trainable(cfg, persona, validate_personas)
        data_rev = read_data_rev(cfg)
    table = Table(title="Adapters")
    for column in ("persona", "stage", "steps", "best eval loss", "seconds", "folder"):
        table.add_column(column, no_wrap=column == "persona")
    with user_errors(), progress_bars() as bar:
        ensure_base(cfg, progress=bar(f"base model ({cfg.base_model.name})"))
        for slug in slugs:
            for name, fn in (("sft", train_sft), ("dpo", _train_dpo_on_pairs)):
                if stage == "combine":
                    artifact = recombine_experts(cfg, slug, name)
                elif stage in (name, "all"):
                    artifact = fn(cfg, slug, progress=bar(f"{slug} {name}"), data_rev=data_rev)
                else:
                    continue
                summary = artifact.summary
                best = f"{summary.best_eval_loss:.3f}" if summary.best_eval_loss else "-"
                table.add_row(
                    slug,
                    name,
                    str(summary.steps),
                    best,
                    f"{summary.seconds:.0f}",
                    str(artifact.path),
                )
    print_table(table, console)
    console.print(
        f"{len(slugs)} persona(s) trained; try `foundry generate --persona {slugs[0]} "
        '--variant base --variant dpo "..."`'
    )


def _train_dpo_on_pairs(cfg: FoundryConfig, slug: str, **kwargs: Any) -> Any:
    """DPO on the persona's preference pairs (its `pairs.jsonl`, else cross-persona pairs)."""
    from foundry.synthesis.pair_sets import load_pairs
    from foundry.training.adapter_training import train_dpo

    return train_dpo(cfg, slug, pairs=load_pairs(cfg, slug), **kwargs)


def _trainable(cfg: FoundryConfig, persona: list[str] | None, validate: Callable) -> list[str]:
    summary = validate(cfg, persona)
    return [p.slug for p in summary.personas if p.contract is None or p.contract.trainable]


def read_data_rev(cfg: FoundryConfig) -> str:
    """The data version in data.dvc, or empty when the data was never versioned."""
    from foundry.data.versions import read_data_version
    from foundry.errors import FoundryError

    try:
        return read_data_version(cfg).data_rev
    except FoundryError:
        return ""  # not versioned yet: the summary records an empty data version


def generate(
    prompt: Annotated[str, typer.Argument(help="What to ask, for example a debate question.")],
    config: ConfigOption = None,
    persona: PersonaOption = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(help=f"One of {', '.join(VARIANTS)}; repeat to compare (default: dpo)."),
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 120,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.8,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    greedy: Annotated[bool, typer.Option(help="Greedy decoding instead of sampling.")] = False,
) -> None:
    """Generate as personas through any variants, all rows in one mixed-adapter batch.

    `steer` is the base steered by the persona vector and `dpo+steer` the DPO adapter steered by
    it (extract vectors first: `foundry vectors extract`).
    """
    from foundry.data.personas import discover_personas, require_contract
    from foundry.steering.variants import resolve_variant
    from foundry.training.generation import GenerationParams, GenerationRequest, load_for_generation
    from foundry.training.generation import generate as run_generation

    cfg = load_cli_config(config)
    with user_errors():
        slugs = persona or discover_personas(cfg.personas_dir)
        rows = [
            resolve_variant(cfg, require_contract(cfg.persona_dir(slug)), v)
            for slug in slugs
            for v in (variant or ["dpo"])
        ]
        adapters = {r.adapter: r.path for r in rows if r.path is not None}
        params = GenerationParams(
            max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, do_sample=not greedy
        )
        with console.status(f"Generating {len(rows)} answer(s)..."):
            model, tokenizer = load_for_generation(cfg, adapters, rows)
            requests = [
                GenerationRequest(
                    prompt=prompt,
                    adapter=r.adapter,
                    system=r.system,
                    steer=(r.steer,) if r.steer else (),
                )
                for r in rows
            ]
            answers = run_generation(model, tokenizer, requests, params)
    table = Table(title=prompt, show_lines=True)
    for column in ("persona", "variant", "answer"):
        table.add_column(column, no_wrap=column != "answer")
    for row, answer in zip(rows, answers, strict=True):
        table.add_row(row.persona, row.variant, answer)
    print_table(table, console)
