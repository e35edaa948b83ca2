"""Mixed-adapter generation against one adapter at a time and one request at a time, side by side.

Four LoRA adapters (random, non-zero weights at the configured rank) sit on the tiny base, which
is built from the shipped sample with the project's config and cached under `.foundry/base/`
(about 35 s the first time, seconds afterwards). The same 16 requests (4 prompts x 4 adapters)
run three ways, greedy, with `min_new_tokens = max_new_tokens` so every path generates exactly
the same number of tokens:

  (a) mixed:       one batch of 16, each row naming its adapter (PEFT `adapter_names`);
  (b) per adapter: 4 batches of 4, switching adapters with `set_adapter`;
  (c) per request: 16 calls of one request each.

Each path runs `--repeats` times, interleaved (a, b, c, a, b, c, ...) after one warm-up round;
the script prints the median seconds, tokens/s and the speed-ups of (a) over (b) and (c), and
whether all three paths produced identical text. It prints, it does not assert.

Run: `.venv/bin/python benchmarks/generation.py [--max-new-tokens 48] [--repeats 3]`
(`--device cuda` on a GPU; `--threads 1` steadies CPU timings on a busy machine).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from foundry.config import load_config
from foundry.training.base_model import ensure_base
from foundry.training.generation import (
    GenerationParams,
    GenerationRequest,
    attach_adapters,
    generate,
    use_adapter,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = ["adapter-1", "adapter-2", "adapter-3", "adapter-4"]
PROMPTS = [
    "Debate prompt: Will central bank digital currencies replace cash within a decade?",
    "Debate prompt: Is nuclear power worth its cost?",
    "Debate prompt: Will AI workloads dominate data-center spending by 2030?",
    "Debate prompt: Should interest rates stay high to fight inflation?",
]


def random_adapter(model: Any, lora: Any, seed: int) -> Any:
    """A LoRA adapter with random non-zero weights at the configured rank: the compute of a
    trained adapter (its text is not a persona's)."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    settings = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        target_modules=lora.target_modules,
        init_lora_weights=False,  # non-zero B: each adapter changes the output
    )
    with warnings.catch_warnings():  # PEFT 0.21 reads a property transformers 5 deprecated
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
        return get_peft_model(copy.deepcopy(model), settings)


def build_model(folder: Path) -> tuple[Any, Any]:
    """The cached tiny base with four differing random adapters attached."""

    config = load_config(REPO_ROOT / "foundry.yaml")
    config.paths.data_dir = config.paths.examples_dir
    base = ensure_base(config)
    lora = config.training.lora
    adapters = {}
    for seed, name in enumerate(ADAPTERS, start=1):
        random_adapter(base.model, lora, seed).save_pretrained(folder / name)
        adapters[name] = folder / name
    return attach_adapters(base.model, adapters), base.tokenizer


def run_paths(model: Any, tokenizer: Any, params: GenerationParams) -> dict[str, Callable]:
    """The three ways to answer the same 16 requests; each returns the texts in request order."""
    requests = [GenerationRequest(prompt=p, adapter=a) for p in PROMPTS for a in ADAPTERS]

    def mixed() -> list[str]:
        return generate(model, tokenizer, requests, params)

    def per_adapter() -> list[str]:
        answers: dict[int, str] = {}
        for name in ADAPTERS:
            rows = [i for i, r in enumerate(requests) if r.adapter == name]
            plain = [GenerationRequest(prompt=requests[i].prompt) for i in rows]
            with use_adapter(model, name) as inner:
                answers.update(zip(rows, generate(inner, tokenizer, plain, params), strict=True))
        return [answers[i] for i in range(len(requests))]

    def per_request() -> list[str]:
        return [generate(model, tokenizer, [r], params)[0] for r in requests]

    return {
        "(a) mixed batch of 16": mixed,
        "(b) per adapter, 4 x 4": per_adapter,
        "(c) per request, 16 x 1": per_request,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-new-tokens", type=int, default=48, help="Tokens per response.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed rounds per path.")
    parser.add_argument("--device", default="cpu", help="Torch device, e.g. cpu or cuda.")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default).")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="generation-bench-") as tmp:
        model, tokenizer = build_model(Path(tmp))
    model.to(args.device)
    params = GenerationParams(
        max_new_tokens=args.max_new_tokens,
        min_new_tokens=args.max_new_tokens,
        do_sample=False,
        batch_size=len(PROMPTS) * len(ADAPTERS),
    )
    paths = run_paths(model, tokenizer, params)
    outputs = {name: run() for name, run in paths.items()}  # warm-up round, also the outputs
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, run in paths.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)

    tokens = len(PROMPTS) * len(ADAPTERS) * args.max_new_tokens
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(
        f"device {device} ({torch.get_num_threads()} threads), {len(ADAPTERS)} adapters, "
        f"{tokens} new tokens per path, median of {args.repeats}"
    )
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, median in medians.items():
        runs = ", ".join(f"{s:.3f}" for s in seconds[name])
        print(f"{name:<26} {median:8.3f} s  {tokens / median:9.1f} tokens/s  [{runs}]")
    mixed, per_adapter, per_request = medians.values()
    print(f"speed-up (a) vs (b): {per_adapter / mixed:.2f}x")
    print(f"speed-up (a) vs (c): {per_request / mixed:.2f}x  (target >= 2x)")
    same = len({tuple(texts) for texts in outputs.values()}) == 1
    print(f"identical text on all three paths: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
