"""What a synthesis run covers: the personas it writes turns for and the topics it writes them on.

Public entry points: `select_personas(summary, slugs, config)` (the named personas, or every
trainable one; each must have enough train corpus items to ground its turns on) and
`synthesis_topics(config, summary, topics_path)` (the project's topic split, or one read from a
debate prompts file; held-out topics are never used). Both raise `SynthesisError` before anything
is generated.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from foundry.config import FoundryConfig
from foundry.data.framing import TopicSplit
from foundry.data.personas import load_topics
from foundry.data.validation import PreparedPersona, ValidationSummary, split_project_topics
from foundry.synthesis.jobs import SynthesisError


def select_personas(
    summary: ValidationSummary, slugs: Sequence[str], config: FoundryConfig
) -> list[str]:
    """The personas to synthesize for; each must have enough train items to ground on.

    Raises:
        SynthesisError: an unknown slug, no trainable persona, or a persona with fewer than
            `synthesis.min_corpus_items` train corpus items.
    """
    by_slug = {p.slug: p for p in summary.personas}
    unknown = [s for s in slugs if s not in by_slug]
    if unknown:
        raise SynthesisError(
            f"unknown persona(s) {', '.join(unknown)}; have {', '.join(by_slug) or 'none'}"
        )
    chosen = list(slugs) or [s for s, p in by_slug.items() if _is_trainable(p)]
    if not chosen:
        raise SynthesisError(f"no trainable personas in {config.personas_dir} to synthesize for")
    least = config.synthesis.min_corpus_items
    for slug in chosen:
        train = sum(item.split == "train" for item in by_slug[slug].items)
        if train < least:
            raise SynthesisError(
                f"persona {slug} has {train} train corpus item(s) in "
                f"{config.persona_dir(slug) / 'corpus'}; synthesis grounds every turn in the "
                f"persona's own writing and needs at least {least} "
                "(`synthesis.min_corpus_items`): add corpus files, or leave the persona out"
            )
    return chosen


def synthesis_topics(
    config: FoundryConfig, summary: ValidationSummary, topics_path: Path | None
) -> TopicSplit:
    """The topic split to synthesize on: the project's, or that of a debate prompts file.

    Raises:
        SynthesisError: the prompts file is missing or has errors, or no framing topic is left.
    """
    if topics_path is None:
        split = summary.topic_split
    else:
        if not topics_path.is_file():
            raise SynthesisError(f"prompts file {topics_path} not found; pass an existing file")
        topics, problems = load_topics(topics_path)
        errors = [p for p in problems if p.level == "error"]
        if errors:
            raise SynthesisError("\n".join(str(p) for p in errors))
        split = split_project_topics(config, topics)
    if not split.framing:
        raise SynthesisError(
            f"no debate topics to synthesize on (held-out topics are never used); add topics to "
            f"{topics_path or config.topics_file}"
        )
    return split


def _is_trainable(persona: PreparedPersona) -> bool:
    return persona.contract is not None and persona.contract.trainable and bool(persona.items)
