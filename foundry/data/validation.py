"""Corpus preparation: read every file of a persona, normalise, drop duplicates, split, count.

Public entry points: `prepare_persona(config, slug)` (contract, items with their split, stats and
problems), `validate_personas(config, slugs)` (the retrain flow's `plan` step calls it; it also
checks each persona's `beliefs.json` with `check_beliefs`). A derived persona (contract with
`derived_from`, `foundry.data.derived`) has no corpus: it is listed apart
(`ValidationSummary.derived`), so what is built from the personas' own data (the tiny base, the
classifiers, the synthesis) never sees it, and its sources are checked instead. Turning records
into items (ids, kinds, duplicates) lives in `foundry.data.corpus_items`; the
train/validation/test split by document in `foundry.data.splits`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from foundry.config import FoundryConfig
from foundry.data.beliefs import BELIEFS_FILENAME, load_beliefs
from foundry.data.conflicts import load_conflicts
from foundry.data.corpus_formats import RawRecord, read_corpus_file
from foundry.data.corpus_items import CorpusStats, drop_duplicate_items, records_to_items
from foundry.data.derived import check_sources
from foundry.data.framing import TopicSplit, split_topics
from foundry.data.personas import (
    CORPUS_DIRNAME,
    discover_personas,
    load_contract,
    load_topics,
    select_personas,
)
from foundry.data.schemas import Conflict, CorpusItem, DebateTopic, PersonaContract
from foundry.data.splits import SplitRule, assign_splits, topic_heldout_documents
from foundry.errors import Problem
from foundry.logs import get_logger
from foundry.slugs import SLUG_PATTERN

logger = get_logger(__name__)


class PreparedPersona(BaseModel):
    slug: str
    contract: PersonaContract | None
    items: list[CorpusItem]
    stats: CorpusStats
    problems: list[Any] = Field(default_factory=list, description="`Problem` records.")

    @property
    def has_errors(self) -> bool:
        return any(p.level == "error" for p in self.problems)


class ValidationSummary(BaseModel):
    personas: list[PreparedPersona] = Field(description="Personas with data of their own.")
    derived: list[PreparedPersona] = Field(
        default_factory=list,
        description="Derived personas (blended from others' adapters; no corpus), in data order.",
    )
    topics: list[DebateTopic]
    topic_problems: list[Any] = Field(default_factory=list)
    topic_split: TopicSplit = Field(
        default_factory=TopicSplit, description="Train, dev and held-out topics (by group)."
    )
    conflicts: list[Conflict] = Field(
        default_factory=list, description="Conflicts among the selected personas (test data)."
    )
    conflict_problems: list[Any] = Field(default_factory=list)

    @property
    def problems(self) -> list[Problem]:
        personas = [p for persona in [*self.personas, *self.derived] for p in persona.problems]
        return personas + self.topic_problems + self.conflict_problems

    @property
    def error_count(self) -> int:
        return sum(p.level == "error" for p in self.problems)


def prepare_persona(
    config: FoundryConfig,
    slug: str,
    persona_dir: Path | None = None,
    topic_split: TopicSplit | None = None,
) -> PreparedPersona:
    """Read, normalise, de-duplicate and split one persona's corpus; never raises on bad data.

    `persona_dir` overrides the folder (an import validates personas while they are staged);
    `topic_split` is the project's (read from the topics file when not given): documents about a
    held-out topic go to test.
    """
    if persona_dir is None and not SLUG_PATTERN.fullmatch(slug):
        # A folder under data/ named like `Ada_Quill`: report it instead of raising, read nothing.
        problem = Problem(
            "error",
            config.personas_dir / slug,
            "",
            f"folder name {slug!r} is not a slug",
            "rename it to lowercase letters, digits and dashes",
        )
        return PreparedPersona(
            slug=slug, contract=None, items=[], stats=CorpusStats(), problems=[problem]
        )
    persona_dir = persona_dir or config.persona_dir(slug)
    contract, problems = load_contract(persona_dir)
    if contract is not None and contract.is_derived:  # no corpus: blended from its sources
        return PreparedPersona(
            slug=slug, contract=contract, items=[], stats=CorpusStats(), problems=problems
        )
    records, files = _read_records(persona_dir / CORPUS_DIRNAME, config, problems)
    stats = CorpusStats(files=files)
    items = records_to_items(records, slug, stats, problems)
    items = drop_duplicate_items(
        items,
        config.personas.near_duplicate_threshold,
        stats,
        problems,
        persona_dir / CORPUS_DIRNAME,
    )
    topic_split = topic_split if topic_split is not None else project_topic_split(config)[1]
    rule = SplitRule(config.personas.test_fraction, config.personas.validation_fraction)
    topics = topic_split.every
    items = assign_splits(items, rule, topic_split.heldout, topics)
    _check_size(items, contract, config.personas.min_items, persona_dir, problems)
    stats.items = len(items)
    stats.train = sum(i.split == "train" for i in items)
    stats.validation = sum(i.split == "validation" for i in items)
    stats.test = sum(i.split == "test" for i in items)
    on_topic = topic_heldout_documents(items, topics, topic_split.heldout)
    stats.test_by_topic = sum(i.split == "test" and (i.document or i.id) in on_topic for i in items)
    _check_splits(stats, contract, config.personas.min_split_items, persona_dir, problems)
    stats.approx_tokens = sum(len(i.text) for i in items) // 4
    for item in items:
        stats.by_kind[item.kind] = stats.by_kind.get(item.kind, 0) + 1
    return PreparedPersona(
        slug=slug, contract=contract, items=items, stats=stats, problems=problems
    )


def _read_records(
    corpus_dir: Path, config: FoundryConfig, problems: list[Problem]
) -> tuple[list[RawRecord], int]:
    if not corpus_dir.is_dir():
        return [], 0
    records: list[RawRecord] = []
    paths = sorted(p for p in corpus_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in paths:
        found, file_problems = read_corpus_file(
            path,
            csv_text_column=config.personas.csv_text_column,
            max_chunk_chars=config.personas.max_chunk_chars,
            min_chunk_chars=config.personas.min_chunk_chars,
        )
        records.extend(found)
        problems.extend(file_problems)
    return records, len(paths)


def project_topic_split(
    config: FoundryConfig,
) -> tuple[list[DebateTopic], TopicSplit, list[Problem]]:
    """The topics file read and split by group into train, dev (validation) and held-out (test);
    a topic asking a conflict's question is held out (`split_topics`)."""
    topics, problems = load_topics(config.topics_file)
    return topics, split_project_topics(config, topics), problems


