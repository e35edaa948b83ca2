"""Config section for persona vectors (`steering:` in foundry.yaml): extraction, layer and strength
selection, and the fluency guard that refuses a strength which hurts the answers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SteeringConfig(_Section):
    """Persona vectors: extraction, layer and strength selection, and the fluency guard."""

    enabled: bool = Field(
        False,
        description="Extract each persona's vector in the `retrain` flow after training (the "
        "`steer` and `dpo+steer` variants need it); `foundry vectors extract` works either way.",
    )
    family: Literal["persona", "one_vs_rest"] = Field(
        "one_vs_rest",
        description="The contrast that steers: `persona` (the persona vs a neutral assistant) or "
        "`one_vs_rest` (the persona vs the mean of the others); all are stored.",
    )
    layer: int = Field(
        0, ge=0, description="hidden_states index to steer at (0: the layer with the best AUC)."
    )
    prompts: int = Field(
        8, ge=2, description="Debate prompts answered under the contract and a neutral prompt."
    )
    max_texts: int = Field(
        64, ge=2, description="Most real train texts per persona read for the vectors."
    )
    alphas: list[float] = Field(
        default_factory=lambda: [0.0, 2.0, 4.0, 6.0, 8.0],
        min_length=2,
        description="Strengths swept (multiples of the raw mean-difference vector).",
    )
    sweep_prompts: int = Field(
        8, ge=1, description="Train-topic debate prompts answered at each strength of the sweep."
    )
    max_new_tokens: int = Field(60, ge=8, description="Longest answer in the sweep, in tokens.")
    fluency_tolerance: float = Field(
        0.5,
        ge=0.0,
        description="Most a strength may raise the answers' mean NLL under the base (nats per "
        "token) over the unsteered answers; a strength past it is refused.",
    )
    min_gain: float = Field(
        0.02,
        ge=0.0,
        description="Least attribution gain over no steering for a strength to be chosen "
        "(otherwise alpha 0 is kept and the note says steering did not help).",
    )

    @model_validator(mode="after")
    def _alphas_start_at_zero(self) -> SteeringConfig:
        if 0.0 not in self.alphas:
            raise ValueError("alphas must include 0.0: the sweep compares every strength with none")
        if any(a < 0 for a in self.alphas):
            raise ValueError("alphas must not be negative (steer away with `vectors` algebra)")
        return self
