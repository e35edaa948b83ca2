"""Persona vectors: extract each persona's directions, pick the layer and strength, store them.

Public entry points: `extract_vectors(config, personas)` writes one vector folder per persona
(`foundry.steering.store`) and returns what it chose; `vectors_persona` and `vectors_task` run it
for the `retrain` flow.

Extraction follows the persona-vector recipe: the mean hidden state over response tokens, at every
layer, under the persona minus under a contrast. Three families are stored:
- `persona`: the persona vs a neutral assistant, averaged over two readings: the base model's
  answers under the contract's system prompt vs under a neutral one, and the persona's real train
  texts vs the neutral answers;
- `one_vs_rest`: the persona's real texts vs the mean of the other personas' means;
- `vs:<slug>`: pairwise, the persona's real texts vs one other persona's.

The layer is the one whose projections best separate the persona's held-out texts from the other
personas' held-out texts and neutral answers (AUC), unless `steering.layer` fixes it. The strength
is swept on train-topic prompts (never the evaluation's held-out topics): each strength is scored
with the evaluation's style and content attribution, and guarded by fluency (the answers' NLL under
the unsteered base); a strength past `steering.fluency_tolerance` is refused with a warning.
`dpo+steer` gets its own sweep on the persona's DPO adapter, since an adapter already moves the
model part of the way.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from prefect import task

from foundry.config import FoundryConfig
from foundry.data.framing import BASE_ADAPTER, contract_system_prompt, debate_prompt
from foundry.data.schemas import DebateTopic
from foundry.errors import FoundryError, raise_for_errors
from foundry.logs import get_logger
from foundry.steering.activations import ResponseRow, check_layer, response_activations
from foundry.steering.algebra import away_from, cosine
from foundry.steering.hooks import SteerVector, register_vectors
from foundry.steering.store import PersonaVector, save_persona_vector
from foundry.training.datasets import item_prompts

logger = get_logger(__name__)

NEUTRAL_SYSTEM = (
    "You are a neutral, helpful assistant. Answer plainly and even-handedly, without taking on "
    "any particular voice."
)
STEER_VARIANTS = ("steer", "dpo+steer")
PLOT_FILE = "sweep.png"
Progress = Callable[[str, int], Callable[[int], None]]


class SteeringSetupError(FoundryError):
    """Vectors cannot be extracted: too few personas, prompts or texts."""


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


@dataclass
class _Corpus:
    """Everything extraction reads, for every persona (the contrast needs them all)."""

    config: FoundryConfig
    contracts: dict[str, Any]
    train: dict[str, list[ResponseRow]]
    heldout: dict[str, list[ResponseRow]]
    train_texts: dict[str, list[str]]
    extraction_topics: list[DebateTopic]
    sweep_topics: list[DebateTopic]


def extract_vectors(
    config: FoundryConfig,
    personas: Sequence[str] | None = None,
    *,
    data_rev: str = "",
    progress: Progress | None = None,
) -> list[VectorResult]:
    """Extract, select and store the persona vector of each selected persona.

    Args:
        config: the project configuration (`steering:` section).
        personas: slugs to extract (default: all); the others still serve as contrast.
        data_rev: the data version recorded with the vectors.
        progress: `progress(label, steps)` per persona; returns a per-step hook.

    Returns:
        One result per persona, in order.

    Raises:
        SteeringSetupError: fewer than two personas, or no train topics to prompt with.
        LayerError: `steering.layer` is out of range for the base model.
        DataError: the persona data has errors.
    """
    from foundry.data.attribution import fit_content_classifier, fit_style_classifier
    from foundry.evaluation.cache import adapter_digest

    corpus = _read_corpus(config)
    selected = list(personas) if personas else list(corpus.contracts)
    unknown = [s for s in selected if s not in corpus.contracts]
    if unknown:
        raise SteeringSetupError(
            f"no persona {', '.join(unknown)} in {config.personas_dir}; "
            f"personas: {', '.join(corpus.contracts)}"
        )
    model, tokenizer, base_id, dpo = _load_model(config, selected)
    if config.steering.layer:
        check_layer(model, config.steering.layer)
    texts = [t for s in corpus.contracts for t in corpus.train_texts[s]]
    labels = [s for s in corpus.contracts for _ in corpus.train_texts[s]]
    classifiers = {
        "style": fit_style_classifier(texts, labels, seed=config.evaluation.seed),
        "content": fit_content_classifier(texts, labels, seed=config.evaluation.seed),
    }
    means = {s: _mean(model, tokenizer, corpus.train[s]) for s in corpus.contracts}
    held = {s: response_activations(model, tokenizer, corpus.heldout[s]) for s in corpus.contracts}
    neutral = _neutral(model, tokenizer, corpus)
    results = []
    for slug in selected:
        steps = 3 + len(STEER_VARIANTS) * len(config.steering.alphas)
        hook = progress(f"vectors: {slug}", steps) if progress else None
        started = time.perf_counter()
        directions, samples = _directions(model, tokenizer, corpus, slug, means, neutral)
        if hook:
            hook(1)
        auc = {
            family: _layer_auc(directions[family], held, neutral["held"], slug)
            for family in ("persona", "one_vs_rest")
        }
        family = config.steering.family
        layer = config.steering.layer or int(np.argmax(auc[family])) + 1
        if hook:
            hook(1)
        vector = SteerVector(layer, directions[family][layer - 1], 1.0, slug, base_id)
        sweeps: dict[str, list[dict[str, Any]]] = {}
        chosen: dict[str, float] = {}
        notes: list[str] = []
        for variant in STEER_VARIANTS:
            adapter = BASE_ADAPTER if variant == "steer" else dpo.get(slug)
            if adapter is None:
                notes.append(f"no dpo adapter: {variant} has no chosen strength yet")
                if hook:
                    hook(len(config.steering.alphas))
                continue
            rows = _sweep(model, tokenizer, corpus, slug, vector, adapter, classifiers, hook)
            sweeps[variant] = rows
            chosen[variant], why = _choose_alpha(rows, config)
            notes += [f"{variant}: {line}" for line in why]
        effects = _cross_effects(
            model, tokenizer, corpus, vector, means, chosen.get("steer", 0.0), classifiers
        )
        if hook:
            hook(1)
        meta = {
            "base_model": base_id,
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
            "adapters": (
                {"dpo": adapter_digest(config.adapter_dir(slug, "dpo"))} if slug in dpo else {}
            ),
            "alpha": chosen,
            "sweep": sweeps,
            "cross_effects": effects,
            "settings": config.steering.model_dump(mode="json"),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "notes": notes,
        }
        plot = _plot(slug, sweeps, chosen, config.steering.fluency_tolerance)
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


def heldout_rows(config: FoundryConfig) -> dict[str, list[ResponseRow]]:
    """Every persona's held-out corpus texts, framed by their debate prompts (for monitoring)."""
    return _read_corpus(config).heldout


