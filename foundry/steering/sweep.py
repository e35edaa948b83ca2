"""How strong a persona vector is applied: a fluency-guarded sweep over strengths, the choice, and
what steering measurably does to the other personas.

Public entry points: `sweep(model, config, prompts, vector, adapter, classifiers, hook)` (one row
per strength), `choose_alpha(rows, tolerance, min_gain)`, `cross_effects(...)` and `plot_sweep(...)`
(the `sweep.png` stored with the vector).

The strength is swept on train-topic prompts (never the evaluation's held-out topics): each strength
is scored with the evaluation's style and content attribution, and guarded by fluency (the answers'
NLL under the unsteered base); a strength past `steering.fluency_tolerance` is refused with a
warning. `dpo+steer` gets its own sweep on the persona's DPO adapter, since an adapter already moves
the model part of the way.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from foundry.config import FoundryConfig
from foundry.steering.algebra import away_from, cosine
from foundry.steering.hooks import SteerVector, register_vectors

if TYPE_CHECKING:
    from foundry.steering.inputs import SteeringModel

STEER_VARIANTS = ("steer", "dpo+steer")


def sweep(
    model: SteeringModel,
    config: FoundryConfig,
    prompts: Sequence[str],
    vector: SteerVector,
    adapter: str,
    classifiers: dict[str, Any],
    hook: Callable[[int], None] | None,
) -> list[dict[str, Any]]:
    """Attribution and fluency of the persona's answers to `prompts` at each strength.

    Args:
        model: answers through `adapter` steered by `vector`, and scores fluency on the bare base.
        config: `steering.alphas` (the strengths) and `steering.fluency_tolerance`.
        prompts: train-topic prompts (never the evaluation's held-out topics).
        vector: the persona's unit-strength vector.
        adapter: the loaded adapter to steer (`BASE_ADAPTER` for `steer`).
        classifiers: `style` and `content` attribution, fitted on the real train splits.
        hook: called once per strength.

    Returns:
        One row per strength: attribution (style and content averaged), NLL, its gain over no
        steering, whether that is within the fluency guard, and an example answer.
    """
    slug = vector.name
    rows = []
    for alpha in sorted(config.steering.alphas):
        name = f"sweep:{slug}"
        register_vectors(model.model, {name: vector.at(alpha)})
        answers = model.answers(prompts, adapter=adapter, steer=(name,))
        nll = model.base_nll(prompts, answers)
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
        row["fluent"] = row["nll_gain"] <= config.steering.fluency_tolerance
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


def cross_effects(
    model: SteeringModel,
    prompts: Sequence[str],
    personas: Sequence[str],
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
    for label, steer in (
        ("vector", vector.at(alpha)),
        (f"away_from:{near}", away_from(vector, others[near]).at(alpha)),
    ):
        register_vectors(model.model, {f"cross:{slug}": steer})
        answers = model.answers(prompts, steer=(f"cross:{slug}",))
        style = classifiers["style"].probabilities(answers)
        content = classifiers["content"].probabilities(answers)
        effects[label] = {
            s: round(
                float(np.mean([(a[s] + b[s]) / 2 for a, b in zip(style, content, strict=True)])), 4
            )
            for s in personas
        }
    return effects


def plot_sweep(
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
