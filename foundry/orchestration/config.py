"""Config section for orchestration (`orchestration:` in foundry.yaml): how the `retrain` flow runs
its steps (training processes or a Ray cluster, threads, retries and time limits).

None of it changes a result, so it stays out of the config hash: switching `executor` keeps
every cached step.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StepResources(_Section):
    """What one Ray task of a step reserves; Ray places it on a node that has them free."""

    num_cpus: float = Field(1.0, gt=0, description="CPU cores (also the task's torch threads).")
    num_gpus: float = Field(0.0, ge=0, description="GPUs (1: one such task per GPU).")
    memory_gb: float = Field(0.0, ge=0, description="Memory to reserve, GiB (0: none).")
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources the node must offer, e.g. {a100: 1}.",
    )


class RayConfig(_Section):
    """Where the Ray cluster is and what each model step asks of it."""

    address: str = Field(
        "",
        description="`auto` (the cluster this machine belongs to), `ray://head:10001`, or empty "
        "for a local Ray started and stopped by the run.",
    )
    local_cpus: int = Field(
        0, ge=0, description="CPUs of the local Ray an empty address starts (0: every core)."
    )
    max_retries: int = Field(
        3, ge=0, description="Retries of a step whose node or worker died (it resumes)."
    )
    scratch_dir: str = Field(
        "",
        description="Node-local folder where steps unpack the project from `paths.shared_url` "
        "(empty: the system temp folder).",
    )
    train: StepResources = Field(default_factory=StepResources)
    vectors: StepResources = Field(default_factory=StepResources)
    evaluate: StepResources = Field(default_factory=StepResources)


class OrchestrationConfig(_Section):
    """How the `retrain` flow runs its steps: processes, retries and time limits."""

    executor: Literal["local", "ray"] = Field(
        "local",
        description="`local`: model steps in a process pool on this machine; `ray`: train, "
        "vectors and evaluation as Ray tasks on `ray.address`.",
    )
    ray: RayConfig = Field(default_factory=RayConfig)

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