def _read_corpus(config: FoundryConfig) -> _Corpus:
    from foundry.data.validation import validate_personas

    summary = validate_personas(config)
    raise_for_errors(summary.problems, f"data in {config.data_dir}")
    personas = [p for p in summary.personas if p.contract is not None]
    if len(personas) < 2:
        raise SteeringSetupError(
            f"persona vectors contrast a persona with the others, and {config.personas_dir} has "
            f"{len(personas)} persona(s) with a contract; add another persona"
        )
    topics = summary.topic_split.framing
    if not topics:
        raise SteeringSetupError(f"{config.topics_file} has no train topics to prompt with")
    settings = config.steering
    extraction = [topics[i % len(topics)] for i in range(settings.prompts)]
    sweep = [topics[(settings.prompts + i) % len(topics)] for i in range(settings.sweep_prompts)]
    corpus = _Corpus(config, {p.slug: p.contract for p in personas}, {}, {}, {}, extraction, sweep)
    for persona in personas:
        train = [i for i in persona.items if i.split == "train"]
        held = [i for i in persona.items if i.split == "eval"]
        corpus.train_texts[persona.slug] = [i.text for i in train]
        prompts = item_prompts(train[: settings.max_texts] + held, topics)
        corpus.train[persona.slug] = [
            ResponseRow(prompts[i.id], i.text) for i in train[: settings.max_texts]
        ]
        corpus.heldout[persona.slug] = [ResponseRow(prompts[i.id], i.text) for i in held]
        if not corpus.heldout[persona.slug]:
            raise SteeringSetupError(
                f"{persona.slug} has no held-out corpus items to choose a layer with; raise "
                "`personas.eval_fraction` or add texts"
            )
    return corpus


