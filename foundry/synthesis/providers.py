"""Picking a synthesis provider, and the two that run here without a key.

`offline` (`OfflineProvider`) is a deterministic composer grounded in the persona's corpus and
reasoning method: a fallback for tests and demos, not a substitute for a strong model. `local`
(`LocalProvider`) is the base model answering with the contract as system prompt: the prompt-only
baseline, which is also where offline runs get their "generic" negatives for preference pairs.
`anthropic` lives in `foundry.synthesis.anthropic_provider`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from foundry.config import FoundryConfig, Settings
from foundry.data.textnorm import words
from foundry.logs import get_logger
from foundry.synthesis.jobs import (
    Budget,
    GenerationJob,
    GenerationResult,
    ProgressHook,
    Provider,
    ResultSink,
    RunReport,
    SynthesisError,
    Usage,
)
from foundry.synthesis.offline_composer import compose_turn

logger = get_logger(__name__)

OFFLINE_MODEL = "offline-composer-v1"
LOCAL_MAX_NEW_TOKENS = 200


def resolve_provider_name(config: FoundryConfig, settings: Settings, override: str = "") -> str:
    """`anthropic`, `offline` or `local`: `auto` means anthropic when a key is set.

    Raises:
        SynthesisError: `anthropic` was asked for and ANTHROPIC_API_KEY is not set.
    """
    name = override or config.synthesis.provider
    if name not in {"auto", "anthropic", "offline", "local"}:
        raise SynthesisError(f"unknown provider {name!r}; use anthropic, offline or local")
    if name == "auto":
        return "anthropic" if settings.anthropic_api_key else "offline"
    if name == "anthropic" and not settings.anthropic_api_key:
        raise SynthesisError(
            "the anthropic provider needs an API key and ANTHROPIC_API_KEY is not set; export it "
            "(or FOUNDRY_ANTHROPIC_API_KEY), or run with --provider offline"
        )
    return name


def make_provider(
    name: str,
    config: FoundryConfig,
    settings: Settings,
    *,
    load_base: Callable[[], Any] | None = None,
    state_path: Path | None = None,
) -> Provider:
    """The provider called `name` (see `resolve_provider_name`); `load_base` feeds `local`."""
    if name == "anthropic":
        from foundry.synthesis.anthropic_provider import AnthropicProvider

        key = settings.anthropic_api_key
        if key is None:
            raise SynthesisError("ANTHROPIC_API_KEY is not set; export it, or use offline")
        return AnthropicProvider(
            config.synthesis,
            key.get_secret_value(),
            base_url=settings.anthropic_base_url,
            state_path=state_path,
        )
    if name == "local":
        if load_base is None:
            raise SynthesisError("the local provider needs the base model; pass `load_base`")
        return LocalProvider(load_base, config.base_model.name, seed=config.training.seed)
    return OfflineProvider()


class OfflineProvider:
    """Composes each turn from the job's structured inputs (`job.meta`); free and deterministic."""

    name = "offline"
    model = OFFLINE_MODEL

    def generate(
        self,
        jobs: Sequence[GenerationJob],
        sink: ResultSink,
        budget: Budget,
        progress: ProgressHook | None = None,
    ) -> RunReport:
        report = RunReport()
        for job in jobs:
            started = time.perf_counter()
            meta = job.meta
            if "contract" not in meta:
                report.failed[job.key] = "the offline composer only writes persona turns"
            else:
                text = compose_turn(
                    meta["contract"],
                    meta["prompt"],
                    meta["move"],
                    meta["passages"],
                    meta.get("opponent_text"),
                    seed=job.key,
                    beliefs=meta.get("belief_path", ()),
                )
                usage = Usage(output_tokens=len(words(text)))
                sink(job, _free_result(job, text, self, usage, started, "offline"))
                report.completed += 1
                report.usage = report.usage + usage
            if progress:
                progress(1)
        return report


class LocalProvider:
    """The base model with each job's system prompt (the prompt-only baseline); batched, free."""

    name = "local"

    def __init__(self, load_base: Callable[[], Any], model: str, seed: int = 0) -> None:
        self._load_base = load_base
        self._loaded: Any = None
        self.seed = seed
        self.model = model

    def generate(
        self,
        jobs: Sequence[GenerationJob],
        sink: ResultSink,
        budget: Budget,
        progress: ProgressHook | None = None,
    ) -> RunReport:
        from foundry.training.generation import GenerationParams, GenerationRequest, generate

        report = RunReport()
        if not jobs:
            return report
        base = self._base()
        params = GenerationParams(
            max_new_tokens=min(LOCAL_MAX_NEW_TOKENS, max(j.max_tokens for j in jobs)),
            temperature=max(0.05, jobs[0].temperature),
            seed=self.seed,
        )
        batch = params.batch_size
        for start in range(0, len(jobs), batch):
            chunk, started = jobs[start : start + batch], time.perf_counter()
            requests = [GenerationRequest(prompt=j.user, system=j.system or None) for j in chunk]
            texts = generate(base.model, base.tokenizer, requests, params)
            for job, text in zip(chunk, texts, strict=True):
                if not text.strip():
                    report.failed[job.key] = "the base model produced no text"
                else:
                    usage = Usage(output_tokens=len(words(text)))
                    sink(job, _free_result(job, text, self, usage, started, "local"))
                    report.completed += 1
                if progress:
                    progress(1)
        return report

    def _base(self) -> Any:
        if self._loaded is None:
            self._loaded = self._load_base()
        return self._loaded


def _free_result(
    job: GenerationJob, text: str, provider: Any, usage: Usage, started: float, mode: Any
) -> GenerationResult:
    return GenerationResult(
        key=job.key,
        text=text,
        provider=provider.name,
        model=provider.model,
        usage=usage,
        cost_usd=0.0,
        duration_s=round(time.perf_counter() - started, 4),
        mode=mode,
    )
