"""Corpus preparation: read every file of a persona, normalise, drop duplicates, split, count.

Public entry points: `prepare_persona(config, slug)` (contract, items with their split, stats and
problems), `validate_personas(config, slugs)` and the `validate_data` task. The split is
deterministic: an item goes to `eval` when a hash of its persona and id falls under
`personas.eval_fraction`, and each persona keeps at least one item on each side.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from prefect import task
from pydantic import BaseModel, Field, ValidationError

from foundry.config import FoundryConfig
from foundry.corpus_formats import RawRecord, read_corpus_file, text_of
from foundry.errors import DataError, Problem, raise_for_errors
from foundry.logs import get_logger
from foundry.personas import (
    CORPUS_DIRNAME,
    discover_personas,
    load_contract,
    load_topics,
    select_personas,
)
from foundry.schemas import SLUG_PATTERN, CorpusItem, DebateTopic, PersonaContract
from foundry.textnorm import find_duplicates, normalize_text

logger = get_logger(__name__)

TWEET_MAX_CHARS = 280
_KINDS = {"tweet", "essay", "transcript", "turn", "other"}
_KNOWN_FIELDS = ("source", "date", "platform")


class CorpusStats(BaseModel):
    files: int = 0
    items: int = 0
    train: int = 0
    eval: int = 0
    approx_tokens: int = Field(0, description="Characters / 4, a rough count for planning.")
    exact_duplicates: int = 0
    near_duplicates: int = 0
    empty_dropped: int = 0
    by_kind: dict[str, int] = Field(default_factory=dict)


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
    personas: list[PreparedPersona]
    topics: list[DebateTopic]
    topic_problems: list[Any] = Field(default_factory=list)

    @property
    def problems(self) -> list[Problem]:
        return [p for persona in self.personas for p in persona.problems] + self.topic_problems

    @property
    def error_count(self) -> int:
        return sum(p.level == "error" for p in self.problems)


def prepare_persona(
    config: FoundryConfig, slug: str, persona_dir: Path | None = None
) -> PreparedPersona:
    """Read, normalise, de-duplicate and split one persona's corpus; never raises on bad data.

    `persona_dir` overrides the folder (an import validates personas while they are staged).
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
    records, files = _read_records(persona_dir / CORPUS_DIRNAME, config, problems)
    stats = CorpusStats(files=files)
    items = _to_items(records, slug, stats, problems)
    items = _drop_duplicates(items, config.personas.near_duplicate_threshold, stats, problems)
    items = assign_splits(items, config.personas.eval_fraction)
    _check_size(items, contract, config.personas.min_items, persona_dir, problems)
    stats.items = len(items)
    stats.train = sum(i.split == "train" for i in items)
    stats.eval = stats.items - stats.train
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


def _to_items(
    records: list[RawRecord], slug: str, stats: CorpusStats, problems: list[Problem]
) -> list[CorpusItem]:
    items: list[CorpusItem] = []
    first_seen: dict[str, tuple[RawRecord, str]] = {}
    for record in records:
        raw_text = text_of(record.fields)
        if raw_text is None:
            problems.append(
                Problem(
                    "error",
                    record.path,
                    record.where,
                    "record has no text",
                    "add a `text` (or `content`) field",
                )
            )
            continue
        if not isinstance(raw_text, str):
            problems.append(
                Problem(
                    "error",
                    record.path,
                    record.where,
                    f"text must be a string, got {type(raw_text).__name__}",
                    "write the text as a JSON string",
                )
            )
            continue
        text = normalize_text(raw_text)
        if not text:
            stats.empty_dropped += 1
            problems.append(
                Problem(
                    "warning",
                    record.path,
                    record.where,
                    "empty text; dropped",
                    "remove the record or fill in its text",
                )
            )
            continue
        item_id = str(record.fields.get("id") or "").strip() or _content_id(record.path, text)
        if item_id in first_seen:
            earlier, earlier_text = first_seen[item_id]
            if earlier_text != text:
                first = earlier.where
                if earlier.path != record.path:
                    first = f"{earlier.path.name}, {first}"
                problems.append(
                    Problem(
                        "error",
                        record.path,
                        record.where,
                        f"duplicate id {item_id!r} (first at {first}) with different text",
                        "give each record a unique id",
                    )
                )
            else:
                stats.exact_duplicates += 1
            continue
        first_seen[item_id] = (record, text)
        item = _make_item(record, item_id, slug, text, problems)
        if item is not None:
            items.append(item)
    return items


