"""Generation with a persona steering vector against the same generation without one, side by side.

The model is the project's tiny base (`ensure_base`: the cached build pinned for the current
personas under `.foundry/base/`; `--sample` uses the shipped sample instead, as the other
benchmarks do). One steering vector is made the way extraction makes one: the mean activation
over a persona's train texts (`response_activations`) minus another persona's, at layer
`--layer`, added at strength `--alpha`. Three measurements, printed, never asserted:

  1. Generation: the same debate prompts, greedy, `min_new_tokens = max_new_tokens` (so both
     arms generate exactly the same number of tokens), unsteered (A) and steered (B), at batch 8
     and batch 1; after one warm-up round the arms run interleaved (A, B, A, B, ...). Reported:
     median seconds, tokens/s and the ratio steered / unsteered (target <= 1.10). A third row
     does the same with a persona's DPO adapter loaded and named by every request (LoRA +
     steering), when `.foundry/adapters/<slug>/dpo` exists; otherwise it is skipped with a note.
  2. Extraction per persona: (a) the activation pass extraction does (`response_activations`
     over up to `--texts` train texts of each persona; these activations also make the vector
     above); (b) `tasks.steering.extract_persona_vectors(config, [slug])` for the first persona
     (`--extract-each`: every persona) and once for all of them, on a scratch copy of the
     trained adapters (so `dpo+steer` is swept where a DPO adapter exists; the project's own
     vectors are never touched).
  3. A summary table; `--json OUT` also writes the numbers.

Run: `.venv/bin/python benchmarks/steering.py [--threads 2] [--repeats 5] [--max-new-tokens 64]
[--json out.json]` (`--device cuda` on a GPU; `--no-adapter` skips the LoRA row,
`--no-extract` times only the activation pass).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from foundry.config import FoundryConfig, load_config
from foundry.data.framing import debate_prompt, item_prompts
from foundry.data.validation import validate_personas
from foundry.steering.activations import ResponseRow, response_activations
from foundry.steering.hooks import SteerVector, register_vectors
from foundry.training.base_model import ensure_base
from foundry.training.generation import (
    GenerationParams,
    GenerationRequest,
    attach_adapters,
    generate,
)
from tasks.steering import extract_persona_vectors

REPO_ROOT = Path(__file__).resolve().parents[1]
VECTOR = "bench-persona"


def project_config(sample: bool) -> FoundryConfig:
    config = load_config(REPO_ROOT / "foundry.yaml")
    if sample:
        config.paths.data_dir = config.paths.examples_dir
    return config


def train_rows(summary: Any, limit: int) -> dict[str, list[ResponseRow]]:
    """Each persona's first `limit` train texts, framed by their debate prompts."""
    rows = {}
    for persona in summary.personas:
        items = [i for i in persona.items if i.split == "train"][:limit]
        prompts = item_prompts(items, summary.topic_split.framing)
        rows[persona.slug] = [ResponseRow(prompts[i.id], i.text) for i in items]
    return rows


