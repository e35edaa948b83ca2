"""A persona's directions in activation space, and how well each layer separates the persona.

Public entry points: `neutral_readings(model, corpus)` (the neutral assistant's answers, read),
`persona_directions(model, corpus, slug, means, neutral)` (every family of directions, one row per
layer), `layer_auc` and `heldout_layer_auc` (the layer choice), `mean_activation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from foundry.data.framing import contract_system_prompt, debate_prompt
from foundry.steering.activations import ResponseRow, response_activations
from foundry.steering.inputs import SteeringCorpus, SteeringModel

NEUTRAL_SYSTEM = (
    "You are a neutral, helpful assistant. Answer plainly and even-handedly, without taking on "
    "any particular voice."
)


def mean_activation(model: SteeringModel, rows: Sequence[ResponseRow]) -> np.ndarray:
    """The mean hidden state over the rows' response tokens, at every layer."""
    return response_activations(model.model, model.tokenizer, rows).mean(axis=0)


def neutral_readings(model: SteeringModel, corpus: SteeringCorpus) -> dict[str, Any]:
    """The neutral assistant's answers on the extraction prompts (read with and without the
    neutral system prompt) and on the sweep prompts (held out, for the layer AUC)."""
    prompts = [debate_prompt(t) for t in corpus.extraction_topics]
    held_prompts = [debate_prompt(t) for t in corpus.sweep_topics]
    answers = model.answers(prompts + held_prompts, system=NEUTRAL_SYSTEM)
    train, held = answers[: len(prompts)], answers[len(prompts) :]
    return {
        "prompts": prompts,
        "system_mean": mean_activation(
            model, [ResponseRow(p, a, NEUTRAL_SYSTEM) for p, a in zip(prompts, train, strict=True)]
        ),
        "plain_mean": mean_activation(
            model, [ResponseRow(p, a) for p, a in zip(prompts, train, strict=True)]
        ),
        "held": response_activations(
            model.model,
            model.tokenizer,
            [ResponseRow(p, a) for p, a in zip(held_prompts, held, strict=True)],
        ),
        "count": len(train),
    }


def persona_directions(
    model: SteeringModel,
    corpus: SteeringCorpus,
    slug: str,
    means: dict[str, np.ndarray],
    neutral: dict[str, Any],
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Every family's direction `(num_layers, hidden)` for `slug`, and the sample counts."""
    system = contract_system_prompt(corpus.contracts[slug])
    prompted = model.answers(neutral["prompts"], system=system)
    prompted_mean = mean_activation(
        model,
        [ResponseRow(p, a, system) for p, a in zip(neutral["prompts"], prompted, strict=True)],
    )
    own = means[slug]
    others = [s for s in means if s != slug]
    directions = {
        "persona_prompted": prompted_mean - neutral["system_mean"],
        "persona_texts": own - neutral["plain_mean"],
        "one_vs_rest": own - np.mean([means[s] for s in others], axis=0),
    }
    directions["persona"] = (directions["persona_prompted"] + directions["persona_texts"]) / 2
    directions |= {f"vs:{other}": own - means[other] for other in others}
    samples = {
        "train_texts": len(corpus.train[slug]),
        "prompted_answers": len(prompted),
        "neutral_answers": neutral["count"],
        "heldout_own": len(corpus.validation[slug]),
        "heldout_rest": sum(len(corpus.validation[s]) for s in others) + len(neutral["held"]),
        **{f"train_texts:{s}": len(corpus.train[s]) for s in others},
    }
    return {k: v.astype(np.float32) for k, v in directions.items()}, samples


def layer_auc(direction: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> list[float]:
    """Per layer: the AUC of projections on `direction[L-1]` (positives above negatives).

    Args:
        direction: `(num_layers, hidden)`.
        positives, negatives: activations `(texts, num_layers, hidden)`.
    """
    from sklearn.metrics import roc_auc_score

    aucs = []
    for index in range(direction.shape[0]):
        unit = direction[index] / max(float(np.linalg.norm(direction[index])), 1e-12)
        scores = np.concatenate([positives[:, index] @ unit, negatives[:, index] @ unit])
        truth = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
        aucs.append(float(roc_auc_score(truth, scores)))
    return aucs


def heldout_layer_auc(
    direction: np.ndarray, held: dict[str, np.ndarray], neutral_held: np.ndarray, slug: str
) -> list[float]:
    """Per layer: how well `direction` tells `slug`'s validation texts from everyone else's."""
    negatives = np.concatenate([held[s] for s in held if s != slug] + [neutral_held])
    return layer_auc(direction, held[slug], negatives)
