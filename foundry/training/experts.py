"""Style and reasoning experts (`training.experts: style+reasoning`): one persona, two adapters.

One adapter per persona must learn how the persona sounds and what it believes from ~100 items;
the first comes fast and the second barely moves. Here a *style* expert trains on the persona's
own texts only and a *reasoning* expert on its stance-bearing rows (synthetic debate turns,
position rows, then the DPO pairs), as in multi-expert LoRA for character imitation (CharLoRA).

They are combined into the persona's adapter with PEFT's `cat` combination, which is exactly
`w_style * delta_style + w_reasoning * delta_reasoning` (`foundry.training.merging`), so the
combined folder is an ordinary LoRA adapter (rank: the sum of the experts') that every consumer
(evaluation, vectors, registry, `foundry serve`, vLLM, Together, Fireworks) loads unchanged; the
experts themselves travel inside it (`experts/style`, `experts/reasoning`), so one registered
version holds both and its lineage. The weights are fixed (`training.expert_weights`) or, with
`training.expert_gate: learned`, the pair on a small grid with the lowest NLL on the persona's
validation examples (never test items); `gate.json` records the grid. The gate is one pair of
weights per persona, not a per-request router.

Public entry points: `EXPERTS`, `expert_work_dir`, `expert_path`, `installed_expert`,
`combine_experts`, `learn_gate`.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from foundry.atomic import replace_dir, staged_dir, write_text_atomic
from foundry.config import FoundryConfig
from foundry.logs import get_logger, quiet_peft_warnings
from foundry.training.artifacts import (
    SUMMARY_FILENAME,
    AdapterArtifact,
    Stage,
    TrainingError,
    TrainingSummary,
)
from foundry.training.base_model import ensure_base
from foundry.training.config import TINY
from foundry.training.merging import MergeSource, adapter_lora, merge_adapters

logger = get_logger(__name__)

STYLE, REASONING = "style", "reasoning"
EXPERTS = (STYLE, REASONING)
EXPERTS_DIRNAME = "experts"
GATE_FILENAME = "gate.json"
# Each expert's weight on the learned gate's grid (both zero is left out).
GATE_GRID = (0.0, 0.5, 0.75, 1.0, 1.25, 1.5)


def expert_work_dir(config: FoundryConfig, slug: str, stage: Stage, expert: str) -> Path:
    """Where one expert of `stage` is installed before the combined adapter is assembled."""
    return config.cache_dir / "work" / slug / EXPERTS_DIRNAME / stage / expert


def expert_path(adapter_dir: Path, expert: str) -> Path:
    """An expert inside an installed combined adapter folder."""
    return adapter_dir / EXPERTS_DIRNAME / expert


def installed_expert(adapter_dir: Path, expert: str) -> AdapterArtifact:
    """An expert inside an installed combined adapter folder, as an artifact."""
    path = expert_path(adapter_dir, expert)
    summary = TrainingSummary.model_validate_json((path / SUMMARY_FILENAME).read_text())
    return AdapterArtifact(persona=summary.persona, stage=summary.stage, path=path, summary=summary)


def combine_experts(
    config: FoundryConfig,
    slug: str,
    stage: Stage,
    experts: Mapping[str, AdapterArtifact],
    validation: Sequence[dict],
) -> AdapterArtifact:
    """Combine the two installed experts into `config.adapter_dir(slug, stage)` (swapped in
    whole, the experts copied inside it) and return it.

    Args:
        experts: `style` and `reasoning` adapters of this stage.
        validation: the persona's validation conversations (the learned gate's data).
    """
    started = time.perf_counter()
    paths = {name: experts[name].path for name in EXPERTS}
    gate: dict | None = None
    if config.training.expert_gate == "learned":
        gate = learn_gate(config, paths, validation)
        weights = gate["chosen"]
    else:
        weights = config.training.expert_weights.model_dump()
    target = config.adapter_dir(slug, stage)
    base = ensure_base(config)
    with staged_dir(target.parent, prefix=f".{target.name}-") as stage_dir:
        folder = stage_dir / target.name
        merge_adapters(
            base.model, [MergeSource(paths[name], weights[name]) for name in EXPERTS], "cat",
            folder, tokenizer=base.tokenizer if config.base_model.kind == TINY else None,
        )  # fmt: skip
        for name in EXPERTS:
            shutil.copytree(paths[name], expert_path(folder, name))
        if gate is not None:
            write_text_atomic(folder / GATE_FILENAME, json.dumps(gate, indent=2) + "\n")
        summary = _combined_summary(experts, weights, folder, time.perf_counter() - started)
        write_text_atomic(folder / SUMMARY_FILENAME, summary.model_dump_json(indent=2) + "\n")
        replace_dir(folder, target)
    logger.info(
        "persona %s %s: style x %.2f + reasoning x %.2f (%s) -> %s", slug, stage,
        weights[STYLE], weights[REASONING], "learned gate" if gate else "fixed weights", target,
    )  # fmt: skip
    return AdapterArtifact(persona=slug, stage=stage, path=target, summary=summary)


def learn_gate(
    config: FoundryConfig, experts: Mapping[str, Path], validation: Sequence[dict]
) -> dict:
    """The experts' weights with the lowest mean token NLL on `validation`, over `GATE_GRID`.

    Returns:
        `{"chosen": {style, reasoning}, "nll": mean NLL of the chosen pair, "grid": [{style,
        reasoning, nll}...], "examples": n}`.

    Raises:
        TrainingError: no validation examples to fit the gate on.
    """
    from peft import PeftModel

    from foundry.training.scoring import ScoreRow, score_completions

    if not validation:
        raise TrainingError(
            "`training.expert_gate: learned` fits the experts' weights on the persona's "
            "validation examples, and it has none: add validation items, or use "
            "`expert_gate: fixed`"
        )
    base = ensure_base(config)
    with quiet_peft_warnings():
        model = PeftModel.from_pretrained(base.model, experts[STYLE], adapter_name=STYLE)
        model.load_adapter(experts[REASONING], adapter_name=REASONING)
    # SFT conversations carry no system turn: (the user's prompt, the persona's text).
    pairs = [(ex["prompt"][-1]["content"], ex["completion"][0]["content"]) for ex in validation]
    grid = []
    for style in GATE_GRID:
        for reasoning in GATE_GRID:
            if style == reasoning == 0.0:
                continue
            name = "gate"
            with quiet_peft_warnings():
                model.add_weighted_adapter(
                    [STYLE, REASONING], [style, reasoning], name, combination_type="cat"
                )
            rows = [ScoreRow(prompt, text, adapter=name) for prompt, text in pairs]
            scores = score_completions(model, base.tokenizer, rows)
            model.delete_adapter(name)
            tokens = sum(s.tokens for s in scores)
            nll = sum(s.nll for s in scores) / max(tokens, 1)
            grid.append({STYLE: style, REASONING: reasoning, "nll": round(nll, 5)})
    best = min(grid, key=lambda row: (row["nll"], -row[STYLE] - row[REASONING]))
    logger.info(
        "learned gate: style x %.2f + reasoning x %.2f (validation NLL %.4f over %d examples)",
        best[STYLE], best[REASONING], best["nll"], len(pairs),
    )  # fmt: skip
    return {
        "chosen": {STYLE: best[STYLE], REASONING: best[REASONING]},
        "nll": best["nll"],
        "grid": grid,
        "examples": len(pairs),
    }


def _combined_summary(
    experts: Mapping[str, AdapterArtifact],
    weights: Mapping[str, float],
    folder: Path,
    seconds: float,
) -> TrainingSummary:
    """The reasoning expert's record (its losses, rate and backend), with the counts summed over
    both experts and the combined adapter's LoRA shape."""
    parts = [experts[name].summary for name in EXPERTS]
    reasoning = experts[REASONING].summary
    return reasoning.model_copy(
        update={
            "steps": sum(p.steps for p in parts),
            "train_tokens": sum(p.train_tokens for p in parts),
            "seconds": round(sum(p.seconds for p in parts) + seconds, 2),
            "resumed_from_step": None,
            "lora": adapter_lora(folder, reasoning.lora),
            "examples_train": sum(p.examples_train for p in parts),
            "examples_eval": sum(p.examples_eval for p in parts),
            "experts": {name: float(weights[name]) for name in EXPERTS},
        }
    )