def interleaved(arms: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """One warm-up call of each arm, then `repeats` timed rounds, arms alternating."""
    for run in arms.values():
        run()
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(repeats):
        for name, run in arms.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    return seconds


def generation_row(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    batch: int,
    new_tokens: int,
    repeats: int,
    adapter: str | None = None,
) -> dict[str, Any]:
    params = GenerationParams(
        max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, batch_size=batch
    )
    extra = {"adapter": adapter} if adapter else {}
    plain = [GenerationRequest(prompt=p, **extra) for p in prompts]
    steered = [GenerationRequest(prompt=p, steer=(VECTOR,), **extra) for p in prompts]
    texts: dict[str, list[str]] = {}

    def arm(name: str, requests: list[GenerationRequest]) -> Callable[[], None]:
        def run() -> None:
            texts[name] = generate(model, tokenizer, requests, params)

        return run

    arms = {"plain": arm("plain", plain), "steered": arm("steered", steered)}
    seconds = interleaved(arms, repeats)
    tokens = len(prompts) * new_tokens
    plain_s, steered_s = (statistics.median(seconds[k]) for k in ("plain", "steered"))
    return {
        "batch": batch,
        "adapter": adapter,
        "tokens": tokens,
        "plain_s": plain_s,
        "steered_s": steered_s,
        "plain_tok_s": tokens / plain_s,
        "steered_tok_s": tokens / steered_s,
        "ratio": steered_s / plain_s,
        "plain_runs": seconds["plain"],
        "steered_runs": seconds["steered"],
        "text_changed": texts["plain"] != texts["steered"],
    }


def time_extraction(
    config: FoundryConfig,
    base: Any,
    rows: dict[str, list[ResponseRow]],
    limit: int,
    full: bool,
    each: bool,
) -> dict[str, Any]:
    """Seconds per persona of the activation pass (whose activations make the bench vector) and,
    when it can be called, of `tasks.steering.extract_persona_vectors`."""
    model, tokenizer = base.model, base.tokenizer
    response_activations(model, tokenizer, next(iter(rows.values()))[:4])  # warm-up
    activations, pass_seconds = {}, {}
    for slug, persona_rows in rows.items():
        started = time.perf_counter()
        activations[slug] = response_activations(model, tokenizer, persona_rows)
        pass_seconds[slug] = time.perf_counter() - started
    out: dict[str, Any] = {
        "activations": activations,
        "pass_label": f"activation pass: response_activations over <= {limit} train texts",
        "pass_seconds": pass_seconds,
        "extract_label": "",
        "extract_seconds": {},
    }
    if not full:
        out["extract_label"] = "not run (--no-extract)"
        return out
    with tempfile.TemporaryDirectory(prefix="steering-bench-") as tmp:
        # A scratch copy of the trained adapters: the dpo+steer sweep runs where they exist,
        # and the project's own vectors are never touched.
        scratch_dir = Path(tmp) / "adapters"
        if config.adapters_dir.is_dir():
            shutil.copytree(
                config.adapters_dir, scratch_dir, ignore=shutil.ignore_patterns("vector")
            )
        scratch = config.with_adapters_dir(scratch_dir)
        slugs = list(rows)
        calls = {slug: [slug] for slug in (slugs if each else slugs[:1])} | {"*": slugs}
        seconds = {}
        for label, personas in calls.items():
            started = time.perf_counter()
            extract_persona_vectors(scratch, personas)
            seconds[label] = time.perf_counter() - started
        swept = sum(
            (scratch.adapter_dir(s, "dpo") / "adapter_config.json").is_file() for s in slugs
        )
    out["extract_label"] = (
        "tasks.steering.extract_persona_vectors(config, [slug]) alone (with its shared setup: "
        "base load, "
        "classifiers, every persona's means, neutral answers), and all personas in one call; "
        f"{swept} of {len(slugs)} personas have a DPO adapter, so a dpo+steer sweep too"
    )
    out["extract_seconds"] = seconds
    return out


def find_dpo_adapter(config: FoundryConfig, slugs: list[str]) -> tuple[str, Path] | None:
    for slug in slugs:
        folder = config.adapter_dir(slug, "dpo")
        if (folder / "adapter_model.safetensors").is_file():
            return slug, folder
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch).")
    parser.add_argument("--repeats", type=int, default=5, help="Timed rounds per arm.")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="Tokens per response.")
    parser.add_argument("--prompts", type=int, default=16, help="Debate prompts per arm.")
    parser.add_argument("--layer", type=int, default=1, help="hidden_states index to steer.")
    parser.add_argument("--alpha", type=float, default=4.0, help="Steering strength.")
    parser.add_argument("--texts", type=int, default=64, help="Train texts a persona (extraction).")
    parser.add_argument("--sample", action="store_true", help="Use examples/sample, not data/.")
    parser.add_argument("--no-adapter", action="store_true", help="Skip the LoRA + steering row.")
    parser.add_argument(
        "--no-extract", action="store_true", help="Time only the activation pass, not extraction."
    )
    parser.add_argument(
        "--extract-each",
        action="store_true",
        help="Time extract_persona_vectors alone for every persona (default: the first only).",
    )
    parser.add_argument("--device", default="cpu", help="Torch device, e.g. cpu or cuda.")
    parser.add_argument("--json", type=Path, help="Also write the numbers to this file.")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    config = project_config(args.sample)
    summary = validate_personas(config)
    base = ensure_base(config)
    base.model.to(args.device)
    model, tokenizer = base.model, base.tokenizer
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(
        f"{device} ({torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}), "
        f"base {base.identity}, {len(summary.personas)} personas, data {config.data_dir}"
    )

    # 2. extraction (first: its activations also give the steering vector)
    rows = train_rows(summary, args.texts)
    extraction = time_extraction(
        config, base, rows, args.texts, not args.no_extract, args.extract_each
    )
    activations = extraction["activations"]
    first, second = list(activations)[:2]
    index = args.layer - 1
    direction = activations[first][:, index].mean(0) - activations[second][:, index].mean(0)
    vector = SteerVector(args.layer, direction.astype(np.float32), args.alpha, VECTOR)
    register_vectors(model, {VECTOR: vector})
    print(
        f"vector: mean({first}) - mean({second}) at layer {args.layer}, norm {vector.norm:.3f}, "
        f"alpha {args.alpha:g}"
    )

    # 1. generation, steered vs not
    topics = summary.topics or [None]
    prompts = [debate_prompt(topics[i % len(topics)]) for i in range(args.prompts)]
    results = []
    for batch in (8, 1):
        results.append(
            generation_row(model, tokenizer, prompts, batch, args.max_new_tokens, args.repeats)
        )
        print(f"batch {batch}: ratio {results[-1]['ratio']:.3f}")
    adapter_note = "skipped (--no-adapter)"
    slugs = [p.slug for p in summary.personas]
    found = None if args.no_adapter else find_dpo_adapter(config, slugs)
    if found is None and not args.no_adapter:
        adapter_note = "skipped: no .foundry/adapters/<slug>/dpo adapter found"
    if found:
        slug, folder = found
        try:
            model = attach_adapters(model, {f"{slug}-dpo": folder})
            results.append(
                generation_row(
                    model, tokenizer, prompts, 8, args.max_new_tokens, args.repeats, f"{slug}-dpo"
                )
            )
            adapter_note = f"{slug}-dpo from {folder}"
        except Exception as exc:  # noqa: BLE001 - e.g. an adapter still being written
            adapter_note = f"skipped: cannot use {folder} ({type(exc).__name__}: {exc})"
    print(f"adapter row: {adapter_note}")

    # 3. summary
    print(
        f"\nGeneration: {len(prompts)} prompts x {args.max_new_tokens} tokens, greedy, median of "
        f"{args.repeats} interleaved rounds (ratio = steered / unsteered, target <= 1.10)"
    )
    print(
        f"{'row':<34} {'plain s':>8} {'steered s':>9} {'plain tok/s':>11} "
        f"{'steer tok/s':>11} {'ratio':>6}  text changed"
    )
    for r in results:
        name = f"batch {r['batch']}" + (f" + LoRA {r['adapter']}" if r["adapter"] else "")
        print(
            f"{name:<34} {r['plain_s']:8.3f} {r['steered_s']:9.3f} {r['plain_tok_s']:11.1f} "
            f"{r['steered_tok_s']:11.1f} {r['ratio']:6.3f}  {'yes' if r['text_changed'] else 'no'}"
        )
    pass_s, extract_s = extraction["pass_seconds"], extraction["extract_seconds"]
    print(f"\nExtraction per persona. (a) {extraction['pass_label']}")
    print(f"(b) {extraction['extract_label']}")
    print(f"{'persona':<26} {'texts':>5} {'(a) pass s':>10} {'(b) extract s':>13}")
    for slug, seconds in pass_s.items():
        full = f"{extract_s[slug]:13.2f}" if slug in extract_s else f"{'-':>13}"
        print(f"{slug:<26} {len(rows[slug]):5d} {seconds:10.3f} {full}")
    alone = [extract_s[s] for s in pass_s if s in extract_s]
    full = f"{statistics.mean(alone):13.2f}" if alone else f"{'-':>13}"
    print(f"{'mean per persona':<26} {'':5} {statistics.mean(pass_s.values()):10.3f} {full}")
    if "*" in extract_s:
        count = len(pass_s)
        marginal = (extract_s["*"] - alone[0]) / (count - 1) if alone and count > 1 else 0.0
        print(
            f"{f'all {count} in one call':<26} {'':5} {'':10} {extract_s['*']:13.2f}  "
            f"({extract_s['*'] / count:.2f} s a persona; {marginal:.2f} s each beyond the first)"
        )

    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other jobs skew CPU timings)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "device": device,
                    "threads": torch.get_num_threads(),
                    "base": base.identity,
                    "layer": args.layer,
                    "alpha": args.alpha,
                    "vector_norm": vector.norm,
                    "generation": results,
                    "adapter_note": adapter_note,
                    "activation_pass": extraction["pass_label"],
                    "activation_pass_seconds": pass_s,
                    "extract_vectors": extraction["extract_label"],
                    "extract_vectors_seconds": extract_s,
                },
                indent=2,
            )
        )
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