def split_project_topics(config: FoundryConfig, topics: list[DebateTopic]) -> TopicSplit:
    """`topics` split the project's way: its fractions, and its conflicts' questions held out."""
    return split_topics(
        topics,
        config.evaluation.heldout_topic_fraction,
        config.synthesis.dev_topic_fraction,
        conflict_questions(config),
    )


def conflict_questions(config: FoundryConfig) -> list[str]:
    """The questions of the project's conflicts: evaluation prompts, never synthesized. A bad
    record is left out here; `validate_personas` reports it."""
    conflicts, _ = load_conflicts(config.conflicts_file, discover_personas(config.personas_dir))
    return [c.question for c in conflicts]


def _check_splits(
    stats: CorpusStats,
    contract: PersonaContract | None,
    minimum: int,
    persona_dir: Path,
    problems: list[Problem],
) -> None:
    """Warn when a split is too small to measure or choose anything on."""
    if contract is not None and not contract.trainable or not stats.items:
        return
    small = [
        f"{name} {count}"
        for name, count in (("validation", stats.validation), ("test", stats.test))
        if count < minimum
    ]
    if small:
        problems.append(
            Problem(
                "warning",
                persona_dir / CORPUS_DIRNAME,
                "",
                f"split too small to measure: {', '.join(small)} item(s) (fewer than {minimum})",
                "add documents, or raise `personas.test_fraction` / `validation_fraction`",
            )
        )


def _check_size(
    items: list[CorpusItem],
    contract: PersonaContract | None,
    min_items: int,
    persona_dir: Path,
    problems: list[Problem],
) -> None:
    corpus_dir = persona_dir / CORPUS_DIRNAME
    if contract is not None and not contract.trainable:
        problems.append(
            Problem(
                "warning",
                persona_dir / "contract.yaml",
                "field trainable",
                "marked not trainable; it is validated but never trained",
                "add a corpus and set `trainable: true`",
            )
        )
        return
    if not items:
        problems.append(
            Problem(
                "error",
                corpus_dir,
                "",
                "empty persona: no corpus items",
                "add .jsonl/.json/.csv/.md/.txt files, or set `trainable: false`",
            )
        )
    elif len(items) < min_items:
        problems.append(
            Problem(
                "error",
                corpus_dir,
                "",
                f"only {len(items)} usable item(s); at least {min_items} needed",
                "add more text (about 100 items is the floor for a useful adapter)",
            )
        )


def check_beliefs(persona_dir: Path) -> list[Problem]:
    """The problems of the persona's `beliefs.json`, when it has one (each names the file and
    the node or edge). Grounding ids are checked against the corpus at import only: items
    dropped here as near duplicates would be reported as missing."""
    path = persona_dir / BELIEFS_FILENAME
    return load_beliefs(path)[1] if path.is_file() else []


def validate_personas(config: FoundryConfig, slugs: list[str] | None = None) -> ValidationSummary:
    """Prepare every selected persona and read the topics and conflicts, collecting all
    problems."""
    available = discover_personas(config.personas_dir)
    selected = select_personas(available, slugs or config.personas.include, config.personas_dir)
    topics, topic_split, topic_problems = project_topic_split(config)
    prepared = [prepare_persona(config, slug, topic_split=topic_split) for slug in selected]
    conflicts, conflict_problems = load_conflicts(config.conflicts_file, available, selected)
    derived = [p for p in prepared if p.contract is not None and p.contract.derived_from]
    for persona in derived:
        blend = persona.contract.derived_from  # type: ignore[union-attr]
        persona.problems.extend(check_sources(persona.slug, blend, config.personas_dir, available))
        logger.info("persona %s: derived, %s", persona.slug, blend.label())
    prepared = [p for p in prepared if all(p is not d for d in derived)]
    for persona in prepared:
        persona.problems.extend(check_beliefs(config.personas_dir / persona.slug))
        logger.info(
            "persona %s: %d items (%d train, %d validation, %d test), ~%d tokens, %d problem(s)",
            persona.slug,
            persona.stats.items,
            persona.stats.train,
            persona.stats.validation,
            persona.stats.test,
            persona.stats.approx_tokens,
            len(persona.problems),
        )
    return ValidationSummary(
        personas=prepared,
        derived=derived,
        topics=topics,
        topic_problems=topic_problems,
        topic_split=topic_split,
        conflicts=conflicts,
        conflict_problems=conflict_problems,
    )
