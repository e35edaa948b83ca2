"""Log-likelihood of completions through any adapter, in mixed-adapter batches.

`score_completions(model, tokenizer, rows)` returns each row's summed negative log-likelihood of
its completion tokens and the token count, given its prompt (and system prompt) rendered with the
chat template: the same framing as training and generation. Rows of one batch may each use a
different adapter (PEFT's `adapter_names`) and steering vectors, so a persona x persona matrix
costs one pass over the data, not one per adapter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from foundry.data.framing import BASE_ADAPTER, encode_completion
from foundry.steering.hooks import resolve_steering, steering


@dataclass(frozen=True)
class ScoreRow:
    prompt: str
    completion: str
    adapter: str = BASE_ADAPTER
    system: str | None = None
    steer: tuple[str, ...] = ()  # steering vectors registered with the model


@dataclass(frozen=True)
class Score:
    nll: float  # summed over the completion's tokens
    tokens: int

    @property
    def mean_nll(self) -> float:
        return self.nll / self.tokens if self.tokens else math.nan


def score_completions(
    model: Any,
    tokenizer: Any,
    rows: Sequence[ScoreRow],
    batch_size: int = 16,
    max_length: int = 512,
) -> list[Score]:
    """The completion NLL of every row, in order (completions are cut at `max_length` tokens).

    Args:
        model: a causal LM, or a `PeftModel` holding the adapters the rows name.
        tokenizer: the base model's tokenizer (with a chat template).
        rows: what to score; `adapter` is a loaded adapter name or `__base__`.
        batch_size: rows per forward pass.
        max_length: longest prompt + completion in tokens; longer rows lose completion tokens.

    Returns:
        One `Score` per row.
    """
    import torch

    was_training = model.training
    model.eval()
    scores: list[Score] = []
    try:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            with torch.inference_mode():
                scores += _score_batch(model, tokenizer, batch, max_length)
    finally:
        if was_training:
            model.train()
    return scores


def _score_batch(
    model: Any, tokenizer: Any, batch: Sequence[ScoreRow], max_length: int
) -> list[Score]:
    import torch
    from peft import PeftModel

    encoded = [
        encode_completion(tokenizer, row.prompt, row.completion, row.system, max_length)
        for row in batch
    ]
    width = max(len(ids) for ids, _ in encoded)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for i, (ids, prompt_len) in enumerate(encoded):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        labels[i, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])
    kwargs: dict[str, Any] = {}
    if isinstance(model, PeftModel):
        kwargs["adapter_names"] = [row.adapter for row in batch]
    device = model.device
    vectors = resolve_steering(model, [row.steer for row in batch])
    starts = [prompt_len - 1 for _, prompt_len in encoded]  # as in generation: the new tokens
    # Logits only from the first position that predicts a completion token: the LM head and its
    # softmax over a 49k vocabulary (SmolLM2) cost as much as many decoder layers.
    first = min(starts)
    keep = torch.arange(first, width - 1, device=device)
    with steering(model, vectors, starts):
        logits = model(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            logits_to_keep=keep,
            **kwargs,
        ).logits.float()
    # Token t is predicted from position t - 1.
    targets = labels[:, first + 1 :].to(device)
    mask = targets != -100
    picked = logits.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    logprobs = (picked - torch.logsumexp(logits, dim=-1)) * mask
    nll = (-logprobs.sum(dim=1)).tolist()
    counts = mask.sum(dim=1).tolist()
    return [Score(float(n), int(c)) for n, c in zip(nll, counts, strict=True)]
