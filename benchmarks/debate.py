"""Debates batched against one turn at a time, in-process and through `foundry serve`, side by side.

(1) In-process: one question debated by four personas for `--rounds` rounds, through the engine as
it is (`run_debates` with an `InProcessSpeaker`: each round is one mixed-adapter `generate` call of
four rows) against the same turns one at a time (a speaker that calls `generate` once per turn).
(2) Served: `foundry serve`'s app (`deploy.local.build_app`, with an API key) behind uvicorn on a
free port of 127.0.0.1, and four debates (four questions, the same four personas) through
`ServedSpeaker` (`foundry debate --target local`'s speaker) with 16 requests in flight, so each
round of all four debates reaches the server at once, against the same debates one after another
with one request in flight. Every turn is greedy with `min_new_tokens = max_new_tokens`, so both
arms of each part generate the same number of tokens; whether their text matched is printed.

Variant: `--project DIR` debates that project's personas through their trained DPO adapters (the
`prompt` variant, with a printed note, where they are not trained). Without it, the shipped
sample's four personas on `--base` get random LoRA adapters at the configured rank in a temporary
folder, as benchmarks/generation.py does: the compute of trained DPO adapters, not their text.
`--variant prompt` debates the contracts as system prompts on the bare base instead (still a mixed
batch: four system prompts). It prints, it does not assert.

Run: `.venv/bin/python benchmarks/debate.py [--base tiny|smollm2] [--project DIR] [--rounds 3]
[--max-new-tokens 48]` (`--threads 1` steadies CPU timings on a busy machine).
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from generation import random_adapter

from foundry.config import FoundryConfig, load_config
from foundry.debate.config import DebateConfig
from foundry.debate.run import DebateProject, InProcessModel, debate_specs
from foundry.debate.speakers import InProcessSpeaker, ServedSpeaker, Speaker, Spoken, TurnJob
from foundry.debate.transcript import DebateSpec, TurnRecord
from foundry.errors import FoundryError
from foundry.training.generation import GenerationParams

REPO_ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [  # from the sample's topics.yaml; the first is the in-process debate's
    "Will the current wave of AI data-center spending earn back its cost?",
    "Will a G20 central bank hold bitcoin as a reserve asset by 2035?",
    "Will central bank digital currencies replace cash for most retail payments by 2035?",
    "Will open-weight AI models run most enterprise AI workloads by 2030?",
]
PERSONAS = 4


@dataclass
class Arm:
    label: str
    seconds: float
    transcripts: dict[str, list[TurnRecord]]
    rows_per_batch: float = 0.0  # served arms: the server's batches
    adapters_per_batch: float = 0.0

    @property
    def turns(self) -> list[TurnRecord]:
        return [t for debate in self.transcripts.values() for t in debate]


class OneTurnAtATime:
    """The same turns as the engine's speaker, one `generate` call per turn."""

    target = "in-process"

    def __init__(self, speaker: InProcessSpeaker) -> None:
        self.speaker = speaker

    def speak(self, jobs: Sequence[TurnJob], seed: int) -> list[Spoken]:
        return [self.speaker.speak([job], seed)[0] for job in jobs]


def open_project(args: argparse.Namespace, folder: Path) -> tuple[FoundryConfig, str, str]:
    """(config, variant, what the variant is): the given project, or the shipped sample on
    `--base` with random adapters under `folder`."""
    if args.project:
        return load_config(args.project / "foundry.yaml"), args.variant, "its trained adapters"
    config = load_config(REPO_ROOT / "foundry.yaml")
    config.paths.data_dir = config.paths.examples_dir
    config.base_model.name = args.base
    if config.base_model.is_tiny:
        from foundry.training.base_model import ensure_base

        ensure_base(config)  # builds and caches the tiny base under .foundry/base/ once
    if args.variant == "prompt":
        return config, "prompt", "the contracts as system prompts"
    config = config.with_adapters_dir(folder / "adapters")
    write_random_adapters(config)
    return config, "dpo", "random LoRA adapters at the configured rank (their compute, not text)"


