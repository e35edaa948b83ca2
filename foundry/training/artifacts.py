"""What training produces and how it fails: the adapter records, the stage and backend names.

Kept below the trainers and the Together backend alike, so both describe their output and their
errors the same way without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from foundry.errors import FoundryError
from foundry.training.config import LoraSettings

Backend = Literal["peft", "unsloth", "together"]
Stage = Literal["sft", "dpo"]
TrainProgress = Callable[[int, int, dict], None]  # (step, total steps, logs)
SUMMARY_FILENAME = "training_summary.json"


class TrainingError(FoundryError):
    """Training cannot start (backend, LoRA settings, missing adapter) or its output is unusable."""


class TrainingSummary(BaseModel):
    """What produced an adapter; written next to it as `training_summary.json`."""

    model_config = ConfigDict(extra="forbid")

    persona: str
    stage: Stage
    backend: Backend
    base_model: str
    steps: int
    train_tokens: int
    seconds: float
    train_losses: list[float]
    eval_losses: list[float]
    best_eval_loss: float | None
    resumed_from_step: int | None
    learning_rate: float
    lora: LoraSettings
    examples_train: int
    examples_eval: int
    data_rev: str
    config_hash: str
    job_id: str | None = None  # the managed fine-tuning job (`together`); None when local
    experts: dict[str, float] | None = None  # style+reasoning: each expert's weight in the adapter


class AdapterArtifact(BaseModel):
    """A trained adapter folder and its summary."""

    persona: str
    stage: Stage
    path: Path
    summary: TrainingSummary
