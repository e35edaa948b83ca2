"""Corpus records to corpus items: normalise, fill in ids and kinds, drop duplicates.

Public entry points: `records_to_items(records, slug, stats, problems)` and
`drop_duplicate_items(items, threshold, stats, problems)`, plus the `CorpusStats` counters they
fill in (the split is `foundry.data.splits`). Problems are appended to the `problems` list given;
nothing here raises on bad data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from foundry.data.corpus_formats import RawRecord, text_of
from foundry.data.schemas import CorpusItem
from foundry.data.textnorm import find_duplicates, normalize_text
from foundry.errors import Problem
from foundry.logs import get_logger

logger = get_logger(__name__)

TWEET_MAX_CHARS = 280
_KINDS = {"tweet", "essay", "transcript", "turn", "other"}
_KNOWN_FIELDS = ("source", "date", "platform", "document")


class CorpusStats(BaseModel):
    files: int = 0
    items: int = 0
    train: int = 0
    validation: int = 0
    test: int = 0
    test_by_topic: int = Field(0, description="Test items held out because of their topic.")
    approx_tokens: int = Field(0, description="Characters / 4, a rough count for planning.")
    exact_duplicates: int = 0
    near_duplicates: int = 0
    empty_dropped: int = 0
    by_kind: dict[str, int] = Field(default_factory=dict)


def records_to_items(
    records: list[RawRecord], slug: str, stats: CorpusStats, problems: list[Problem]
) -> list[CorpusItem]:
    """Items from `records`: text normalised, ids filled in, records with a repeated id dropped."""
    items: list[CorpusItem] = []
    first_seen: dict[str, tuple[RawRecord, str]] = {}
    for record in records:
        text = _record_text(record, stats, problems)
        if text is None:
            continue
        item_id = str(record.fields.get("id") or "").strip() or _content_id(record.path, text)
        if item_id in first_seen:
            _report_repeated_id(record, item_id, text, first_seen[item_id], stats, problems)
            continue
        first_seen[item_id] = (record, text)
        item = _make_item(record, item_id, slug, text, problems)
        if item is not None:
            items.append(item)
    return items


def _record_text(record: RawRecord, stats: CorpusStats, problems: list[Problem]) -> str | None:
    """The record's normalised text; None (and a problem) when it is missing, not text or empty."""
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
        return None
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
        return None
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
        return None
    return text


def _report_repeated_id(
    record: RawRecord,
    item_id: str,
    text: str,
    first: tuple[RawRecord, str],
    stats: CorpusStats,
    problems: list[Problem],
) -> None:
    """Count a repeat of the same record; report an id reused for different text as an error."""
    earlier, earlier_text = first
    if earlier_text == text:
        stats.exact_duplicates += 1
        return
    where = earlier.where
    if earlier.path != record.path:
        where = f"{earlier.path.name}, {where}"
    problems.append(
        Problem(
            "error",
            record.path,
            record.where,
            f"duplicate id {item_id!r} (first at {where}) with different text",
            "give each record a unique id",
        )
    )


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


def drop_duplicate_items(
    items: list[CorpusItem],
    threshold: float,
    stats: CorpusStats,
    problems: list[Problem],
    corpus_dir: Path | None = None,
) -> list[CorpusItem]:
    """`items` without exact or near repeats (similarity >= `threshold`) of an earlier item.

    The warning counts every record dropped as a repeat, including a record repeated under its own
    id (`records_to_items` drops those), and points at `corpus_dir`.
    """
    duplicates = find_duplicates([i.text for i in items], threshold)
    for index, (kept, score) in duplicates.items():
        if score >= 1.0:
            stats.exact_duplicates += 1
        else:
            stats.near_duplicates += 1
        logger.debug(
            "%s repeats %s (similarity %.2f); dropped", items[index].id, items[kept].id, score
        )
    dropped = stats.exact_duplicates + stats.near_duplicates
    if dropped:
        detail = f"{stats.exact_duplicates} exact, {stats.near_duplicates} near"
        if duplicates:
            first, (kept, _) = next(iter(duplicates.items()))
            detail += f"; first: {items[first].id!r} repeats {items[kept].id!r}"
        persona = items[0].persona if items else "?"
        problems.append(
            Problem(
                "warning",
                corpus_dir,
                f"persona {persona}",
                f"{dropped} duplicate item(s) dropped ({detail})",
                "nothing to do unless the items were meant to differ",
            )
        )
    return [item for i, item in enumerate(items) if i not in duplicates]
