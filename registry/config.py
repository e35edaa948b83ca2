"""Config section for the MLflow registry (`registry:` in foundry.yaml): where runs are tracked,
which adapter stage is registered, and the promotion policy (`registry.promotion`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PromotionConfig(_Section):
    """When a challenger becomes champion: absolute gates, then no regression on `compare`."""

    min_content_recall: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Least share of the persona's answers the content "
        "classifier attributes to it (chance is 1 / personas).",
    )
    min_style_recall: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Least share the style classifier attributes to it; empty means chance "
        "(1 / personas evaluated), so a persona whose voice is not recognised above chance is "
        "refused.",
    )
    max_fluency_nll: float = Field(
        8.0, gt=0, description="Most mean token NLL of the answers under the base model."
    )
    max_copy_rate: float = Field(
        0.10,
        ge=0,
        le=1,
        description="Most share of the persona's answers that may repeat its training text "
        "(`evaluation.copy_run_words` words in a row): an adapter that scores by copying is "
        "refused.",
    )
    compare: list[str] = Field(
        default_factory=lambda: ["content_recall", "style_recall", "belief_margin"],
        description="Metrics a challenger must not regress against the champion.",
    )
    tolerance: float = Field(
        0.05, ge=0, description="How much worse than the champion a compared metric may be."
    )


class RegistryConfig(_Section):
    tracking_uri: str = Field(
        "",
        description="MLflow tracking URI; empty means MLFLOW_TRACKING_URI or <root>/mlflow.db.",
    )
    experiment: str = Field("persona-foundry", description="MLflow experiment name.")
    stage: Literal["sft", "dpo"] = Field(
        "dpo", description="Which trained adapter becomes the registered model version."
    )
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