def _make_item(
    record: RawRecord, item_id: str, slug: str, text: str, problems: list[Problem]
) -> CorpusItem | None:
    fields = {k: str(record.fields.get(k) or "").strip() for k in _KNOWN_FIELDS}
    kind = str(record.fields.get("kind") or record.kind_hint or "").strip().lower()
    if kind and kind not in _KINDS:
        problems.append(
            Problem(
                "warning",
                record.path,
                record.where,
                f"unknown kind {kind!r}",
                f"use one of {', '.join(sorted(_KINDS))}; guessed from length",
            )
        )
        kind = ""
    kind = kind or _guess_kind(text, fields["platform"])
    try:
        return CorpusItem(id=item_id, persona=slug, text=text, kind=kind, **fields)
    except ValidationError as exc:
        problems.append(
            Problem(
                "error", record.path, record.where, str(exc.errors()[0]["msg"]), "fix the record"
            )
        )
        return None


def _guess_kind(text: str, platform: str) -> str:
    if platform.lower() in {"x", "twitter", "bluesky", "threads", "mastodon"}:
        return "tweet"
    return "tweet" if len(text) <= TWEET_MAX_CHARS else "essay"


def _content_id(path: Path, text: str) -> str:
    return f"{path.stem}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def _drop_duplicates(
    items: list[CorpusItem], threshold: float, stats: CorpusStats, problems: list[Problem]
) -> list[CorpusItem]:
    duplicates = find_duplicates([i.text for i in items], threshold)
    for index, (kept, score) in duplicates.items():
        if score >= 1.0:
            stats.exact_duplicates += 1
        else:
            stats.near_duplicates += 1
        logger.debug(
            "%s repeats %s (similarity %.2f); dropped", items[index].id, items[kept].id, score
        )
    if duplicates:
        first, (kept, _) = next(iter(duplicates.items()))
        problems.append(
            Problem(
                "warning",
                None,
                f"persona {items[first].persona}",
                f"{len(duplicates)} duplicate item(s) dropped (first: {items[first].id!r} repeats "
                f"{items[kept].id!r})",
                "nothing to do unless the items were meant to differ",
            )
        )
    return [item for i, item in enumerate(items) if i not in duplicates]


def split_score(persona: str, item_id: str) -> float:
    """A stable number in [0, 1) from persona and id: the item's place in the split."""
    digest = hashlib.sha256(f"{persona}/{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(items: list[CorpusItem], eval_fraction: float) -> list[CorpusItem]:
    """Deterministic train/eval split by id hash; at least one item on each side if possible."""
    if not items:
        return []
    scores = [split_score(i.persona, i.id) for i in items]
    splits = ["eval" if s < eval_fraction else "train" for s in scores]
    if "eval" not in splits:
        splits[scores.index(min(scores))] = "eval"
    if "train" not in splits and len(items) > 1:
        splits[scores.index(max(scores))] = "train"
    return [
        item.model_copy(update={"split": split}) for item, split in zip(items, splits, strict=True)
    ]


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


def validate_personas(config: FoundryConfig, slugs: list[str] | None = None) -> ValidationSummary:
    """Prepare every selected persona and read the topics, collecting all problems."""
    available = discover_personas(config.personas_dir)
    selected = select_personas(available, slugs or config.personas.include, config.personas_dir)
    prepared = [prepare_persona(config, slug) for slug in selected]
    topics, topic_problems = load_topics(config.topics_file)
    for persona in prepared:
        logger.info(
            "persona %s: %d items (%d train, %d eval), ~%d tokens, %d problem(s)",
            persona.slug,
            persona.stats.items,
            persona.stats.train,
            persona.stats.eval,
            persona.stats.approx_tokens,
            len(persona.problems),
        )
    return ValidationSummary(personas=prepared, topics=topics, topic_problems=topic_problems)


@task(name="validate-data")
def validate_data(config_path: str | None, personas: list[str] | None = None) -> dict[str, Any]:
    """Validate every selected persona; fail with all errors listed; return stats per persona."""
    from foundry.config import load_config

    config = load_config(Path(config_path) if config_path else None)
    summary = validate_personas(config, personas)
    if not summary.personas:
        raise DataError(
            f"no personas in {config.personas_dir}; run `foundry init` (sample data) or "
            "`foundry import faultline DIR`"
        )
    raise_for_errors(summary.problems, f"data in {config.data_dir}")
    for problem in summary.problems:
        logger.warning("%s", problem)
    return {p.slug: p.stats.model_dump() for p in summary.personas}
