"""Config section for orchestration (`orchestration:` in foundry.yaml): how the `retrain` flow runs
its steps (training processes, threads, retries and time limits).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class OrchestrationConfig(_Section):
    """How the `retrain` flow runs its steps: processes, retries and time limits."""

    workers: int = Field(
        0,
        ge=0,
        description="Training processes at once (0: one per CPU core, at most one per persona "
        "to train; use 1 per GPU).",
    )
    threads_per_worker: int = Field(
        0, ge=0, description="Torch threads in each training process (0: cores / processes)."
    )
    retries: int = Field(
        2, ge=0, description="Retries of a remote step (synthesis, uploads) that failed whole."
    )
    retry_delay_s: float = Field(
        30.0, ge=0, description="First retry delay; each next retry waits twice as long."
    )
    train_timeout_s: float = Field(
        14400.0,
        gt=0,
        description="Longest one persona's SFT + DPO training may run (its process is stopped).",
    )
    eval_timeout_s: float = Field(7200.0, gt=0, description="Longest evaluation may run.")
