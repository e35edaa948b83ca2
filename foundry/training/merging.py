"""New adapters from existing ones with PEFT's combination methods (issue 22, first part).

A merged adapter is a LoRA adapter like any other: one folder with `adapter_config.json`,
`adapter_model.safetensors` and `merge.json` (its sources, their checksums, weights and method),
installed whole. Which methods blend *deltas* matters for reading a blend's results:

- `cat` stacks the sources' low-rank factors (rank = the sum of theirs), so the merged delta is
  exactly `sum_i w_i * scaling_i * B_i @ A_i`: a 0.7/0.3 blend is 70 % of one update plus 30 % of
  the other (negative weights subtract).
- `linear`, `ties`, `dare_linear`, `dare_ties` combine the A and B factors *separately* (each with
  `sqrt(|w_i| * scaling_i)`), so the merged delta `(sum sqrt(w_i) B_i)(sum sqrt(w_i) A_i)` carries
  cross terms `B_i A_j`: not a weighted sum of the sources' updates; TIES and DARE also prune
  (`density`). They keep the sources' rank.
- `svd` computes the weighted sum of deltas and truncates it back to a rank (`svd_rank`).

Public entry points: `MergeSource`, `MergeMethod`, `merge_adapters(base, sources, method, out)`,
`adapter_lora(folder, like)`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from foundry.atomic import replace_dir, staged_dir, write_text_atomic
from foundry.logs import get_logger, quiet_peft_warnings
from foundry.training.artifacts import TrainingError
from foundry.training.config import LoraSettings
from foundry.training.datasets import file_digest
from foundry.training.trainers import ADAPTER_WEIGHTS

logger = get_logger(__name__)

MergeMethod = Literal["cat", "linear", "ties", "dare_linear", "dare_ties", "svd"]
PRUNING = {"ties", "dare_linear", "dare_ties"}
MERGE_FILENAME = "merge.json"
MERGED = "merged"


@dataclass(frozen=True)
class MergeSource:
    """One adapter folder and its weight in the blend (negative: subtract it)."""

    path: Path
    weight: float


def merge_adapters(
    base_model: Any,
    sources: Sequence[MergeSource],
    method: MergeMethod,
    out_dir: Path,
    *,
    density: float | None = None,
    svd_rank: int | None = None,
    tokenizer: Any | None = None,
) -> Path:
    """Combine `sources` on `base_model` (consumed) with PEFT's `add_weighted_adapter` and install
    the result at `out_dir` (swapped in whole); its folder.

    Raises:
        TrainingError: fewer than two sources, a missing adapter, a density outside (0, 1] or
            missing for a pruning method, or sources PEFT cannot combine (different targets).
    """
    from peft import PeftModel

    _check(sources, method, density)
    names = [f"source-{i}" for i in range(len(sources))]
    with quiet_peft_warnings():
        model = PeftModel.from_pretrained(base_model, sources[0].path, adapter_name=names[0])
        for name, source in zip(names[1:], sources[1:], strict=True):
            model.load_adapter(source.path, adapter_name=name)
        try:
            model.add_weighted_adapter(
                names, [s.weight for s in sources], MERGED, combination_type=method,
                density=density, svd_rank=svd_rank,
            )  # fmt: skip
        except ValueError as exc:
            raise TrainingError(f"PEFT cannot merge these adapters with {method}: {exc}") from None
    lineage = {
        "method": method,
        "density": density,
        "svd_rank": svd_rank,
        "sources": [
            {"path": str(s.path), "weight": s.weight, "sha256": digest}
            for s, digest in zip(sources, _digests(sources), strict=True)
        ],
    }
    with staged_dir(out_dir.parent, prefix=f".{out_dir.name}-") as stage:
        with quiet_peft_warnings():
            model.save_pretrained(
                stage, selected_adapters=[MERGED], safe_serialization=True,
                save_embedding_layers=False,
            )  # fmt: skip
        folder = stage / MERGED  # PEFT saves a named adapter in a folder of its name
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        write_text_atomic(folder / MERGE_FILENAME, json.dumps(lineage, indent=2) + "\n")
        if not (folder / ADAPTER_WEIGHTS).is_file():
            raise TrainingError(f"the merge wrote no {ADAPTER_WEIGHTS} in {folder}")
        replace_dir(folder, out_dir)
    logger.info("merged %d adapters with %s -> %s", len(sources), method, out_dir)
    return out_dir


def adapter_lora(folder: Path, like: LoraSettings) -> LoraSettings:
    """The LoRA shape of the adapter in `folder` (a merge changes the rank: `cat` sums the
    sources'), with `like`'s dropout and target modules."""
    adapter = json.loads((folder / "adapter_config.json").read_text())
    rank = int(adapter["r"])
    return like.model_copy(update={"r": rank, "alpha": int(adapter.get("lora_alpha", rank))})


def _check(sources: Sequence[MergeSource], method: str, density: float | None) -> None:
    if len(sources) < 2:
        raise TrainingError("a merge needs at least two source adapters")
    for source in sources:
        if not (source.path / ADAPTER_WEIGHTS).is_file():
            raise TrainingError(f"no adapter at {source.path} (missing {ADAPTER_WEIGHTS})")
    if method in PRUNING and (density is None or not 0 < density <= 1):
        raise TrainingError(
            f"{method} prunes each source to a share of its weights: give a density in (0, 1], "
            f"e.g. 0.5 (got {density})"
        )


def _digests(sources: Sequence[MergeSource]) -> list[str]:
    return [file_digest(source.path / ADAPTER_WEIGHTS) for source in sources]
