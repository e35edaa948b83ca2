"""GPU check for the CUDA paths (run on a CUDA machine; the CPU suite never needs it).

Exercises, each step independent and reported (never stopping at the first failure):
  peft-cuda: SFT then DPO with PEFT + TRL on CUDA (bf16) on the tiny base;
  qlora:     the tiny base saved as a local folder, loaded 4-bit with bitsandbytes, SFT (PEFT);
  unsloth:   the same folder through Unsloth's FastLanguageModel (4-bit), SFT then DPO;
  generate:  a mixed-adapter batch on CUDA.
Usage: python scripts/gpu_check.py STEP [STEP ...] --out DIR   (writes DIR/gpu_check_<steps>.json)
The tiny base and data/ are expected in .foundry/ and data/ (carried from the CPU machine).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import traceback
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def shim_prefect() -> None:
    """The GPU image has no Prefect; these steps call the plain functions, so a no-op decorator
    stands in for `prefect.task`/`flow` (only in this script)."""
    if importlib.util.find_spec("prefect") is not None:
        return
    fake = types.ModuleType("prefect")

    def decorator(fn=None, **_kwargs):
        return fn if fn is not None else (lambda f: f)

    fake.task = fake.flow = decorator
    sys.modules["prefect"] = fake


def config_for(**env: str):
    from foundry.config import load_config

    environ = {**os.environ, **{f"FOUNDRY_{k}": v for k, v in env.items()}}
    return load_config(ROOT / "foundry.yaml", environ=environ)


def short_training(env: dict[str, str]) -> dict[str, str]:
    return {"TRAINING__SFT__MAX_STEPS": "20", "TRAINING__DPO__MAX_STEPS": "10", **env}


def step_peft_cuda(slug: str) -> dict:
    from foundry.synthesis.pair_sets import load_pairs
    from foundry.training.adapter_training import train_dpo, train_sft

    config = config_for(**short_training({"TRAINING__BACKEND": "peft"}))
    sft = train_sft(config, slug)
    dpo = train_dpo(config, slug, pairs=load_pairs(config, slug))
    return {"sft": sft.summary.model_dump(), "dpo": dpo.summary.model_dump()}


def tiny_folder() -> str:
    from foundry.config import load_config
    from foundry.training.tiny_cache import latest_tiny

    folder = latest_tiny(load_config(ROOT / "foundry.yaml"))
    if folder is None:
        raise RuntimeError("no tiny base in .foundry/base: carry it from the CPU machine")
    return str(folder)


def four_bit_config(backend: str):
    """The tiny base as a local 4-bit model (QLoRA) trained by `backend`, in its own cache."""
    env = {
        "BASE_MODEL__NAME": tiny_folder(),
        "BASE_MODEL__QUANTIZATION": "4bit",
        "TRAINING__BACKEND": backend,
        "PATHS__CACHE_DIR": f".foundry-{backend}-4bit",
    }
    return config_for(**short_training(env))


def step_qlora(slug: str) -> dict:
    from foundry.training.adapter_training import train_sft

    return {"sft": train_sft(four_bit_config("peft"), slug).summary.model_dump()}


def step_unsloth(slug: str) -> dict:
    import unsloth  # noqa: F401  (must import before transformers patches apply)

    from foundry.synthesis.pair_sets import load_pairs
    from foundry.training.adapter_training import train_dpo, train_sft

    config = four_bit_config("unsloth")
    sft = train_sft(config, slug)
    dpo = train_dpo(config, slug, pairs=load_pairs(config, slug))
    return {"sft": sft.summary.model_dump(), "dpo": dpo.summary.model_dump()}


def step_generate(slug: str) -> dict:
    from foundry.training.generation import (
        GenerationParams,
        GenerationRequest,
        generate,
        load_for_generation,
    )

    config = config_for()
    adapters = {f"{slug}-{s}": config.adapter_dir(slug, s) for s in ("sft", "dpo")}
    model, tokenizer = load_for_generation(config, adapters)
    model.to("cuda")
    requests = [
        GenerationRequest(prompt="Debate prompt: Will AI capex pay off?", adapter=a)
        for a in [*adapters, "__base__"] * 4
    ]
    start = time.perf_counter()
    answers = generate(model, tokenizer, requests, GenerationParams(max_new_tokens=48))
    return {
        "seconds": time.perf_counter() - start,
        "answers": answers[:3],
        "device": str(next(model.parameters()).device),
    }


STEPS = {
    "peft-cuda": step_peft_cuda,
    "qlora": step_qlora,
    "unsloth": step_unsloth,
    "generate": step_generate,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("steps", nargs="+", choices=sorted(STEPS))
    parser.add_argument("--persona", default="tobias-renn")
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    shim_prefect()
    import torch

    report: dict = {
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
    }
    for name in args.steps:
        start = time.perf_counter()
        try:
            report[name] = {"ok": True, **STEPS[name](args.persona)}
        except Exception as exc:  # noqa: BLE001 - a GPU check reports every step's outcome
            report[name] = {
                "ok": False,
                "error": repr(exc),
                "trace": traceback.format_exc()[-3000:],
            }
        report[name]["wall_s"] = round(time.perf_counter() - start, 1)
        print(
            f"{name}: {'ok' if report[name]['ok'] else 'FAILED ' + report[name]['error']} "
            f"({report[name]['wall_s']} s)",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"gpu_check_{'_'.join(args.steps)}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"report: {path}")


if __name__ == "__main__":
    main()
