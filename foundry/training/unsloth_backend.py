"""The Unsloth training backend's own steps: its base loader and its LoRA wrapper (CUDA only).

Public entry points: `load_unsloth_base(config)` and `add_unsloth_lora(model, config)`. Unsloth
is imported inside each function, never when this module is imported: importing it patches
transformers and needs a CUDA GPU.
"""

from __future__ import annotations

from typing import Any

from foundry.config import FoundryConfig
from foundry.training.config import SMOLLM2
from foundry.training.smollm2 import smollm2_folder
from foundry.training.tiny_model import CHAT_TEMPLATE
from foundry.training.trainers import linear_module_names


def load_unsloth_base(config: FoundryConfig) -> tuple[Any, Any]:
    """The base through Unsloth's loader (CUDA only; 4-bit when `quantization: 4bit`)."""
    from unsloth import FastLanguageModel

    kind = config.base_model.kind
    name = str(smollm2_folder(config)) if kind == SMOLLM2 else config.base_model.name
    lengths = [config.training.resolved(stage, kind).max_length or 0 for stage in ("sft", "dpo")]
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=name,
        max_seq_length=max(lengths),
        load_in_4bit=config.base_model.quantization == "4bit",
        dtype=None,
        trust_remote_code=config.base_model.trust_remote_code,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE.replace("<|end|>", tokenizer.eos_token or "")
    return model, tokenizer


def add_unsloth_lora(model: Any, config: FoundryConfig) -> Any:
    """Unsloth's LoRA wrapper with the `training.lora` settings (`all-linear` expanded)."""
    from unsloth import FastLanguageModel

    lora = config.training.lora
    targets = lora.target_modules
    if isinstance(targets, str):
        targets = linear_module_names(model)
    return FastLanguageModel.get_peft_model(
        model,
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        bias="none",
        use_gradient_checkpointing="unsloth",
        random_state=config.training.seed,
    )
