"""Reading texts on persona vectors: projections, the persona x persona matrix and calibration.

A text's reading on a vector is its mean response-token activation at the vector's layer, dotted
with the unit direction. Raw projections share no scale, so `baselines` calibrates each vector on
validation texts (1 = reads like its persona's own texts, 0 = like the others'). Entry points:
`project_rows`, `projection_matrix`, `baselines`. Callers load the model; nothing here does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from foundry.errors import FoundryError
from foundry.steering.activations import ResponseRow, response_activations
from foundry.steering.hooks import SteerVector


class MonitoringError(FoundryError):
    """Texts, vectors or a transcript cannot be monitored as given."""


def project_rows(
    model: Any, tokenizer: Any, rows: Sequence[ResponseRow], vectors: Mapping[str, SteerVector]
) -> np.ndarray:
    """Each row's projection on each vector's unit direction, `(len(rows), len(vectors))`."""
    units = []
    for name, v in vectors.items():
        if v.norm == 0.0:
            raise MonitoringError(f"persona vector {name!r} is zero: it has no direction")
        units.append((v.layer, np.asarray(v.vector, dtype=np.float32) / v.norm))
    if not rows:
        return np.zeros((0, len(units)), dtype=np.float32)
    acts = response_activations(model, tokenizer, rows)
    columns = [acts[:, layer - 1] @ unit for layer, unit in units]
    return np.stack(columns, axis=1) if columns else np.zeros((len(rows), 0), np.float32)


@dataclass
class ProjectionMatrix:
    """Mean projection of each owner's texts (rows) on each persona vector (columns)."""

    rows: list[str]
    columns: list[str]
    values: np.ndarray  # (len(rows), len(columns))

    def diagonal_dominance(self) -> float:
        """Share of rows that read highest on their own vector, once the vectors share a scale.

        Each column is z-scored across rows (raw projections on different vectors are not
        comparable); a row counts when its own column (the one with the same name) is strictly
        larger than every other entry of that row. Rows without a same-named column are left out.
        """
        std = self.values.std(axis=0)
        z = (self.values - self.values.mean(axis=0)) / np.where(std > 0, std, 1.0)
        owned = [(i, self.columns.index(r)) for i, r in enumerate(self.rows) if r in self.columns]
        if not owned:
            raise MonitoringError("no text owner has a vector of the same name")
        wins = sum(bool((z[i, j] > np.delete(z[i], j)).all()) for i, j in owned)
        return wins / len(owned)

    def to_dict(self) -> dict[str, Any]:
        """Rows, columns, values as nested lists (`values[row][column]`) and the dominance."""
        values = self.values.astype(float).tolist()
        return {
            "rows": self.rows,
            "columns": self.columns,
            "values": values,
            "diagonal_dominance": self.diagonal_dominance(),
        }


def projection_matrix(
    model: Any,
    tokenizer: Any,
    texts: Mapping[str, Sequence[ResponseRow]],
    vectors: Mapping[str, SteerVector],
) -> ProjectionMatrix:
    """Mean projection of each owner's texts on each vector (one activation pass for all)."""
    empty = [owner for owner, rows in texts.items() if not rows]
    if empty:
        raise MonitoringError(f"no texts for {', '.join(empty)}; give each owner at least one")
    flat = [row for rows in texts.values() for row in rows]
    raw = project_rows(model, tokenizer, flat, vectors)
    bounds = np.cumsum([0, *(len(rows) for rows in texts.values())])
    means = [raw[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return ProjectionMatrix(list(texts), list(vectors), np.stack(means).reshape(len(texts), -1))


@dataclass(frozen=True)
class Baseline:
    """Where one persona vector puts its owner's validation texts (`own`) and everyone else's."""

    own: float
    rest: float

    def normalise(self, projection: float) -> float:
        """1 = reads like the owner's own texts, 0 = like the others'."""
        return (projection - self.rest) / (self.own - self.rest)


def baselines(matrix: ProjectionMatrix) -> dict[str, Baseline]:
    """Per vector, the mean projection of its owner's texts and of the other owners' texts.

    Raises:
        MonitoringError: a vector has no same-named owner or no other owner, or does not
            separate its owner's texts from the rest (own == rest).
    """
    out: dict[str, Baseline] = {}
    for j, name in enumerate(matrix.columns):
        if name not in matrix.rows or len(matrix.rows) < 2:
            raise MonitoringError(
                f"vector {name!r} needs validation texts of {name!r} and of at least one other "
                f"persona (text owners: {', '.join(matrix.rows)})"
            )
        i = matrix.rows.index(name)
        own = float(matrix.values[i, j])
        rest = float(np.delete(matrix.values[:, j], i).mean())
        if abs(own - rest) <= 1e-9 * max(1.0, abs(own), abs(rest)):
            raise MonitoringError(
                f"vector {name!r} does not separate {name!r}'s texts from the others' (both "
                f"project to {own:.4g}); extract it again or give more varied validation texts"
            )
        out[name] = Baseline(own, rest)
    return out
