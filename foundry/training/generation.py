"""Generation from a base model with any number of LoRA adapters, mixed within one batch.

Entry points: `load_for_generation(config, adapters)` loads the base once and attaches every
adapter to one `PeftModel` (`attach_adapters`); `generate(model, tokenizer, requests, params)`
answers `GenerationRequest`s in batches whose rows may each use a different adapter (PEFT's
`adapter_names`, `BASE_ADAPTER` for the bare base) with an optional system prompt, left padding,
sampling parameters and a seed. Adapter checks and loading (`check_adapter_folder`,
`attach_adapters`, `use_adapter`) live in `foundry.training.adapters` and are re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from foundry.config import FoundryConfig
from foundry.data.framing import BASE_ADAPTER
from foundry.logs import get_logger
from foundry.steering.hooks import resolve_steering, steering
from foundry.steering.variants import ResolvedVariant, register_variant_vectors
from foundry.training.adapters import (
    AdapterError,
    attach_adapters,
    check_adapter_folder,
    check_adapters,
    use_adapter,
)
from foundry.training.prefix import prefill, shared_prefix

__all__ = [
    "AdapterError",
    "GenerationParams",
    "GenerationRequest",
    "attach_adapters",
    "check_adapter_folder",
    "generate",
    "load_for_generation",
    "use_adapter",
]

logger = get_logger(__name__)


class GenerationParams(BaseModel):
    """How to decode: length, sampling, seed and batch size."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(
        120, ge=1, le=8192, description="Most tokens generated per response (stops earlier at eos)."
    )
    min_new_tokens: int = Field(
        0,
        ge=0,
        description="Fewest tokens generated before eos may end a response (benchmarks set it to "
        "max_new_tokens so every run generates the same count).",
    )
    temperature: float = Field(
        0.8, gt=0.0, le=5.0, description="Softmax temperature when sampling; lower is more focused."
    )
    top_p: float = Field(
        0.95,
        gt=0.0,
        le=1.0,
        description="Nucleus sampling: keep the smallest token set of this mass.",
    )
    do_sample: bool = Field(
        True, description="Sample with temperature/top_p; false decodes greedily (deterministic)."
    )
    seed: int = Field(0, ge=0, description="Seed set before each batch, so a run is reproducible.")
    batch_size: int = Field(
        16,
        ge=1,
        le=1024,
        description="Requests per forward batch; rows may use different adapters.",
    )

    @model_validator(mode="after")
    def _min_below_max(self) -> GenerationParams:
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"min_new_tokens ({self.min_new_tokens}) must not exceed max_new_tokens "
                f"({self.max_new_tokens}); lower min_new_tokens or raise max_new_tokens"
            )
        return self


