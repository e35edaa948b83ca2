"""Config section for evaluation (`evaluation:` in foundry.yaml): which variants are scored, how
many held-out prompts and items each persona gets, the sampling of answers, and the optional judge.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EvaluationConfig(_Section):
    heldout_topic_fraction: float = Field(
        0.25, gt=0.0, lt=1.0, description="Share of debate topics kept out of training for eval."
    )
    variants: list[Literal["base", "prompt", "sft", "dpo", "steer", "dpo+steer"]] = Field(
        default_factory=lambda: ["base", "prompt", "sft", "dpo", "steer", "dpo+steer"],
        description="Variants evaluated by default (missing adapters or persona vectors are "
        "skipped with a note).",
    )
    prompts_per_persona: int = Field(
        0, ge=0, description="Held-out debate prompts each persona answers (0: all of them)."
    )
    max_conflicts: int = Field(
        0,
        ge=0,
        description="Conflicts (`data/conflicts.yaml`) whose question every persona answers, in "
        "file order (0: all of them); fewer make a quick run.",
    )
    heldout_items: int = Field(
        20, ge=1, description="Held-out corpus items per persona in the perplexity matrix."
    )
    max_new_tokens: int = Field(120, ge=8, description="Longest generated answer, in tokens.")
    temperature: float = Field(0.7, gt=0, description="Sampling temperature of the answers.")
    seed: int = Field(0, ge=0, description="Seed of the sampled answers.")
    batch_size: int = Field(16, ge=1, description="Rows per generation and scoring batch.")
    copy_run_words: int = Field(
        12,
        ge=4,
        description="An answer that shares this many consecutive words with its persona's "
        "training texts counts as copying (the memorisation guard).",
    )
    judge: bool = Field(
        False,
        description="Ask Claude which of two answers is more like the persona (needs "
        "ANTHROPIC_API_KEY; uses `synthesis.model`, cached like synthesis).",
    )
    judge_budget_usd: float = Field(2.0, gt=0, description="Most dollars one judged run may spend.")
    embeddings: Literal["auto", "minilm", "tfidf"] = Field(
        "auto",
        description="Sentence embeddings for homogeneity: all-MiniLM-L6-v2, TF-IDF, or MiniLM "
        "with a TF-IDF fallback.",
    )
