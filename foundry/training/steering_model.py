"""The model persona vectors are read from and swept on: the base with each persona's DPO adapter.

`load_steering_model(config, personas)` gives the `foundry.steering.inputs.SteeringModel` that
extraction takes: it loads the base once, attaches every selected persona's trained DPO adapter,
answers through generation's mixed-adapter batches and scores fluency on the bare base.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from foundry.config import FoundryConfig
from foundry.data.framing import BASE_ADAPTER
from foundry.training.adapters import CONFIG_FILE, adapter_digest, attach_adapters
from foundry.training.base_model import load_base
from foundry.training.generation import GenerationParams, GenerationRequest, generate
from foundry.training.scoring import ScoreRow, score_completions

DPO_SUFFIX = "-dpo"


@dataclass
class LoadedSteeringModel:
    """A `SteeringModel` over a loaded base and its attached DPO adapters."""

    config: FoundryConfig
    model: Any
    tokenizer: Any
    identity: str
    dpo: dict[str, str] = field(default_factory=dict)  # persona slug -> adapter name

    def answers(
        self,
        prompts: Sequence[str],
        *,
        system: str | None = None,
        adapter: str = BASE_ADAPTER,
        steer: tuple[str, ...] = (),
    ) -> list[str]:
        """One answer per prompt, sampled as evaluation samples (its temperature and seed)."""
        params = GenerationParams(
            max_new_tokens=self.config.steering.max_new_tokens,
            temperature=self.config.evaluation.temperature,
            seed=self.config.evaluation.seed,
            batch_size=self.config.evaluation.batch_size,
        )
        requests = [
            GenerationRequest(prompt=p, adapter=adapter, system=system, steer=steer)
            for p in prompts
        ]
        return [a or " " for a in generate(self.model, self.tokenizer, requests, params)]

    def base_nll(self, prompts: Sequence[str], answers: Sequence[str]) -> float:
        """The answers' mean NLL per token under the bare, unsteered base."""
        rows = [ScoreRow(p, a, BASE_ADAPTER) for p, a in zip(prompts, answers, strict=True)]
        scores = score_completions(self.model, self.tokenizer, rows)
        return sum(s.nll for s in scores) / max(1, sum(s.tokens for s in scores))

    def adapter_digest(self, slug: str) -> str:
        return adapter_digest(self.config.adapter_dir(slug, "dpo"))


def load_steering_model(config: FoundryConfig, personas: Sequence[str]) -> LoadedSteeringModel:
    """The base with each of `personas`' DPO adapters attached (those that are trained)."""
    adapters = {
        f"{slug}{DPO_SUFFIX}": config.adapter_dir(slug, "dpo")
        for slug in personas
        if (config.adapter_dir(slug, "dpo") / CONFIG_FILE).is_file()
    }
    base = load_base(config)
    model = attach_adapters(base.model, adapters)
    dpo = {name[: -len(DPO_SUFFIX)]: name for name in adapters}
    return LoadedSteeringModel(config, model, base.tokenizer, base.identity, dpo)
