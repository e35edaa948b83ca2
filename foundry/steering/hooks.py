"""Activation steering: add `alpha * v` to a decoder block's output on a persona's own new tokens.

`steering(model, rows, starts)` is a context manager: while inside, row `i` of every forward pass
gets the sum of its vectors (`alpha * v` at layer `L`, i.e. added to the output of block `L - 1`)
at every position from column `starts[i]` on. Generation sets the start to the last prompt column
(left padding puts it at the same column in every row): that position predicts the first new
token, and every later position is a new token. With a KV cache, a decoding pass covers one new
column, so the last position of each pass is steered; without one, each pass recomputes every
column and steers the same ones, so cached and uncached generation agree. Scoring steers from each
row's last prompt token too, so a steered variant is measured as it speaks.

The vectors live with the model (`register_vectors`) and requests name them, so a batch can mix
personas, strengths and adapters (LoRA + steering). Nothing here assumes a particular base: the
blocks are found by `foundry.steering.activations.decoder_layers`.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from foundry.errors import FoundryError
from foundry.steering.activations import check_layer, decoder_layers


class SteeringError(FoundryError):
    """A steering vector cannot be applied to this model or request."""


@dataclass(frozen=True)
class SteerVector:
    """A direction at one layer and the strength it is added with."""

    layer: int  # hidden_states index: added to the output of decoder block layer - 1
    vector: np.ndarray = field(repr=False)  # (hidden,) float32, unnormalised
    alpha: float = 1.0
    name: str = ""
    base_model: str = ""

    @property
    def norm(self) -> float:
        return float(np.linalg.norm(self.vector))

    def at(self, alpha: float) -> SteerVector:
        """The same direction at another strength."""
        return SteerVector(self.layer, self.vector, float(alpha), self.name, self.base_model)


_REGISTERED: weakref.WeakKeyDictionary[Any, dict[str, SteerVector]] = weakref.WeakKeyDictionary()


def register_vectors(model: Any, vectors: Mapping[str, SteerVector]) -> None:
    """Make `vectors` available to requests that name them (`GenerationRequest.steer`)."""
    hidden = _hidden_size(model)
    for name, vector in vectors.items():
        check_layer(model, vector.layer)
        if vector.vector.shape != (hidden,):
            raise SteeringError(
                f"steering vector {name!r} has shape {tuple(vector.vector.shape)}, but this "
                f"model's hidden size is {hidden}: it was extracted from another base model; "
                "extract it again with `foundry vectors extract`"
            )
    _REGISTERED.setdefault(_inner(model), {}).update(vectors)


def registered_vectors(model: Any) -> dict[str, SteerVector]:
    return dict(_REGISTERED.get(_inner(model), {}))


def resolve_steering(model: Any, names: Sequence[Sequence[str]]) -> list[list[SteerVector]]:
    """The registered vectors each row names, or an error listing what is registered."""
    known = _REGISTERED.get(_inner(model), {})
    missing = sorted({n for row in names for n in row} - set(known))
    if missing:
        have = ", ".join(sorted(known)) or "none"
        raise SteeringError(
            f"steering vector(s) {', '.join(missing)} are not registered with this model "
            f"(registered: {have}); load them with `register_vectors`"
        )
    return [[known[n] for n in row] for row in names]


@contextmanager
def steering(
    model: Any, rows: Sequence[Sequence[SteerVector]], starts: Sequence[int]
) -> Iterator[None]:
    """Steer row `i` of every forward pass inside the block from column `starts[i]` on.

    Args:
        model: a causal LM or a `PeftModel` around one.
        rows: the vectors of each row of the batch (an empty list leaves the row alone).
        starts: per row, the first absolute column (counting past cached columns) to steer.
    """
    import torch

    if len(rows) != len(starts):
        raise SteeringError(f"{len(rows)} rows of vectors but {len(starts)} start columns")
    if not any(rows):
        yield
        return
    blocks = decoder_layers(model)
    param = next(model.parameters())
    hidden = _hidden_size(model)
    deltas: dict[int, Any] = {}
    for i, vectors in enumerate(rows):
        for v in vectors:
            check_layer(model, v.layer)
            if v.vector.shape != (hidden,):
                raise SteeringError(
                    f"steering vector {v.name or '?'} has {v.vector.shape[0]} dimensions; this "
                    f"model has {hidden}"
                )
            delta = deltas.setdefault(v.layer, torch.zeros(len(rows), hidden))
            delta[i] += float(v.alpha) * torch.from_numpy(np.asarray(v.vector, dtype=np.float32))
    deltas = {k: d.to(device=param.device, dtype=param.dtype) for k, d in deltas.items()}
    start_cols = torch.tensor(list(starts), device=param.device)
    state = {"past": 0}

    def track_past(_module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        state["past"] = int(cache.get_seq_length()) if cache is not None else 0

    def adder(layer: int) -> Any:
        delta = deltas[layer]

        def hook(_module: Any, _inputs: Any, output: Any) -> Any:
            hidden_states = output[0] if isinstance(output, tuple) else output
            batch, width = hidden_states.shape[0], hidden_states.shape[1]
            if batch != delta.shape[0]:
                raise SteeringError(
                    f"steering was set up for {delta.shape[0]} row(s) but a forward pass has "
                    f"{batch}; set it up per batch"
                )
            past = state["past"]
            if width == 1 and bool((start_cols <= past).all()):
                steered = hidden_states + delta[:, None, :]  # decoding: every row's new token
            else:
                columns = torch.arange(past, past + width, device=hidden_states.device)
                mask = (columns[None, :] >= start_cols[:, None]).to(hidden_states.dtype)
                steered = hidden_states + mask[..., None] * delta[:, None, :]
            return (steered, *output[1:]) if isinstance(output, tuple) else steered

        return hook

    handles = [blocks[0].register_forward_pre_hook(track_past, with_kwargs=True)]
    handles += [blocks[layer - 1].register_forward_hook(adder(layer)) for layer in deltas]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _inner(model: Any) -> Any:
    """The model under a `PeftModel` (vectors registered on either are found from both)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _hidden_size(model: Any) -> int:
    return int(_inner(model).config.hidden_size)
