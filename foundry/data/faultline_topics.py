"""The debate topics a Faultline import writes into `data/topics.yaml`.

Synthesis and evaluation prompt personas with the topics file; an imported deck must be judged on
the questions its personas argue about, not on the sample's. `plan_topics(...)` makes one topic
from each settling question of the conflicts that involve an imported persona, one from each
worldview position (the claim, kept in its neutral voice, followed by a question), and one from
the deck's `topic` in `personas.json` when it has one. It returns the new text of the topics file
and a `TopicsReport`; the import writes the text only after everything else has validated.

Groups: a topic is grouped with the others of its kind (`faultline-conflict-temporal`,
`faultline-position-normative`, `faultline-deck-<id>`), so a held-out group is a whole kind of
question. When the file would then have too few groups for `split_topics` to hold any out, each
imported topic becomes its own group.

Which topics are replaced (what "a persona uses a topic" means):
- An imported topic carries the tags `faultline` and `persona:<slug>` for each persona it came
  from. It is rewritten when this import brings one of those personas, and removed when none of
  them is left in `data/personas/`; otherwise it is kept.
- A sample topic (its id is in `<examples_dir>/topics.yaml`) is replaced once every persona in
  `data/personas/` came from Faultline: no native persona is left to use it.
- Every other topic (hand-written) is kept, and a new topic repeating a kept prompt is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError

from foundry.config import FoundryConfig
from foundry.data.faultline_conflicts import ConflictsReport, map_conflicts
from foundry.data.faultline_sources import read_conflicts, read_json
from foundry.data.framing import TopicSplit, split_topics
from foundry.data.personas import describe_validation_errors, discover_personas, load_topics
from foundry.data.schemas import DebateTopic, PersonaContract, TopicFile
from foundry.errors import Problem
from foundry.slugs import MAX_SLUG_CHARS, slugify

FAULTLINE_TAG = "faultline"
PERSONA_TAG = "persona:"
DECK_TAG = "deck:"
QUESTION_TAG = "settling-question"  # a conflict's question: held out, never synthesized
_GROUP = "faultline"  # group prefix: faultline-conflict-<kind>, faultline-position-<type>


class TopicsReport(BaseModel):
    """What the import did to the topics file."""

    path: str = Field(description="The project's topics file.")
    deck: str | None = None
    questions: int = Field(0, description="Topics from the conflicts' settling questions.")
    positions: int = Field(0, description="Topics from worldview positions.")
    deck_topics: int = Field(0, description="Topics from a deck's `topic` in personas.json.")
    duplicates: int = Field(0, description="Skipped: same prompt as another topic.")
    sample_replaced: int = Field(0, description="Sample topics removed: no native persona left.")
    removed: int = Field(0, description="Earlier imports' topics no longer written.")
    kept: int = Field(0, description="Topics already in the file, kept as they were.")
    groups: int = Field(0, description="Topic groups in the file after the import.")
    heldout_groups: int = Field(0, description="Of them, held out for evaluation.")
    conflict_groups: int = Field(
        0,
        description="Of them, groups of conflict questions: never trained on, asked as conflicts.",
    )

    @property
    def written(self) -> int:
        return self.questions + self.positions + self.deck_topics

    def summary(self) -> str:
        """One line for the CLI and the log."""
        origin = f"deck {self.deck}" if self.deck else "the whole folder"
        parts = [f"{self.questions} settling question(s)", f"{self.positions} position(s)"]
        if self.deck_topics:
            parts.append(f"{self.deck_topics} deck topic(s)")
        text = f"topics: {self.written} written from {origin} ({', '.join(parts)}) to {self.path}"
        changes = [f"{self.sample_replaced} sample topic(s) replaced"]
        if self.removed:
            changes.append(f"{self.removed} topic(s) of earlier imports removed")
        changes.append(f"{self.kept} kept")
        if self.duplicates:
            changes.append(f"{self.duplicates} duplicate prompt(s) skipped")
        held = f"{self.groups} group(s), {self.heldout_groups} held out for evaluation"
        if self.conflict_groups:
            held += f", {self.conflict_groups} of conflict questions (asked as the conflicts)"
        return f"{text}; {', '.join(changes)}; {held}"


def plan_topics(
    source: Path,
    deck: str | None,
    contracts: list[PersonaContract],
    slugs: dict[str, str],
    faultline_slugs: set[str],
    config: FoundryConfig,
    problems: list[Problem],
) -> tuple[str, TopicsReport | None]:
    """The new text of the topics file and what it holds ("" and None: leave the file as it is).

    Args:
        source: the Faultline folder (its `_conflicts.json` and `personas.json` are read).
        deck: the deck imported (None: every persona of the folder).
        contracts: this import's personas, as staged.
        slugs: persona slug by Faultline id, for this import and earlier ones.
        faultline_slugs: personas in `data/personas/` imported from Faultline before.
        config: the project (topics file, sample folder, split fractions).
        problems: extended with an error when the topics file cannot be merged, and warnings.
    """
    path = config.topics_file
    existing, found = load_topics(path) if path.is_file() else ([], [])
    if found:
        fix = f"fix {path} (`topics:` and a list of {{id, prompt}}) or move it away, then import"
        problems.extend([*found, Problem("error", path, "", "cannot merge imported topics", fix)])
        return "", None
    imported = {c.slug for c in contracts}
    new = _deck_topics(source, deck, slugs, imported, problems)
    new += _question_topics(source, slugs, imported) + _position_topics(contracts)
    if not new:
        what = "no settling questions, positions or deck topic; the file is left as it was"
        fix = "add worldviews/ or _conflicts.json to the Faultline folder, or edit the file"
        problems.append(Problem("warning", path, "", f"the import brings {what}", fix))
        return "", None
    fate = _fates(existing, imported, faultline_slugs, config)
    kept = [t for t in existing if fate[t.id] == "keep"]
    unique = _unique(new, kept)
    written = {t.id for t in unique}
    topics, split = _split(_merge(existing, fate, unique), written, config)
    report = TopicsReport(
        path=str(path),
        deck=deck,
        questions=sum(QUESTION_TAG in t.tags for t in unique),
        positions=sum("position" in t.tags for t in unique),
        deck_topics=sum("deck-topic" in t.tags for t in unique),
        duplicates=len(new) - len(unique),
        sample_replaced=sum(f == "sample" for f in fate.values()),
        removed=sum(fate[t.id] == "import" and t.id not in written for t in existing),
        kept=len(kept),
        groups=len({t.group_key for t in topics}),
        heldout_groups=len({t.group_key for t in split.heldout}),
        conflict_groups=len({t.group_key for t in split.conflict_topics}),
    )
    if not split.heldout:
        what = f"only {report.groups} topic group(s): nothing is held out for evaluation"
        problems.append(Problem("warning", path, "", what, "add topics of other groups"))
    return _dump(topics, path, problems), report


def claim_prompt(claim: str) -> str:
    """A position's claim as a debate prompt in the same neutral voice: the claim, then a question.

    The claim is kept word for word: turning it into a yes/no question would need grammar
    (subject, auxiliary, proper nouns) that a template gets wrong.
    """
    text = " ".join(claim.split())
    if text.endswith("?"):
        return text
    if text[-1] not in ".!":
        text += "."
    return f"{text} Is that right, and why?"


def _deck_prompt(topic: str) -> str:
    text = " ".join(topic.split())
    return text if text.endswith("?") else f"{text.rstrip('.!')}: where do you stand, and why?"


def _fates(
    existing: list[DebateTopic],
    imported: set[str],
    faultline_slugs: set[str],
    config: FoundryConfig,
) -> dict[str, str]:
    """What becomes of each topic in the file, by id (the rule in the module docstring): "keep",
    "import" (an earlier import's topic: rewritten or removed) or "sample" (replaced)."""
    on_disk = set(discover_personas(config.personas_dir))
    remaining = on_disk | imported
    is_native_left = bool(on_disk - faultline_slugs - imported)
    sample_ids = {t.id for t in load_topics(config.examples_dir / "topics.yaml")[0]}
    fate = {}
    for topic in existing:
        if FAULTLINE_TAG in topic.tags:
            owners = {t.removeprefix(PERSONA_TAG) for t in topic.tags if t.startswith(PERSONA_TAG)}
            is_stale = bool(owners & imported) or not owners & remaining
            fate[topic.id] = "import" if is_stale else "keep"
        else:
            is_sample = topic.id in sample_ids and not is_native_left
            fate[topic.id] = "sample" if is_sample else "keep"
    return fate


def _split(
    topics: list[DebateTopic], written: set[str], config: FoundryConfig
) -> tuple[list[DebateTopic], TopicSplit]:
    """`topics` and their split; when their groups are too few to hold one out, each written
    topic becomes its own group (a held-out single question beats no held-out question)."""
    fractions = config.evaluation.heldout_topic_fraction, config.synthesis.dev_topic_fraction
    asked = [t.prompt for t in topics if QUESTION_TAG in t.tags]  # the conflicts' questions
    split = split_topics(topics, *fractions, asked)
    if not split.heldout:
        topics = [t.model_copy(update={"group": ""}) if t.id in written else t for t in topics]
        split = split_topics(topics, *fractions, asked)
    return topics, split


def _deck_topics(
    source: Path,
    deck: str | None,
    slugs: dict[str, str],
    imported: set[str],
    problems: list[Problem],
) -> list[DebateTopic]:
    """A topic from the `topic` of the deck imported (or of every deck with an imported persona)."""
    path = source / "personas.json"
    raw, problem = read_json(path) if path.is_file() else (None, None)
    decks = raw.get("decks") if isinstance(raw, dict) and problem is None else None
    topics = []
    for index, record in enumerate(decks if isinstance(decks, list) else []):
        if not isinstance(record, dict) or deck is not None and str(record.get("id")) != deck:
            continue
        owners = {slugs[i] for i in map(str, record.get("personaIds") or []) if i in slugs}
        value = record.get("topic")
        if value is None or not owners & imported:
            continue
        if not isinstance(value, str) or not value.strip():
            fix = "write the deck's debate question as a string, or remove `topic`"
            problems.append(
                Problem("warning", path, f"decks[{index}].topic", "not a text; skipped", fix)
            )
            continue
        deck_id = str(record.get("id") or index)
        group = _slug(f"{_GROUP}-deck-{deck_id}", f"{_GROUP}-deck")
        tags = _tags("deck-topic", owners, deck_id)
        topics.append(_topic(f"deck-{deck_id}", _deck_prompt(value), tags, group))
    return topics


def _question_topics(source: Path, slugs: dict[str, str], imported: set[str]) -> list[DebateTopic]:
    """A topic from each settling question of a conflict with at least one imported persona."""
    path, raw, found = read_conflicts(source)
    if path is None or found:  # the conflicts step reports the file's problems
        return []
    conflicts, _ = map_conflicts(raw, path, slugs, ConflictsReport(path=str(path)))
    return [
        _topic(
            f"conflict-{c.id}",
            " ".join(c.question.split()),
            _tags(QUESTION_TAG, [c.persona_a, c.persona_b]),
            f"{_GROUP}-conflict-{c.kind}",
        )
        for c in conflicts
        if {c.persona_a, c.persona_b} & imported
    ]


def _position_topics(contracts: list[PersonaContract]) -> list[DebateTopic]:
    """A topic from each position of each imported persona, grouped by the position's type."""
    topics = []
    for contract in contracts:
        for index, position in enumerate(contract.positions, 1):
            topic_id = f"position-{contract.slug}-{position.id or f'p{index}'}"
            group = _slug(f"{_GROUP}-position-{position.type}", f"{_GROUP}-position")
            tags = _tags("position", [contract.slug])
            topics.append(_topic(topic_id, claim_prompt(position.claim), tags, group))
    return topics


def _unique(new: list[DebateTopic], kept: list[DebateTopic]) -> list[DebateTopic]:
    """`new` without the prompts already there (a prompt imported twice keeps its first kind and
    gains the second's personas, so it stays while either is left), with ids no kept topic has."""
    seen = {_prompt_key(t.prompt): -1 for t in kept}  # -1: a kept topic's prompt
    ids = {t.id for t in kept}
    unique: list[DebateTopic] = []
    for topic in new:
        first = seen.get(_prompt_key(topic.prompt))
        if first is not None:
            if first >= 0:
                owners = [t for t in topic.tags if t.startswith((PERSONA_TAG, DECK_TAG))]
                tags = unique[first].tags + [t for t in owners if t not in unique[first].tags]
                unique[first] = unique[first].model_copy(update={"tags": tags})
            continue
        topic_id, n = topic.id, 1
        while topic_id in ids:
            n += 1
            topic_id = f"{topic.id[: MAX_SLUG_CHARS - 4].rstrip('-')}-{n}"
        ids.add(topic_id)
        seen[_prompt_key(topic.prompt)] = len(unique)
        unique.append(topic.model_copy(update={"id": topic_id}))
    return unique


def _merge(
    existing: list[DebateTopic], fate: dict[str, str], new: list[DebateTopic]
) -> list[DebateTopic]:
    """Kept topics in place, a rewritten one where it was, then the other new topics."""
    fresh = {t.id: t for t in new}
    merged = []
    for topic in existing:
        if fate[topic.id] == "keep":
            merged.append(topic)
        elif topic.id in fresh:
            merged.append(fresh.pop(topic.id))
    return merged + list(fresh.values())


def _dump(topics: list[DebateTopic], path: Path, problems: list[Problem]) -> str:
    """The topics file's text, checked against `TopicFile` first."""
    try:
        TopicFile(topics=topics)
    except ValidationError as exc:
        problems.extend(describe_validation_errors(exc, path, TopicFile))
        return ""
    records = [t.model_dump(mode="json", exclude_defaults=True) for t in topics]
    return yaml.safe_dump({"topics": records}, sort_keys=False, allow_unicode=True, width=100)


def _topic(topic_id: str, prompt: str, tags: list[str], group: str) -> DebateTopic:
    return DebateTopic(id=_slug(topic_id, "faultline-topic"), prompt=prompt, tags=tags, group=group)


def _tags(kind: str, personas: Iterable[str], deck: str | None = None) -> list[str]:
    tags = [FAULTLINE_TAG, kind, *(f"{PERSONA_TAG}{slug}" for slug in sorted(set(personas)))]
    return tags + ([f"{DECK_TAG}{deck}"] if deck else [])


def _slug(text: str, fallback: str) -> str:
    try:
        return slugify(text)
    except ValueError:
        return fallback


def _prompt_key(prompt: str) -> str:
    return re.sub(r"\W+", " ", prompt.casefold()).strip()
