"""Hidden states of a decoder-only model, read with our own forward hooks.

Index convention (recorded with every vector): `hidden_states[L]` is the output of decoder block
`L - 1`, for `L` in `1..num_layers`; `hidden_states[0]` (the embeddings) is not used. The output of
the last block is taken before the model's final norm, so every layer means the same thing (the
`hidden_states` transformers returns put the final norm on the last entry). Our hooks run in a
known order and see exactly the tensor the next block receives, which is also where steering adds.

Entry points: `decoder_layers(model)` finds the blocks of a causal LM or a `PeftModel` around
one; `response_activations(model, tokenizer, rows)` gives each row's mean hidden state over its
response tokens at every layer, in float32.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from foundry.data.framing import BASE_ADAPTER, encode_completion, model_context
from foundry.errors import FoundryError

CONVENTION = (
    "hidden_states[L] is the output of decoder block L-1 (L = 1..num_layers), before the final "
    "norm; vectors are means over response tokens in float32"
)


class LayerError(FoundryError):
    """A layer index or model does not fit the steering convention."""


@dataclass(frozen=True)
class ResponseRow:
    """A response to read activations from, in the chat framing generation uses."""

    prompt: str
    response: str
    system: str | None = None
    adapter: str = BASE_ADAPTER


def decoder_layers(model: Any) -> Any:
    """The model's decoder blocks (a `ModuleList`), under a `PeftModel` wrapper or not."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    for path in ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers"):
        node = inner
        for part in path.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        if node is not None:
            return node
    raise LayerError(
        f"cannot find the decoder blocks of {type(inner).__name__}; steering supports Llama-, "
        "Qwen-, Mistral-, GPT-2- and GPT-NeoX-style models"
    )


def layer_count(model: Any) -> int:
    return len(decoder_layers(model))


def check_layer(model: Any, layer: int) -> None:
    """Raise unless `layer` is a valid `hidden_states` index for steering (1..num_layers)."""
    count = layer_count(model)
    if not 1 <= layer <= count:
        raise LayerError(
            f"layer {layer} is out of range: this model has {count} decoder block(s), so a "
            f"layer is 1..{count} (hidden_states[L] is the output of block L-1)"
        )


@contextmanager
def capture_layers(model: Any) -> Iterator[list[Any]]:
    """While inside, `captured[L - 1]` holds the last output of decoder block `L - 1`."""
    blocks = decoder_layers(model)
    captured: list[Any] = [None] * len(blocks)

    def recorder(index: int) -> Any:
        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            captured[index] = output[0] if isinstance(output, tuple) else output

        return hook

    handles = [block.register_forward_hook(recorder(i)) for i, block in enumerate(blocks)]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def response_activations(
    model: Any, tokenizer: Any, rows: Sequence[ResponseRow], batch_size: int = 16
) -> np.ndarray:
    """Each row's mean hidden state over its response tokens, at every layer.

    Returns:
        float32 array `(rows, num_layers, hidden)`; `[:, L - 1]` is `hidden_states[L]`.
    """
    import torch

    out: list[np.ndarray] = []
    context = model_context(model)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            encoded = [
                encode_completion(tokenizer, r.prompt, r.response, r.system, context=context)
                for r in batch
            ]
            width = max(len(ids) for ids, _ in encoded)
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            response = torch.zeros((len(batch), width), dtype=torch.float32)
            for i, (ids, prompt_len) in enumerate(encoded):
                input_ids[i, : len(ids)] = torch.tensor(ids)
                attention[i, : len(ids)] = 1
                response[i, prompt_len : len(ids)] = 1.0
            kwargs: dict[str, Any] = {}
            if hasattr(model, "peft_config"):
                kwargs["adapter_names"] = [r.adapter for r in batch]
            device = model.device
            with torch.inference_mode(), capture_layers(model) as captured:
                model(input_ids=input_ids.to(device), attention_mask=attention.to(device), **kwargs)
                weights = response.to(device).unsqueeze(-1)
                counts = weights.sum(dim=1).clamp(min=1.0)
                means = [(h.float() * weights).sum(dim=1) / counts for h in captured]
            out.append(torch.stack(means, dim=1).cpu().numpy().astype(np.float32))
    finally:
        if was_training:
            model.train()
    if not out:
        return np.zeros((0, layer_count(model), 0), dtype=np.float32)
    return np.concatenate(out, axis=0)