def write_random_adapters(config: FoundryConfig) -> None:
    """A differing random DPO adapter for every sample persona, where `dpo` resolves them."""

    from foundry.data.personas import discover_personas
    from foundry.training.base_model import load_base

    base = load_base(config)
    lora = config.training.lora
    for seed, slug in enumerate(discover_personas(config.personas_dir), start=1):
        adapter = random_adapter(base.model, lora, seed)
        adapter.save_pretrained(config.adapter_dir(slug, "dpo"))


def load_model(
    project: DebateProject, specs: list[DebateSpec], variant: str
) -> tuple[InProcessModel, str, str]:
    """The base with the variant's adapters; `prompt` (and why) where DPO adapters are missing."""
    try:
        return InProcessModel.load(project, specs, [variant]), variant, ""
    except FoundryError as exc:
        if variant != "dpo":
            raise
        note = f"NOTE: {exc}; debating variant `prompt` instead"
        return InProcessModel.load(project, specs, ["prompt"]), "prompt", note


def timed_debates(
    label: str,
    batches: list[list[DebateSpec]],
    project: DebateProject,
    speaker: Speaker,
    settings: DebateConfig,
    variant: str,
) -> Arm:
    """The debates of each batch, batch after batch, timed together."""
    from foundry.debate.engine import run_debates

    transcripts: dict[str, list[TurnRecord]] = {}
    started = time.perf_counter()
    for specs in batches:
        transcripts |= run_debates(specs, project.contracts, speaker, settings, variant)
    return Arm(label, time.perf_counter() - started, transcripts)


def in_process(
    model: InProcessModel,
    project: DebateProject,
    spec: DebateSpec,
    settings: DebateConfig,
    variant: str,
) -> list[Arm]:
    """The debate as the engine runs it (a batch per round), then one turn at a time."""
    tokens = settings.max_new_tokens
    params = GenerationParams(
        max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, batch_size=32
    )
    batched = InProcessSpeaker(model.model, model.tokenizer, model.variants[variant], params)
    batched.speak([TurnJob("warm-up", slug, "Say something.") for slug in spec.personas], 0)
    return [
        timed_debates("one batch per round", [[spec]], project, batched, settings, variant),
        timed_debates(
            "one turn at a time", [[spec]], project, OneTurnAtATime(batched), settings, variant
        ),
    ]


def served(
    config: FoundryConfig,
    project: DebateProject,
    specs: list[DebateSpec],
    settings: DebateConfig,
    variant: str,
) -> tuple[list[Arm], str]:
    """The debates through the local server, all at once and one after another."""
    import requests

    from deploy.local import build_app, serve_in_thread

    key = secrets.token_urlsafe(16)
    os.environ["FOUNDRY_SERVE_API_KEY"] = key  # where `foundry debate --target local` reads it
    in_flight = sum(len(spec.personas) for spec in specs)
    app, engine, _, _ = build_app(
        config, max_batch=in_flight, source="trained", api_key=key, allow_runtime_lora=False
    )
    server = serve_in_thread(app)
    try:
        refused = requests.get(f"{server.url}/v1/models", timeout=30).status_code
        key_note = f"API key required (a request without it got HTTP {refused})"
        speakers = [
            served_greedy(config, project, specs, settings, variant, server.url, n)
            for n in (in_flight, 1)
        ]
        speakers[0].speak([TurnJob("warm-up", specs[0].personas[0], "Say something.")], 0)
        arms = []
        for label, speaker, batches in (
            (f"{len(specs)} debates at once", speakers[0], [specs]),
            ("one after another", speakers[1], [[spec] for spec in specs]),
        ):
            before = engine.stats.batches, engine.stats.rows, len(engine.stats.adapters_per_batch)
            arm = timed_debates(label, batches, project, speaker, settings, variant)
            batches_run = max(1, engine.stats.batches - before[0])
            mixed = engine.stats.adapters_per_batch[before[2] :]
            arm.rows_per_batch = (engine.stats.rows - before[1]) / batches_run
            arm.adapters_per_batch = sum(mixed) / max(1, len(mixed))
            arms.append(arm)
    finally:
        server.stop()
        engine.close()
    return arms, key_note


