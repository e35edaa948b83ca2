"""SFT throughput with and without packing: same persona, same data, same steps, one process.

Builds a throwaway project from the shipped sample, trains the default tiny base once, then runs
SFT on one persona alternately with `training.sft.packing` off and on (`--repeats` rounds, so
machine load drifts hit both), and prints training tokens per second (non-padding tokens, the
trainer's own count) for each and the ratio. Run: `.venv/bin/python benchmarks/training.py
[--persona tobias-renn] [--steps 30] [--repeats 2]`.

Packing fills every row to `max_length` (512) where unpadded rows are as long as the batch's
longest example, and TRL runs packed batches padding-free; without FlashAttention's variable-length
kernels (CPU) attention over the long rows can cost more than the padding saved.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from foundry.config import load_config
from foundry.training.adapter_training import train_sft
from foundry.training.base_model import LoadedBase, ensure_base
from foundry.training.tiny_model import load_tiny_folder

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_project(root: Path, steps: int) -> Path:
    """A project whose data is the sample; SFT runs `steps` steps and evaluates once, at the end."""
    shutil.copytree(REPO_ROOT / "examples" / "sample", root / "data")
    config_file = root / "foundry.yaml"
    config_file.write_text(f"training:\n  sft: {{max_steps: {steps}, eval_steps: {steps}}}\n")
    return config_file


def run_once(config, persona: str, base_folder: Path, packing: bool) -> dict[str, float]:
    """One SFT run; tokens/s over the whole run and over its steady logging intervals."""
    config.training.sft.packing = packing
    model, tokenizer = load_tiny_folder(base_folder)  # fresh: training adds LoRA layers to it
    base = LoadedBase(model=model, tokenizer=tokenizer, name="tiny", path=base_folder, is_tiny=True)
    rates: list[float] = []

    def progress(step: int, total: int, logs: dict) -> None:
        if "tokens_per_s" in logs:
            rates.append(logs["tokens_per_s"])

    summary = train_sft(config, persona, base=base, progress=progress).summary
    return {
        "tokens": summary.train_tokens,
        "seconds": summary.seconds,
        "overall": summary.train_tokens / summary.seconds,
        "steady": statistics.median(rates[1:] or rates),  # the first interval includes warm-up
        "loss": summary.train_losses[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persona", default="tobias-renn", help="sample persona to train")
    parser.add_argument("--steps", type=int, default=30, help="SFT steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of (off, on)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="foundry-bench-") as tmp:
        config = load_config(make_project(Path(tmp), args.steps))
        start = time.perf_counter()
        base = ensure_base(config)
        print(f"tiny base (default settings) ready in {time.perf_counter() - start:.1f} s")
        runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for _ in range(args.repeats):
            for packing in (False, True):
                runs[packing].append(run_once(config, args.persona, base.path, packing))
    s = config.training.sft
    print(f"persona {args.persona}: {args.steps} steps x batch {s.batch_size}, max_length "
          f"{s.max_length}, {args.repeats} run(s) each, alternating")  # fmt: skip
    print(
        f"{'packing':8} {'tokens/run':>10} {'s/run':>7} {'tokens/s':>9} {'steady':>9} {'loss':>7}"
    )
    mean = {}
    for packing, results in runs.items():
        mean[packing] = {k: statistics.mean(r[k] for r in results) for k in results[0]}
        m = mean[packing]
        print(f"{'on' if packing else 'off':8} {m['tokens']:10.0f} {m['seconds']:7.2f} "
              f"{m['overall']:9.1f} {m['steady']:9.1f} {m['loss']:7.3f}")  # fmt: skip
    ratio = mean[True]["overall"] / mean[False]["overall"]
    steady = mean[True]["steady"] / mean[False]["steady"]
    print(f"packing on / off, tokens per second: {ratio:.2f}x overall, {steady:.2f}x steady")


if __name__ == "__main__":
    main()
