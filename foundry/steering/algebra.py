"""Arithmetic on steering vectors: scale, add, subtract, and steering "away from B".

Only vectors at the same layer of the same base model combine; anything else raises, since the sum
of directions from two residual streams means nothing. What a combination does to each persona's
attribution is measured (`tasks.steering.cross_effects`), not assumed from the geometry.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from foundry.steering.hooks import SteeringError, SteerVector
from foundry.steering.store import PersonaVector


def scale(v: SteerVector, factor: float) -> SteerVector:
    """`factor * v` (the strength is kept; the direction is rescaled)."""
    return _like(v, v.vector * float(factor), f"{factor:g}*{v.name}")


def add(a: SteerVector, b: SteerVector) -> SteerVector:
    _check_compatible(a, b)
    return _like(a, a.vector + b.vector, f"{a.name}+{b.name}")


def subtract(a: SteerVector, b: SteerVector) -> SteerVector:
    _check_compatible(a, b)
    return _like(a, a.vector - b.vector, f"{a.name}-{b.name}")


def projection(a: SteerVector, b: SteerVector) -> np.ndarray:
    """The component of `a` along `b`."""
    _check_compatible(a, b)
    norm2 = float(b.vector @ b.vector)
    if norm2 == 0.0:
        raise SteeringError(f"cannot project onto {b.name or 'a zero vector'}: it is zero")
    return (float(a.vector @ b.vector) / norm2) * b.vector


def away_from(a: SteerVector, b: SteerVector, weight: float = 1.0) -> SteerVector:
    """`a - weight * proj(a on b)`: A's direction with (part of) what it shares with B removed.

    With `weight` 1 the result is orthogonal to `b`; above 1 it points away from B.
    """
    removed = a.vector - float(weight) * projection(a, b)
    return _like(a, removed, f"{a.name}-away-{b.name}")


def cosine(a: SteerVector, b: SteerVector) -> float:
    _check_compatible(a, b)
    denominator = float(np.linalg.norm(a.vector) * np.linalg.norm(b.vector))
    return float(a.vector @ b.vector) / denominator if denominator else 0.0


def _like(v: SteerVector, vector: np.ndarray, name: str) -> SteerVector:
    return SteerVector(v.layer, vector.astype(np.float32), v.alpha, name, v.base_model)


def _check_compatible(a: SteerVector, b: SteerVector) -> None:
    if a.layer != b.layer:
        raise SteeringError(
            f"{a.name or 'a'} is at layer {a.layer} and {b.name or 'b'} at layer {b.layer}: "
            "combine vectors read at the same layer (take both at one layer with "
            "`PersonaVector.steer_vector(layer=...)`)"
        )
    if a.base_model and b.base_model and a.base_model != b.base_model:
        raise SteeringError(
            f"{a.name or 'a'} comes from base {a.base_model!r} and {b.name or 'b'} from "
            f"{b.base_model!r}; vectors of different models do not combine"
        )
    if a.vector.shape != b.vector.shape:
        raise SteeringError(
            f"{a.name or 'a'} has shape {a.vector.shape} and {b.name or 'b'} {b.vector.shape}"
        )


def blend_persona_vectors(
    vectors: Sequence[tuple[PersonaVector, float]], persona: str, label: str
) -> PersonaVector:
    """`sum_i w_i * v_i` of whole persona vectors (every family, every layer): the vector of a
    persona blended from these (`foundry merge`). The chosen family, layer and strengths are the
    largest positive weight's, not swept again (`meta["derived_from"]` says so).

    Raises:
        SteeringError: the vectors come from different base models or have different families
            or shapes (combine only vectors read on one model).
    """
    lead = max(vectors, key=lambda vw: vw[1])[0]
    for vector, _ in vectors:
        if vector.base_model != lead.base_model:
            raise SteeringError(
                f"{vector.persona}'s vector comes from base {vector.base_model!r} and "
                f"{lead.persona}'s from {lead.base_model!r}; extract both on one model"
            )
        if {k: v.shape for k, v in vector.directions.items()} != {
            k: v.shape for k, v in lead.directions.items()
        }:
            raise SteeringError(
                f"{vector.persona}'s and {lead.persona}'s vectors differ in families or shapes; "
                "extract both with the same steering settings"
            )
    directions = {
        family: sum(float(w) * v.directions[family].astype(np.float64) for v, w in vectors)
        for family in lead.directions
    }
    meta = {**lead.meta, "persona": persona, "derived_from": label, "strengths_from": lead.persona}
    return PersonaVector(
        persona, {k: np.asarray(v, dtype=np.float32) for k, v in directions.items()}, meta
    )
