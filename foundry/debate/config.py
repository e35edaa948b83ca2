"""Config section for debates (`debate:` in foundry.yaml): rounds, what each turn reads and how
long it may be, sampling, and the embeddings that measure homogeneity."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DebateVariant = Literal["prompt", "sft", "dpo", "steer", "dpo+steer"]
DebateTarget = Literal["in-process", "local", "vllm", "together", "fireworks"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DebateConfig(_Section):
    rounds: int = Field(3, ge=1, le=20, description="Rounds per debate (1: openings only).")
    variant: DebateVariant = Field("dpo", description="Which variant of each persona speaks.")
    target: DebateTarget = Field(
        "in-process",
        description="Where turns are generated: in this process (each round one mixed-adapter "
        "batch) or a served endpoint through the `openai` client.",
    )
    window_chars: int = Field(
        700,
        ge=100,
        description="Characters of each other debater's latest turn a persona reads (the "
        "bounded window of the transcript).",
    )
    max_new_tokens: int = Field(120, ge=8, le=2048, description="Longest turn, in tokens.")
    temperature: float = Field(0.7, gt=0, le=5, description="Sampling temperature of turns.")
    seed: int = Field(0, ge=0, description="Seed of the sampled turns (the same in --compare).")
    batch_size: int = Field(32, ge=1, description="Rows per in-process generation batch.")
    critique: bool = Field(
        False,
        description="Give each turn one self-critique pass against the persona's constitution "
        "before it is said (doubles generation).",
    )
    concurrency: int = Field(
        8, ge=1, le=256, description="Requests in flight at once on a served target."
    )
    embeddings: Literal["auto", "minilm", "tfidf"] = Field(
        "auto", description="Sentence embeddings for homogeneity and the embedding fidelity."
    )
    out_dir: str = Field(
        ".foundry/debates", description="Where transcripts, tables and plots are written."
    )
