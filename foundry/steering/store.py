"""A persona vector on disk: `vectors.safetensors` (every family, every layer) and `vector.json`.

The JSON records what a vector means and where it may be used: the base model it was read from,
the layer index convention, the chosen family, layer and strengths, the norms, the sample counts,
the data version, the layer AUCs and the strength sweep. `load_persona_vector` refuses a vector
from another base model or of another width, so steering never silently adds noise.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from foundry.atomic import replace_dir, staged_dir
from foundry.errors import FoundryError
from foundry.steering.activations import CONVENTION
from foundry.steering.hooks import SteerVector

TENSORS_FILE = "vectors.safetensors"
META_FILE = "vector.json"
FORMAT = 1


class VectorError(FoundryError):
    """A persona vector is missing, damaged, or does not fit the model it is used with."""


@dataclass
class PersonaVector:
    """A persona's directions (`family -> (num_layers, hidden)`) and how to steer with them."""

    persona: str
    directions: dict[str, np.ndarray] = field(repr=False)
    meta: dict[str, Any]

    @property
    def layer(self) -> int:
        return int(self.meta["layer"])

    @property
    def family(self) -> str:
        return str(self.meta["family"])

    def alpha(self, variant: str) -> float:
        """The chosen strength for `steer` (on the base) or `dpo+steer` (on the DPO adapter)."""
        chosen = self.meta.get("alpha", {})
        if variant not in chosen:
            raise VectorError(
                f"the persona vector of {self.persona} has no chosen strength for {variant!r} "
                f"(chosen: {', '.join(chosen) or 'none'}); extract it again with "
                f"`foundry vectors extract --persona {self.persona}` after training the adapter"
            )
        return float(chosen[variant])

    def steer_vector(
        self, variant: str = "steer", family: str | None = None, layer: int | None = None
    ) -> SteerVector:
        """`family`'s direction at `layer` (default: the chosen ones) at `variant`'s strength."""
        name = family or self.family
        if name not in self.directions:
            raise VectorError(
                f"{self.persona}'s vectors have no family {name!r}; "
                f"stored: {', '.join(sorted(self.directions))}"
            )
        at = layer or self.layer
        count = self.directions[name].shape[0]
        if not 1 <= at <= count:
            raise VectorError(
                f"layer {at} is out of range for {self.persona}'s vectors: 1..{count} "
                "(hidden_states[L] is the output of block L-1)"
            )
        alpha = self.alpha(variant) if variant else 1.0
        return SteerVector(
            at, self.directions[name][at - 1], alpha, f"{self.persona}:{name}", self.base_model
        )

    @property
    def base_model(self) -> str:
        return str(self.meta["base_model"])


def save_persona_vector(vector: PersonaVector, folder: Path, extra_files: dict[str, bytes]) -> Path:
    """Write the tensors, the metadata and `extra_files` (e.g. the sweep plot) to `folder`,
    replacing it whole (a failure leaves the previous vector in place)."""
    from safetensors.numpy import save_file

    meta = {"format": FORMAT, "convention": CONVENTION, **vector.meta, "persona": vector.persona}
    folder.parent.mkdir(parents=True, exist_ok=True)
    with staged_dir(folder.parent) as staging:
        tensors = {
            k: np.ascontiguousarray(v, dtype=np.float32) for k, v in vector.directions.items()
        }
        save_file(tensors, str(staging / TENSORS_FILE), metadata={"persona": vector.persona})
        (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        for name, data in extra_files.items():
            (staging / name).write_bytes(data)
        replace_dir(staging, folder)
    return folder


def load_persona_vector(
    folder: Path, *, base_model: str | None = None, hidden_size: int | None = None
) -> PersonaVector:
    """Read a persona vector, checking it fits the model it will steer.

    Raises:
        VectorError: missing or damaged files, another base model, or another hidden size.
    """
    from safetensors.numpy import load_file

    meta_file, tensor_file = folder / META_FILE, folder / TENSORS_FILE
    if not meta_file.is_file() or not tensor_file.is_file():
        raise VectorError(
            f"no persona vector in {folder} (needs {META_FILE} and {TENSORS_FILE}); extract it "
            "with `foundry vectors extract`"
        )
    try:
        meta = json.loads(meta_file.read_text())
        directions = load_file(str(tensor_file))
    except (ValueError, OSError) as exc:
        raise VectorError(
            f"{folder}: cannot read the persona vector ({exc}); extract it again"
        ) from exc
    for key in ("persona", "base_model", "layer", "family", "hidden_size"):
        if key not in meta:
            raise VectorError(f"{meta_file}: metadata has no {key!r}; extract the vector again")
    if base_model is not None and meta["base_model"] != base_model:
        raise VectorError(
            f"{folder}: the vector was extracted from base model {meta['base_model']!r}, but the "
            f"model in use is {base_model!r}; a direction means nothing in another model's "
            "activations: extract it again with `foundry vectors extract`"
        )
    width = int(meta["hidden_size"])
    if hidden_size is not None and width != hidden_size:
        raise VectorError(
            f"{folder}: the vector has {width} dimensions but the model's hidden size is "
            f"{hidden_size}; extract it again for this model"
        )
    for name, tensor in directions.items():
        if tensor.ndim != 2 or tensor.shape[1] != width:
            raise VectorError(
                f"{tensor_file}: tensor {name!r} has shape {tensor.shape}; expected "
                f"(layers, {width})"
            )
    return PersonaVector(str(meta["persona"]), dict(directions), meta)


def vector_digest(folder: Path) -> str:
    """sha256 of the tensors and the metadata: what a cached steered answer depends on."""
    digest = hashlib.sha256()
    for name in (TENSORS_FILE, META_FILE):
        digest.update(name.encode())
        digest.update(hashlib.sha256((folder / name).read_bytes()).digest())
    return digest.hexdigest()


def load_steer_vectors(
    vector_dirs: dict[str, Path], base_identity: str, hidden_size: int
) -> dict[str, SteerVector]:
    """Each persona's vector (persona -> its vector folder) as monitoring reads it: unscaled,
    checked against the base model it is read on."""
    return {
        slug: load_persona_vector(
            folder, base_model=base_identity, hidden_size=hidden_size
        ).steer_vector("")
        for slug, folder in vector_dirs.items()
    }
