"""The model card logged with every registered persona adapter.

Entry point: `render_model_card(...)` returns markdown that says what the adapter is, where it
came from (data version, content hash, git commit, config hash), how it was trained, how it
scored, what it is for, what it is not, and how to load it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def render_model_card(
    *,
    slug: str,
    persona_name: str,
    version: int | str,
    base_model: str,
    data_rev: str,
    content_hash: str,
    git_commit: str,
    config_hash: str,
    training: Mapping[str, Any],
    metrics: Mapping[str, float],
    summary: str = "",
) -> str:
    """Render the model card of one registered persona adapter.

    Args:
        slug: The persona's slug (the registered model is `persona-<slug>`).
        persona_name: The persona's display name.
        version: The registered model version.
        base_model: The base model id the adapter was trained on.
        data_rev: The DVC md5 of the data directory version.
        content_hash: The hash of the training items' content.
        git_commit: The code's git commit.
        config_hash: The hash of the fully resolved config.
        training: Training settings to list (rank, alpha, steps, learning rate, ...).
        metrics: Headline metrics (name -> value).
        summary: An optional paragraph placed under the title.

    Returns:
        Markdown text.
    """
    model = f"persona-{slug}"
    lines = [f"# {model} v{version}: {persona_name}", ""]
    if summary:
        lines += [summary.strip(), ""]
    lines += [
        "## What this is",
        "",
        f"A LoRA adapter for the base model `{base_model}` that gives it the debate voice of the "
        f"persona **{persona_name}** (`{slug}`). It is not a standalone model: load it on top of "
        "that exact base model.",
        "",
        "## Lineage",
        "",
        "| item | value |",
        "|---|---|",
        f"| data version (DVC md5) | `{data_rev or 'unknown'}` |",
        f"| content hash | `{content_hash or 'unknown'}` |",
        f"| git commit | `{git_commit or 'unknown'}` |",
        f"| config hash | `{config_hash or 'unknown'}` |",
        f"| base model | `{base_model}` |",
        "",
        "## Training",
        "",
        *_table("setting", training),
        "## Headline metrics",
        "",
        *_table("metric", {name: _format(value) for name, value in metrics.items()}),
        "## Intended use",
        "",
        "- A debate persona's voice in multi-agent debate experiments.",
        "- Research on persona conditioning, attribution and viewpoint diversity.",
        "",
        "## Limits",
        "",
        "- Trained on about a hundred curated items plus synthetic data; topic coverage is thin.",
        "- On small base models the measured differences between personas are mostly vocabulary, "
        "not reasoning.",
        "- The persona is a composite debate position, not a real person's views.",
        "- Do not present its output as the words or opinions of any real person.",
        "",
        "## How to load",
        "",
        f"- Inspect: `foundry registry show {slug}`",
        f"- Registry URI: `models:/{model}@champion` (or `models:/{model}/{version}`)",
        "- In Python: `registry.loading.load_adapter(uri, base_model, tracking_uri)` attaches it "
        "to a loaded base model.",
        "",
    ]
    return "\n".join(lines)


def _table(header: str, values: Mapping[str, Any]) -> list[str]:
    if not values:
        return ["(none recorded)", ""]
    rows = [f"| {header} | value |", "|---|---|"]
    rows += [f"| {name} | {value} |" for name, value in values.items()]
    return [*rows, ""]


def _format(value: float) -> str:
    return f"{value:.3f}"
