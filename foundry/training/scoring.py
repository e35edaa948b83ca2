"""Log-likelihood of completions through any adapter, in mixed-adapter batches.

`score_completions(model, tokenizer, rows)` returns each row's summed negative log-likelihood of
its completion tokens and the token count, given its prompt (and system prompt) rendered with the
chat template: the same framing as training and generation. Rows of one batch may each use a
different adapter (PEFT's `adapter_names`) and steering vectors, so a persona x persona matrix
costs one pass over the data, not one per adapter.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from foundry.data.framing import (
    BASE_ADAPTER,
    MAX_SCORED_TOKENS,
    encode_completion,
    model_context,
)
from foundry.steering.hooks import resolve_steering, steering
from foundry.training.prefix import prefill, shared_prefix

# Logits of one slice of a scoring batch (fp32): a few rows of SmolLM2 at once.
HEAD_CHUNK_BYTES = 256 * 2**20


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
    max_completion: int = MAX_SCORED_TOKENS,
) -> list[Score]:
    """The completion NLL of every row, in order (completions are cut at `max_completion` tokens).

    Args:
        model: a causal LM, or a `PeftModel` holding the adapters the rows name.
        tokenizer: the base model's tokenizer (with a chat template).
        rows: what to score; `adapter` is a loaded adapter name or `__base__`.
        batch_size: rows per forward pass.
        max_completion: completion tokens scored per row; the prompt is kept whole unless the
            row would pass the model's context (`encode_completion`).

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
                scores += _score_batch(model, tokenizer, batch, max_completion)
    finally:
        if was_training:
            model.train()
    return scores


def _score_batch(
    model: Any, tokenizer: Any, batch: Sequence[ScoreRow], max_completion: int
) -> list[Score]:
    """Rows that share an adapter, steering and system prompt and begin with enough of the same
    tokens (`shared_prefix`) are scored in their own pass that reads that prefix once; the rest
    together, as one pass."""
    context = model_context(model)
    encoded = [
        encode_completion(tokenizer, r.prompt, r.completion, r.system, max_completion, context)
        for r in batch
    ]
    groups: dict[tuple[str, tuple[str, ...], str | None], list[int]] = defaultdict(list)
    for i, row in enumerate(batch):
        groups[(row.adapter, row.steer, row.system)].append(i)
    passes, plain = [], []
    for members in groups.values():
        rows = [encoded[i][0] for i in members]
        # The last prompt token predicts the first completion token: it stays out of the prefix.
        shared = shared_prefix(rows, min(encoded[i][1] for i in members) - 1)
        if shared:
            passes.append((members, shared))
        else:
            plain += members
    if plain:
        passes.append((sorted(plain), 0))
    scores: list[Score | None] = [None] * len(batch)
    for members, shared in passes:
        rows = [batch[i] for i in members]
        found = _score_pass(model, tokenizer, rows, [encoded[i] for i in members], shared)
        for i, score in zip(members, found, strict=True):
            scores[i] = score
    return scores  # type: ignore[return-value]


def _score_pass(
    model: Any,
    tokenizer: Any,
    batch: Sequence[ScoreRow],
    encoded: Sequence[tuple[list[int], int]],
    shared: int,
) -> list[Score]:
    """One forward pass over `batch`; with `shared` > 0 the rows' first `shared` tokens are one
    prefix, read once into a KV cache, and the pass covers only what follows it (right-padded)."""
    import torch
    from peft import PeftModel

    width = max(len(ids) for ids, _ in encoded) - shared
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
    attention = torch.zeros((len(batch), shared + width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for i, (ids, prompt_len) in enumerate(encoded):
        rest = ids[shared:]
        input_ids[i, : len(rest)] = torch.tensor(rest)
        attention[i, : shared + len(rest)] = 1
        labels[i, prompt_len - shared : len(rest)] = torch.tensor(ids[prompt_len:])
    kwargs: dict[str, Any] = {}
    peft = isinstance(model, PeftModel)
    if peft:
        kwargs["adapter_names"] = [row.adapter for row in batch]
    if shared:
        kwargs["cache"] = prefill(
            model, encoded[0][0][:shared], batch[0].adapter if peft else None, len(batch)
        )
    device = model.device
    vectors = resolve_steering(model, [row.steer for row in batch])
    # As in generation: steering starts at the last prompt token (an absolute column).
    starts = [prompt_len - 1 for _, prompt_len in encoded]
    # Logits only from the first position that predicts a completion token: the LM head and its
    # softmax over a 49k vocabulary (SmolLM2) cost as much as many decoder layers.
    first = min(starts) - shared
    keep = torch.arange(first, width - 1, device=device)
    # Token t is predicted from position t - 1.
    targets = labels[:, first + 1 :].to(device)
    with steering(model, vectors, starts), _head_inputs(model) as hidden:
        logits = model(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            logits_to_keep=keep,
            **kwargs,
        ).logits
    nll, counts = [], []
    for rows in _head_chunks(model, hidden or [], targets.shape[1]):
        chunk = model.get_output_embeddings()(hidden[0][rows]) if hidden else logits[rows]
        part, picked_targets = chunk.float(), targets[rows]
        mask = picked_targets != -100
        picked = part.gather(-1, picked_targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        logprobs = (picked - torch.logsumexp(part, dim=-1)) * mask
        nll += (-logprobs.sum(dim=1)).tolist()
        counts += mask.sum(dim=1).tolist()
    return [Score(float(n), int(c)) for n, c in zip(nll, counts, strict=True)]


@contextmanager
def _head_inputs(model: Any) -> Iterator[list[Any]]:
    """While inside, the LM head computes nothing and its input (the final hidden states of the
    kept positions) is collected: the caller applies the head a few rows at a time, so a batch's
    logits (rows x positions x a 49k vocabulary: 1.4 GB for 16 SmolLM2 answers) never exist at
    once. Models whose logits are transformed after the head (soft-capped) keep the plain path:
    the list stays empty."""
    head = model.get_output_embeddings()
    config = getattr(model, "config", None)
    if head is None or getattr(config, "final_logit_softcapping", None):
        yield []
        return
    captured: list[Any] = []

    def take(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        captured.append(args[0])
        return (args[0][:, :0], *args[1:])

    handle = head.register_forward_pre_hook(take)
    try:
        yield captured
    finally:
        handle.remove()


def _head_chunks(model: Any, hidden: Sequence[Any], positions: int) -> list[slice]:
    """Row slices whose logits take about `HEAD_CHUNK_BYTES` (one slice when `hidden` is empty:
    the logits already exist)."""
    rows = hidden[0].shape[0] if hidden else 0
    if not rows:
        return [slice(None)]
    vocab = model.get_output_embeddings().weight.shape[0]
    step = max(1, HEAD_CHUNK_BYTES // max(1, positions * vocab * 4))
    return [slice(i, i + step) for i in range(0, rows, step)]
