"""An evaluation pass with mixed-adapter batches against one adapter at a time, side by side.

The pass is what `foundry.evaluation.run.evaluate` does per variant, on four adapters (random,
non-zero LoRA weights on the cached tiny base, as in `benchmarks/generation.py`): every adapter
answers the same held-out prompts (greedy, a fixed number of new tokens) and scores every persona's
held-out corpus (the perplexity matrix: 4 adapters x 4 corpora). Two ways:

  (a) mixed:       batches whose rows each name their adapter (PEFT `adapter_names`);
  (b) per adapter: the same rows adapter by adapter, switching with `set_adapter`.

Each path runs `--repeats` times, interleaved, after one warm-up round; the script prints the
median seconds of each, the speed-up of (a) over (b), and whether both gave the same answers and
the same scores. It prints, it does not assert.

Run: `.venv/bin/python benchmarks/evaluation.py [--items 8] [--repeats 3] [--threads 1]`
(`--device cuda` on a GPU).
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from generation import ADAPTERS, PROMPTS, REPO_ROOT, build_model

from foundry.config import load_config
from foundry.data.validation import validate_personas
from foundry.training.generation import GenerationParams, GenerationRequest, generate, use_adapter
from foundry.training.scoring import ScoreRow, score_completions

Result = tuple[list[str], list[float]]


def heldout_rows(items_per_persona: int) -> list[tuple[str, str]]:
    """(debate prompt, text) of each sample persona's first held-out items."""
    config = load_config(REPO_ROOT / "foundry.yaml")
    config.paths.data_dir = config.paths.examples_dir
    summary = validate_personas(config)
    from foundry.data.framing import item_prompts

    rows = []
    for persona in summary.personas:
        held = [i for i in persona.items if i.split == "test"][:items_per_persona]
        prompts = item_prompts(held, summary.topic_split.framing)
        rows += [(prompts[i.id], i.text) for i in held]
    return rows


def paths(model: Any, tokenizer: Any, corpus: list[tuple[str, str]], new_tokens: int) -> dict:
    params = GenerationParams(
        max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, batch_size=16
    )
    requests = [GenerationRequest(prompt=p, adapter=a) for a in ADAPTERS for p in PROMPTS]
    rows = [ScoreRow(p, t, a) for a in ADAPTERS for p, t in corpus]

    def mixed() -> Result:
        answers = generate(model, tokenizer, requests, params)
        return answers, [s.nll for s in score_completions(model, tokenizer, rows)]

    def per_adapter() -> Result:
        answers, scores = [], []
        for name in ADAPTERS:
            mine = [GenerationRequest(prompt=r.prompt) for r in requests if r.adapter == name]
            plain = [ScoreRow(r.prompt, r.completion) for r in rows if r.adapter == name]
            with use_adapter(model, name) as inner:
                answers += generate(inner, tokenizer, mine, params)
                scores += [s.nll for s in score_completions(inner, tokenizer, plain)]
        return answers, scores

    return {"(a) mixed batches": mixed, "(b) one adapter at a time": per_adapter}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=8, help="Held-out items per persona.")
    parser.add_argument("--new-tokens", type=int, default=32, help="Tokens per answer.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed rounds per path.")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default).")
    parser.add_argument("--device", default="cpu", help="Torch device, e.g. cpu or cuda.")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="evaluation-bench-") as tmp:
        model, tokenizer = build_model(Path(tmp))
    model.to(args.device)
    corpus = heldout_rows(args.items)
    runs: dict[str, Callable[[], Result]] = paths(model, tokenizer, corpus, args.new_tokens)
    outputs = {name: run() for name, run in runs.items()}  # warm-up, also the results
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(
        f"{device} ({torch.get_num_threads()} threads): {len(ADAPTERS)} adapters x {len(PROMPTS)} "
        f"prompts x {args.new_tokens} tokens, and {len(ADAPTERS)} x {len(corpus)} scored "
        f"held-out items; median of {args.repeats}"
    )
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, median in medians.items():
        print(f"{name:<28} {median:7.3f} s  [{', '.join(f'{s:.3f}' for s in seconds[name])}]")
    mixed, single = medians.values()
    print(f"speed-up (a) vs (b): {single / mixed:.2f}x")
    (answers_a, scores_a), (answers_b, scores_b) = outputs.values()
    same_scores = all(
        math.isclose(a, b, rel_tol=1e-4) for a, b in zip(scores_a, scores_b, strict=True)
    )
    print(
        f"same answers: {'yes' if answers_a == answers_b else 'NO'}; same scores: "
        f"{'yes' if same_scores else 'NO'}"
    )


if __name__ == "__main__":
    main()
