"""Persona vectors: extract each persona's directions, pick the layer and strength, store them.

Public entry point: `extract_vectors(config, corpus, model, personas)` writes one vector folder per
persona (`foundry.steering.store`) and returns what it chose. Its inputs (`read_steering_corpus`,
the `SteeringModel` protocol) are in `foundry.steering.inputs`; the model is handed in, so this
stage never loads weights itself (`foundry.training.steering_model` provides one).

Extraction follows the persona-vector recipe: the mean hidden state over response tokens, at every
layer, under the persona minus under a contrast. Three families are stored:
- `persona`: the persona vs a neutral assistant, averaged over two readings: the base model's
  answers under the contract's system prompt vs under a neutral one, and the persona's real train
  texts vs the neutral answers;
- `one_vs_rest`: the persona's real texts vs the mean of the other personas' means;
- `vs:<slug>`: pairwise, the persona's real texts vs one other persona's.

The layer is the one whose projections best separate the persona's validation texts from the other
personas' validation texts and neutral answers (AUC), unless `steering.layer` fixes it. The strength
is chosen by a fluency-guarded sweep (`foundry.steering.sweep`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from foundry.config import FoundryConfig
from foundry.data.attribution import fit_content_classifier, fit_style_classifier
from foundry.data.framing import BASE_ADAPTER, debate_prompt
from foundry.logs import get_logger
from foundry.steering.activations import check_layer, response_activations
from foundry.steering.directions import (
    heldout_layer_auc,
    mean_activation,
    neutral_readings,
    persona_directions,
)
from foundry.steering.hooks import SteerVector
from foundry.steering.inputs import SteeringCorpus, SteeringModel, check_personas
from foundry.steering.store import PersonaVector, save_persona_vector
from foundry.steering.sweep import STEER_VARIANTS, choose_alpha, cross_effects, plot_sweep, sweep

logger = get_logger(__name__)

PLOT_FILE = "sweep.png"
Progress = Callable[[str, int], Callable[[int], None]]


@dataclass
class VectorResult:
    persona: str
    folder: Path
    layer: int
    auc: float
    alpha: dict[str, float]
    sweep: dict[str, list[dict[str, Any]]]  # variant -> one row per strength
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "persona": self.persona,
            "folder": str(self.folder),
            "layer": self.layer,
            "auc": round(self.auc, 4),
            "alpha": self.alpha,
            "sweep": self.sweep,
            "seconds": round(self.seconds, 2),
            "notes": self.notes,
        }


def extract_vectors(
    config: FoundryConfig,
    corpus: SteeringCorpus,
    model: SteeringModel,
    personas: Sequence[str],
    *,
    data_rev: str = "",
    progress: Progress | None = None,
) -> list[VectorResult]:
    """Extract, select and store the persona vector of each of `personas`.

    Args:
        config: the project configuration (`steering:` section).
        corpus: every persona's texts (`read_steering_corpus`); the others serve as contrast.
        model: the base with the personas' DPO adapters.
        personas: slugs to extract.
        data_rev: the data version recorded with the vectors.
        progress: `progress(label, steps)` per persona; returns a per-step hook.

    Returns:
        One result per persona, in order.

    Raises:
        SteeringSetupError: a slug that is not a persona.
        LayerError: `steering.layer` is out of range for the base model.
    """
    check_personas(corpus, config, personas)
    if config.steering.layer:
        check_layer(model.model, config.steering.layer)
    texts = [t for s in corpus.contracts for t in corpus.train_texts[s]]
    labels = [s for s in corpus.contracts for _ in corpus.train_texts[s]]
    classifiers = {
        "style": fit_style_classifier(texts, labels, seed=config.evaluation.seed),
        "content": fit_content_classifier(texts, labels, seed=config.evaluation.seed),
    }
    means = {s: mean_activation(model, corpus.train[s]) for s in corpus.contracts}
    held = {
        s: response_activations(model.model, model.tokenizer, corpus.validation[s])
        for s in corpus.contracts
    }
    neutral = neutral_readings(model, corpus)
    results = []
    for slug in personas:
        steps = 3 + len(STEER_VARIANTS) * len(config.steering.alphas)
        hook = progress(f"vectors: {slug}", steps) if progress else None
        started = time.perf_counter()
        directions, samples = persona_directions(model, corpus, slug, means, neutral)
        _step(hook)
        auc = {
            family: heldout_layer_auc(directions[family], held, neutral["held"], slug)
            for family in ("persona", "one_vs_rest")
        }
        family = config.steering.family
        layer = config.steering.layer or int(np.argmax(auc[family])) + 1
        _step(hook)
        vector = SteerVector(layer, directions[family][layer - 1], 1.0, slug, model.identity)
        sweeps, chosen, effects, notes = _strengths(config, corpus, model, vector, means,
                                                    classifiers, hook)  # fmt: skip
        meta = {
            "base_model": model.identity,
            "hidden_size": int(vector.vector.shape[0]),
            "num_layers": int(directions[family].shape[0]),
            "family": family,
            "layer": layer,
            "layer_choice": "config" if config.steering.layer else "auc",
            "auc": {k: [round(float(x), 4) for x in v] for k, v in auc.items()},
            "norms": {
                k: [round(float(n), 4) for n in np.linalg.norm(v, axis=1)]
                for k, v in directions.items()
            },
            "samples": samples,
            "data_version": data_rev,
            # The adapter the dpo+steer strength was swept on: registration checks it.
            "adapters": {"dpo": model.adapter_digest(slug)} if slug in model.dpo else {},
            "alpha": chosen,
            "sweep": sweeps,
            "cross_effects": effects,
            "settings": config.steering.model_dump(mode="json"),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "notes": notes,
        }
        plot = plot_sweep(slug, sweeps, chosen, config.steering.fluency_tolerance)
        folder = save_persona_vector(
            PersonaVector(slug, directions, meta), config.vector_dir(slug), {PLOT_FILE: plot}
        )
        result = VectorResult(
            slug, folder, layer, auc[family][layer - 1], chosen,
            sweeps, time.perf_counter() - started, notes,
        )  # fmt: skip
        logger.info(
            "vectors[%s]: %s at layer %d (AUC %.2f), alpha %s -> %s",
            slug, family, layer, result.auc, chosen, folder,
        )  # fmt: skip
        results.append(result)
    return results


def _strengths(
    config: FoundryConfig,
    corpus: SteeringCorpus,
    model: SteeringModel,
    vector: SteerVector,
    means: dict[str, np.ndarray],
    classifiers: dict[str, Any],
    hook: Callable[[int], None] | None,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, float], dict[str, Any], list[str]]:
    """Each steered variant's sweep and chosen strength, the measured cross-effects, and notes."""
    prompts = [debate_prompt(t) for t in corpus.sweep_topics]
    sweeps: dict[str, list[dict[str, Any]]] = {}
    chosen: dict[str, float] = {}
    notes: list[str] = []
    for variant in STEER_VARIANTS:
        adapter = BASE_ADAPTER if variant == "steer" else model.dpo.get(vector.name)
        if adapter is None:
            notes.append(f"no dpo adapter: {variant} has no chosen strength yet")
            _step(hook, len(config.steering.alphas))
            continue
        rows = sweep(model, config, prompts, vector, adapter, classifiers, hook)
        sweeps[variant] = rows
        tolerance, min_gain = config.steering.fluency_tolerance, config.steering.min_gain
        chosen[variant], why = choose_alpha(rows, tolerance, min_gain)
        for line in why:  # the CLI prints them after its table; the flow's summary lists them
            logger.info("%s", line)
        notes += [f"{variant}: {line}" for line in why]
    effects = cross_effects(
        model, prompts, list(corpus.contracts), vector, means, chosen.get("steer", 0.0),
        classifiers,
    )  # fmt: skip
    _step(hook)
    return sweeps, chosen, effects, notes


def _step(hook: Callable[[int], None] | None, steps: int = 1) -> None:
    if hook:
        hook(steps)