class GenerationRequest(BaseModel):
    """One prompt, the adapter that answers it, and an optional system prompt."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="The user turn.")
    adapter: str = Field(
        BASE_ADAPTER, min_length=1, description=f"Loaded adapter name, or `{BASE_ADAPTER}`."
    )
    system: str | None = Field(
        None, description="System prompt (e.g. the persona contract for the prompt-only variant)."
    )
    steer: tuple[str, ...] = Field(
        (), description="Steering vectors registered with the model (`register_vectors`) to add."
    )


def load_for_generation(
    config: FoundryConfig, adapters: dict[str, Path], steered: Sequence[ResolvedVariant] = ()
) -> tuple[Any, Any]:
    """Load the configured base once (tiny: the latest cached build) with `adapters` attached.

    Args:
        config: The project config (`base_model` section).
        adapters: Adapter name -> adapter folder; may be empty.
        steered: Variants whose persona vectors to register (under `ResolvedVariant.steer`).

    Returns:
        `(model, tokenizer)`: a `PeftModel` when adapters were given, else the base model.

    Raises:
        AdapterError: An adapter folder or name is invalid (checked before the base loads).
        BaseModelError: The base model cannot be loaded.
        VectorError: A persona vector comes from another base model.
    """
    from foundry.training.base_model import load_base

    check_adapters(adapters)  # fail before the (possibly slow) base model loads
    base = load_base(config)
    model = attach_adapters(base.model, adapters)
    register_variant_vectors(model, steered, base.identity)
    return model, base.tokenizer


def generate(
    model: Any,
    tokenizer: Any,
    requests: Sequence[GenerationRequest],
    params: GenerationParams,
    streamer: Any = None,
) -> list[str]:
    """Answer each request with its adapter; rows of one batch may use different adapters.

    Args:
        model: A causal LM, or a `PeftModel` holding the adapters the requests name.
        tokenizer: The base model's tokenizer (with a chat template).
        requests: Prompts in the order the answers come back.
        params: Decoding settings; `torch.manual_seed(params.seed)` runs before every batch.
        streamer: A transformers streamer (`put(token_ids)`, `end()`) fed each step's new tokens
            of every row; the requests must then fit one batch.

    Returns:
        One response per request: the new tokens only, special tokens skipped, stripped.

    Raises:
        AdapterError: A request names an adapter the model does not hold.
    """
    import torch

    _check_requested_adapters(model, requests)
    if streamer is not None and len(requests) > params.batch_size:
        raise ValueError("a streamer follows one batch: raise params.batch_size to the requests")
    started, new_tokens, answers = time.perf_counter(), 0, []
    previous_side, was_training = tokenizer.padding_side, model.training
    tokenizer.padding_side = "left"  # new tokens of every row start at the same column
    model.eval()
    try:
        for start in range(0, len(requests), params.batch_size):
            batch = requests[start : start + params.batch_size]
            torch.manual_seed(params.seed)
            texts, count = _generate_batch(model, tokenizer, batch, params, streamer)
            answers += texts
            new_tokens += count
    finally:
        tokenizer.padding_side = previous_side
        if was_training:
            model.train()
    logger.info(
        "generated %d response(s), %d new tokens in %.2f s (batch size %d)",
        len(answers),
        new_tokens,
        time.perf_counter() - started,
        params.batch_size,
    )
    return answers


def _generate_batch(
    model: Any,
    tokenizer: Any,
    batch: Sequence[GenerationRequest],
    params: GenerationParams,
    streamer: Any = None,
) -> tuple[list[str], int]:
    import torch

    inputs, cache = _batch_inputs(model, tokenizer, batch)
    kwargs = _decoding_kwargs(model, tokenizer, params)
    if _is_peft(model):
        kwargs["adapter_names"] = [request.adapter for request in batch]
    if cache is not None:
        kwargs["cache"] = cache
    vectors = resolve_steering(model, [request.steer for request in batch])
    # The last prompt column (the same in every row under left padding) predicts the first new
    # token: steering starts there, so it covers exactly the persona's own new tokens.
    start = inputs["input_ids"].shape[1] - 1
    with torch.inference_mode(), steering(model, vectors, [start] * len(batch)):
        output = model.generate(**inputs, **kwargs, streamer=streamer)
    new = output[:, inputs["input_ids"].shape[1] :]
    count = int((new != tokenizer.pad_token_id).sum())
    decoded = tokenizer.batch_decode(new, skip_special_tokens=True)
    return [text.strip() for text in decoded], count


def _batch_inputs(
    model: Any, tokenizer: Any, batch: Sequence[GenerationRequest]
) -> tuple[dict[str, Any], Any]:
    """(input_ids and attention mask, the shared prefix's KV cache or None).

    Without a shared prefix, rows are left-padded. With one (rows of one adapter that begin with
    the same tokens, e.g. a contract system prompt), the prefix is read once and each row's rest
    is left-padded after it: padding in the middle, masked out, so that the new tokens of every
    row still start at the same column. The chat template writes the bos token itself; the
    tokenizer must not add another.
    """
    import torch

    texts = [_render(tokenizer, request) for request in batch]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    adapters = {request.adapter for request in batch}
    shared = shared_prefix(ids, min(len(row) for row in ids) - 1) if len(adapters) == 1 else 0
    if not shared:
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        return dict(inputs.to(model.device)), None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    width = max(len(row) for row in ids) - shared
    input_ids, attention = [], []
    for row in ids:
        rest = row[shared:]
        gap = width - len(rest)
        input_ids.append(row[:shared] + [pad] * gap + rest)
        attention.append([1] * shared + [0] * gap + [1] * len(rest))
    adapter = next(iter(adapters)) if _is_peft(model) else None
    cache = prefill(model, ids[0][:shared], adapter, len(batch))
    inputs = {
        "input_ids": torch.tensor(input_ids, device=model.device),
        "attention_mask": torch.tensor(attention, device=model.device),
    }
    return inputs, cache


def prompt_tokens(tokenizer: Any, request: GenerationRequest) -> int:
    """How many tokens the model reads for `request`: its chat-templated prompt, system included."""
    return len(tokenizer(_render(tokenizer, request), add_special_tokens=False)["input_ids"])


def _render(tokenizer: Any, request: GenerationRequest) -> str:
    messages = [{"role": "system", "content": request.system}] if request.system else []
    messages.append({"role": "user", "content": request.prompt})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _decoding_kwargs(model: Any, tokenizer: Any, params: GenerationParams) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "max_new_tokens": params.max_new_tokens,
        "min_new_tokens": params.min_new_tokens,
        "do_sample": params.do_sample,
        "pad_token_id": tokenizer.pad_token_id,
    }
    # Keep the model's own eos list (some chat models end turns with several tokens).
    if getattr(model.generation_config, "eos_token_id", None) is None:
        kwargs["eos_token_id"] = tokenizer.eos_token_id
    if params.do_sample:
        kwargs.update(temperature=params.temperature, top_p=params.top_p)
    else:  # neutralise sampling defaults a model's generation_config may carry
        kwargs.update(temperature=1.0, top_p=1.0, top_k=None)
    return kwargs


def _is_peft(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def _check_requested_adapters(model: Any, requests: Sequence[GenerationRequest]) -> None:
    loaded = set(model.peft_config) if _is_peft(model) else set()
    unknown = sorted({r.adapter for r in requests} - loaded - {BASE_ADAPTER})
    if unknown:
        have = ", ".join(sorted(loaded)) or "none"
        raise AdapterError(
            f"requested adapter(s) {', '.join(unknown)} are not loaded (loaded: {have}); "
            "pass them to `load_for_generation` / `attach_adapters`, or use "
            f"{BASE_ADAPTER!r} for the base model"
        )
