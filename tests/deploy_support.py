"""Registered persona versions for deployment tests, without training anything.

`register_lora(config, slug, base_model, rank=8)` writes a LoRA adapter (a real
`adapter_config.json` and random `adapter_model.safetensors`, plus files that must never be
uploaded), logs it to an MLflow run of the project's sqlite registry and registers it as a new
version of the persona's model, tagged with `base_model` like the retrain flow does.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from foundry.config import FoundryConfig
from registry.models import register_adapter, set_alias
from registry.tracking import experiment_id, open_client

NOT_FOR_UPLOAD = ("tokenizer.json", "training_summary.json")


def write_lora(
    folder: Path, base_model: str, rank: int = 8, seed: int = 0, width: int = 32
) -> Path:
    """A LoRA adapter folder for q_proj/v_proj of a 2-block model of `width`."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(2):
        for module in ("q_proj", "v_proj"):
            key = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{key}.lora_A.weight"] = 0.1 * torch.randn(rank, width, generator=generator)
            tensors[f"{key}.lora_B.weight"] = 0.1 * torch.randn(width, rank, generator=generator)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": rank,
        "lora_alpha": 2 * rank,
        "lora_dropout": 0.0,
        "target_modules": ["q_proj", "v_proj"],
        "bias": "none",
    }
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2))
    for name in NOT_FOR_UPLOAD:
        (folder / name).write_text("{}")
    return folder


def register_lora(
    config: FoundryConfig,
    slug: str,
    base_model: str,
    rank: int = 8,
    seed: int = 0,
    champion: bool = True,
    width: int = 32,
) -> int:
    """Register a fresh adapter as `slug`'s next version (champion by default); its number."""
    client = open_client(config)
    run = client.create_run(experiment_id(client, config), tags={"persona": slug})
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_lora(Path(tmp) / "adapter", base_model, rank=rank, seed=seed, width=width)
        client.log_artifacts(run.info.run_id, str(folder), "adapter")
    version = register_adapter(client, slug, run.info.run_id, tags={"base_model": base_model})
    if champion:
        set_alias(client, slug, "champion", version.version)
    return int(version.version)