def _load_model(
    config: FoundryConfig, selected: Sequence[str]
) -> tuple[Any, Any, str, dict[str, str]]:
    """The base with each selected persona's DPO adapter attached (when trained)."""
    from foundry.training.adapters import attach_adapters
    from foundry.training.base_model import load_base

    adapters = {
        f"{slug}-dpo": config.adapter_dir(slug, "dpo")
        for slug in selected
        if (config.adapter_dir(slug, "dpo") / "adapter_config.json").is_file()
    }
    base = load_base(config)
    model = attach_adapters(base.model, adapters)
    return model, base.tokenizer, base.identity, {n[: -len("-dpo")]: n for n in adapters}


def _mean(model: Any, tokenizer: Any, rows: Sequence[ResponseRow]) -> np.ndarray:
    return response_activations(model, tokenizer, rows).mean(axis=0)


def _answers(
    model: Any,
    tokenizer: Any,
    config: FoundryConfig,
    prompts: Sequence[str],
    *,
    system: str | None = None,
    adapter: str = BASE_ADAPTER,
    steer: tuple[str, ...] = (),
) -> list[str]:
    from foundry.training.generation import GenerationParams, GenerationRequest, generate

    params = GenerationParams(
        max_new_tokens=config.steering.max_new_tokens,
        temperature=config.evaluation.temperature,
        seed=config.evaluation.seed,
        batch_size=config.evaluation.batch_size,
    )
    requests = [
        GenerationRequest(prompt=p, adapter=adapter, system=system, steer=steer) for p in prompts
    ]
    return [a or " " for a in generate(model, tokenizer, requests, params)]


def _neutral(model: Any, tokenizer: Any, corpus: _Corpus) -> dict[str, Any]:
    """The neutral assistant's answers on the extraction prompts (read with and without the
    neutral system prompt) and on the sweep prompts (held out, for the layer AUC)."""
    prompts = [debate_prompt(t) for t in corpus.extraction_topics]
    held_prompts = [debate_prompt(t) for t in corpus.sweep_topics]
    answers = _answers(
        model, tokenizer, corpus.config, prompts + held_prompts, system=NEUTRAL_SYSTEM
    )
    train, held = answers[: len(prompts)], answers[len(prompts) :]
    return {
        "prompts": prompts,
        "system_mean": _mean(
            model,
            tokenizer,
            [ResponseRow(p, a, NEUTRAL_SYSTEM) for p, a in zip(prompts, train, strict=True)],
        ),
        "plain_mean": _mean(
            model, tokenizer, [ResponseRow(p, a) for p, a in zip(prompts, train, strict=True)]
        ),
        "held": response_activations(
            model, tokenizer, [ResponseRow(p, a) for p, a in zip(held_prompts, held, strict=True)]
        ),
        "count": len(train),
    }


