"""Who generates a debate's turns: the personas in this process, or a served endpoint.

A `Speaker` answers a list of `TurnJob`s (one persona's user turn each) with `Spoken` turns.
`InProcessSpeaker` answers a whole round as one mixed-adapter batch (each row names its persona's
adapter, system prompt and steering vector); `ServedSpeaker` sends each turn to an
OpenAI-compatible endpoint (`foundry serve`, vLLM, Together, Fireworks) through the official
`openai` client, several at once, with the client's retries on transient errors.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from foundry.steering.variants import ResolvedVariant
from foundry.training.generation import GenerationParams, GenerationRequest, generate


@dataclass(frozen=True)
class TurnJob:
    debate_id: str
    persona: str
    prompt: str


@dataclass(frozen=True)
class Spoken:
    text: str
    tokens: int
    latency_s: float


class Speaker(Protocol):
    target: str

    def speak(self, jobs: Sequence[TurnJob], seed: int) -> list[Spoken]:
        """One turn per job, in order; `seed` makes sampling repeatable where the target can."""


class InProcessSpeaker:
    """Turns from a model loaded here (`load_for_generation` with every persona's adapter)."""

    target = "in-process"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        variants: Mapping[str, ResolvedVariant],
        params: GenerationParams,
    ) -> None:
        self.model, self.tokenizer, self.variants, self.params = model, tokenizer, variants, params

    def speak(self, jobs: Sequence[TurnJob], seed: int) -> list[Spoken]:
        requests = []
        for job in jobs:
            variant = self.variants[job.persona]
            steer = (variant.steer,) if variant.steer else ()
            requests.append(
                GenerationRequest(
                    prompt=job.prompt, adapter=variant.adapter, system=variant.system, steer=steer
                )
            )
        params = self.params.model_copy(update={"seed": seed})
        started = time.perf_counter()
        texts = generate(self.model, self.tokenizer, requests, params)
        elapsed = time.perf_counter() - started
        counts = [len(self.tokenizer(text, add_special_tokens=False).input_ids) for text in texts]
        return [Spoken(text, n, round(elapsed, 3)) for text, n in zip(texts, counts, strict=True)]


@dataclass(frozen=True)
class ServedModel:
    """What a served endpoint calls one persona: the `model` name and an optional system prompt,
    plus request fields beyond OpenAI's (`persona_vector` for `foundry serve`'s steering)."""

    model: str
    system: str | None = None
    extra_body: tuple[tuple[str, str], ...] = ()


class ServedSpeaker:
    """Turns from an OpenAI-compatible endpoint, `concurrency` requests at a time."""

    def __init__(
        self,
        target: str,
        client: Any,
        models: Mapping[str, ServedModel],
        max_tokens: int,
        temperature: float,
        concurrency: int = 8,
    ) -> None:
        self.target, self.client, self.models = target, client, models
        self.max_tokens, self.temperature, self.concurrency = max_tokens, temperature, concurrency

    def speak(self, jobs: Sequence[TurnJob], seed: int) -> list[Spoken]:
        if not jobs:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(jobs))) as pool:
            return list(pool.map(lambda job: self._one(job, seed), jobs))

    def _one(self, job: TurnJob, seed: int) -> Spoken:
        served = self.models[job.persona]
        messages = [{"role": "user", "content": job.prompt}]
        if served.system:
            messages.insert(0, {"role": "system", "content": served.system})
        started = time.perf_counter()
        response = self.client.chat.completions.create(
            model=served.model,
            messages=messages,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            seed=seed,
            extra_body=dict(served.extra_body) or None,
        )
        elapsed = time.perf_counter() - started
        text = (response.choices[0].message.content or "").strip()
        usage = getattr(response, "usage", None)
        tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        return Spoken(text, tokens, round(elapsed, 3))