def served_greedy(
    config: FoundryConfig,
    project: DebateProject,
    specs: list[DebateSpec],
    settings: DebateConfig,
    variant: str,
    url: str,
    concurrency: int,
) -> ServedSpeaker:
    """`foundry debate --target local`'s speaker, made greedy and exact-length for the benchmark:
    `debate.temperature` must be positive, and `min_tokens` (vLLM's field) is no debate setting."""
    from foundry.debate.targets import served_speaker

    slugs = sorted({slug for spec in specs for slug in spec.personas})
    speaker = served_speaker(
        config,
        project.contracts,
        slugs,
        variant,
        "local",
        settings.model_copy(update={"concurrency": concurrency}),
        base_url=f"{url}/v1",
    )
    speaker.temperature = 0.0  # the server decodes temperature 0 greedily
    minimum = ("min_tokens", str(settings.max_new_tokens))
    speaker.models = {
        slug: replace(model, extra_body=(*model.extra_body, minimum))
        for slug, model in speaker.models.items()
    }
    return speaker


def print_part(title: str, arms: list[Arm], tokens: int) -> None:
    """A row per arm, the speed-up of the first over the second, and whether their text matched."""
    print(f"\n{title}")
    print(
        f"{'arm':<22} {'turns':>5} {'seconds':>8} {'turns/s':>8} {'new tokens/s':>13} "
        f"{'rows/batch':>10} {'adapters/batch':>14}"
    )
    for arm in arms:
        turns = len(arm.turns)
        batch = ""
        if arm.rows_per_batch:  # served arms: what the server's batches held
            batch = f"{arm.rows_per_batch:10.1f} {arm.adapters_per_batch:14.1f}"
        print(
            f"{arm.label:<22} {turns:5d} {arm.seconds:8.2f} {turns / arm.seconds:8.2f} "
            f"{turns * tokens / arm.seconds:13.1f} {batch}".rstrip()
        )
    fast, slow = arms
    differ = sum(a.text != b.text for a, b in zip(fast.turns, slow.turns, strict=True))
    same = "yes" if not differ else f"NO ({differ} of {len(fast.turns)} turns differ)"
    print(
        f"speed-up {fast.label} / {slow.label}: {slow.seconds / fast.seconds:.2f}x; "
        f"identical text: {same}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base",
        choices=["tiny", "smollm2"],
        default="tiny",
        help="Base model of the shipped sample (ignored with --project).",
    )
    parser.add_argument("--project", type=Path, help="A project folder with trained adapters.")
    parser.add_argument(
        "--variant",
        choices=["dpo", "prompt"],
        default="dpo",
        help="What each persona speaks through.",
    )
    parser.add_argument("--rounds", type=int, default=3, help="Rounds per debate.")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="Tokens per turn.")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default).")
    args = parser.parse_args()
    if args.project and not (args.project / "foundry.yaml").is_file():
        parser.error(f"--project {args.project}: no foundry.yaml there")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="debate-bench-") as tmp:
        config, variant, what = open_project(args, Path(tmp))
        project = DebateProject.load(config)
        personas = sorted(project.contracts)[:PERSONAS]
        specs = [debate_specs(project, question=q, personas=personas)[0] for q in QUESTIONS]
        model, variant, note = load_model(project, specs, variant)
        if note:
            what = "the contracts as system prompts"
        overrides = {"rounds": args.rounds, "max_new_tokens": args.max_new_tokens}
        settings = DebateConfig(**{**config.debate.model_dump(), **overrides, "critique": False})
        local = in_process(model, project, specs[0], settings, variant)
        del model
        remote, key_note = served(config, project, specs, settings, variant)
    print(
        f"\n{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads; base "
        f"{config.base_model.name}; {len(personas)} personas ({', '.join(personas)}); variant "
        f"{variant}: {what}; {args.rounds} round(s), {args.max_new_tokens} greedy tokens per turn"
    )
    if note:
        print(note)
    print_part("(1) in-process: 1 debate", local, args.max_new_tokens)
    print_part(f"(2) foundry serve: {len(specs)} debates, {key_note}", remote, args.max_new_tokens)


if __name__ == "__main__":
    main()