def _directions(
    model: Any,
    tokenizer: Any,
    corpus: _Corpus,
    slug: str,
    means: dict[str, np.ndarray],
    neutral: dict[str, Any],
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Every family's direction `(num_layers, hidden)` for `slug`, and the sample counts."""
    system = contract_system_prompt(corpus.contracts[slug])
    prompted = _answers(model, tokenizer, corpus.config, neutral["prompts"], system=system)
    prompted_mean = _mean(
        model, tokenizer,
        [ResponseRow(p, a, system) for p, a in zip(neutral["prompts"], prompted, strict=True)],
    )  # fmt: skip
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
        "heldout_own": len(corpus.heldout[slug]),
        "heldout_rest": sum(len(corpus.heldout[s]) for s in others) + len(neutral["held"]),
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


def _layer_auc(
    direction: np.ndarray, held: dict[str, np.ndarray], neutral_held: np.ndarray, slug: str
) -> list[float]:
    negatives = np.concatenate([held[s] for s in held if s != slug] + [neutral_held])
    return layer_auc(direction, held[slug], negatives)


def _sweep(
    model: Any,
    tokenizer: Any,
    corpus: _Corpus,
    slug: str,
    vector: SteerVector,
    adapter: str,
    classifiers: dict[str, Any],
    hook: Callable[[int], None] | None,
) -> list[dict[str, Any]]:
    """Attribution and fluency of the persona's answers at each strength."""
    from foundry.evaluation.scoring import ScoreRow, score_completions

    prompts = [debate_prompt(t) for t in corpus.sweep_topics]
    rows = []
    for alpha in sorted(corpus.config.steering.alphas):
        name = f"sweep:{slug}"
        register_vectors(model, {name: vector.at(alpha)})
        answers = _answers(model, tokenizer, corpus.config, prompts, adapter=adapter, steer=(name,))
        scores = score_completions(
            model,
            tokenizer,
            [ScoreRow(p, a, BASE_ADAPTER) for p, a in zip(prompts, answers, strict=True)],
        )
        nll = sum(s.nll for s in scores) / max(1, sum(s.tokens for s in scores))
        shares = {k: _own_probability(c, answers, slug) for k, c in classifiers.items()}
        rows.append(
            {
                "alpha": float(alpha),
                "attribution": round((shares["style"] + shares["content"]) / 2, 4),
                "style": round(shares["style"], 4),
                "content": round(shares["content"], 4),
                "nll": round(nll, 4),
                "example": answers[0][:200],
            }
        )
        if hook:
            hook(1)
    zero = next(r for r in rows if r["alpha"] == 0.0)
    for row in rows:
        row["nll_gain"] = round(row["nll"] - zero["nll"], 4)
        row["fluent"] = row["nll_gain"] <= corpus.config.steering.fluency_tolerance
    return rows


def _own_probability(classifier: Any, texts: Sequence[str], slug: str) -> float:
    return float(np.mean([p.get(slug, 0.0) for p in classifier.probabilities(texts)]))


def choose_alpha(
    rows: Sequence[dict[str, Any]], tolerance: float, min_gain: float
) -> tuple[float, list[str]]:
    """The strength with the best attribution among the fluent ones, and why.

    A strength whose NLL gain passes `tolerance` is refused (said in the returned lines); one that
    gains less than `min_gain` attribution over no steering is not worth its fluency cost, so 0 is
    kept when none does.
    """
    zero = next(r for r in rows if r["alpha"] == 0.0)
    why = [
        f"alpha {r['alpha']:g} refused: fluency collapses "
        f"(NLL +{r['nll'] - zero['nll']:.2f} > {tolerance:g})"
        for r in rows
        if r["nll"] - zero["nll"] > tolerance
    ]
    fluent = [r for r in rows if r["nll"] - zero["nll"] <= tolerance]
    best = max(fluent, key=lambda r: (r["attribution"], -r["alpha"]))
    if best["attribution"] - zero["attribution"] < min_gain:
        why.append(f"no fluent strength raised attribution by {min_gain:g} or more; alpha 0 kept")
        return 0.0, why
    return float(best["alpha"]), why


def _choose_alpha(rows: Sequence[dict[str, Any]], config: FoundryConfig) -> tuple[float, list[str]]:
    alpha, why = choose_alpha(rows, config.steering.fluency_tolerance, config.steering.min_gain)
    for line in why:  # the CLI prints them after its table; the flow's summary lists them
        logger.info("%s", line)
    return alpha, why


def _cross_effects(
    model: Any,
    tokenizer: Any,
    corpus: _Corpus,
    vector: SteerVector,
    means: dict[str, np.ndarray],
    alpha: float,
    classifiers: dict[str, Any],
) -> dict[str, Any]:
    """Measured, not assumed: every persona's attribution (style and content averaged) when
    steering with the vector, and with the vector "away from" its nearest other persona."""
    if alpha == 0.0:
        return {}
    slug, index = vector.name, vector.layer - 1
    others = {
        s: SteerVector(
            vector.layer,
            means[s][index] - np.mean([means[t][index] for t in means if t != s], axis=0),
            alpha,
            s,
        )
        for s in means
        if s != slug
    }
    near = max(others, key=lambda s: cosine(vector, others[s]))
    effects: dict[str, Any] = {
        "alpha": alpha, "nearest": near, "cosine": round(cosine(vector, others[near]), 4)
    }  # fmt: skip
    prompts = [debate_prompt(t) for t in corpus.sweep_topics]
    for label, steer in (
        ("vector", vector.at(alpha)),
        (f"away_from:{near}", away_from(vector, others[near]).at(alpha)),
    ):
        register_vectors(model, {f"cross:{slug}": steer})
        answers = _answers(model, tokenizer, corpus.config, prompts, steer=(f"cross:{slug}",))
        style = classifiers["style"].probabilities(answers)
        content = classifiers["content"].probabilities(answers)
        effects[label] = {
            s: round(
                float(np.mean([(a[s] + b[s]) / 2 for a, b in zip(style, content, strict=True)])), 4
            )
            for s in corpus.contracts
        }
    return effects


def _plot(
    slug: str,
    sweeps: dict[str, list[dict[str, Any]]],
    chosen: dict[str, float],
    tolerance: float,
) -> bytes:
    """Attribution and NLL gain against strength, one line per variant; the refused region
    shaded, each chosen strength starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, left = plt.subplots(figsize=(6, 3.6), dpi=110)
    right = left.twinx()
    for (variant, rows), color in zip(sweeps.items(), ("tab:blue", "tab:purple"), strict=False):
        alphas = [r["alpha"] for r in rows]
        left.plot(
            alphas,
            [r["attribution"] for r in rows],
            "o-",
            color=color,
            label=f"{variant} attribution",
        )
        right.plot(
            alphas,
            [r["nll_gain"] for r in rows],
            "s--",
            color=color,
            alpha=0.6,
            label=f"{variant} NLL gain",
        )
        pick = next((r for r in rows if r["alpha"] == chosen.get(variant)), None)
        if pick is not None:
            left.plot([pick["alpha"]], [pick["attribution"]], "*", color=color, markersize=14)
    right.axhspan(tolerance, max(tolerance * 2, _max_gain(sweeps) + 0.1), color="red", alpha=0.08)
    right.axhline(tolerance, color="red", linewidth=0.8, label="fluency guard (refused above)")
    left.set_xlabel("alpha (multiples of the persona vector)")
    left.set_ylabel("own-persona attribution")
    right.set_ylabel("NLL gain under base (nats/token)")
    left.set_ylim(0, 1)
    left.set_title(f"{slug}: steering strength sweep (star: chosen)", fontsize=10)
    handles = left.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    left.legend(handles[0] + more[0], handles[1] + more[1], fontsize=7, loc="upper left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _max_gain(sweeps: dict[str, list[dict[str, Any]]]) -> float:
    return max((r["nll_gain"] for rows in sweeps.values() for r in rows), default=0.0)


def vectors_persona(config_path: str | None, slug: str, data_rev: str = "") -> dict[str, Any]:
    """Extract one persona's vector (the flow's step; runs in a worker process)."""
    from foundry.config import load_config

    config = load_config(Path(config_path) if config_path else None)
    return extract_vectors(config, [slug], data_rev=data_rev)[0].to_dict()


@task(name="persona-vectors", task_run_name="vectors[{slug}]")
def vectors_task(config_path: str | None, slug: str, data_rev: str = "") -> dict[str, Any]:
    """Extract one persona's vector in the flow's training pool."""
    from prefect.logging import get_run_logger

    from foundry.training.pool import run_in_pool

    return run_in_pool(vectors_persona, config_path, slug, data_rev, log=get_run_logger())
