"""Training data: persona corpora framed as chat for the tiny base, SFT and the work-folder key.

Public entry points: `base_documents(summary)` (every persona's train items, plain and as debate
chat, for pretraining `tiny`), `item_prompts(items, topics)` (each item's debate prompt),
`sft_examples(prepared, topics, synthetic_turns_path)` (train/eval conversations),
`dpo_examples(slug, pairs)` and `read_jsonl_records(path)`. Eval items never reach the base
model or the train split.

An item's prompt is the debate prompt of its nearest topic, computed over all of one persona's
items at once, so the base documents, SFT examples and preference pairs frame an item the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foundry.data.framing import TopicSplit, conversation, item_prompts
from foundry.data.schemas import DebateTopic, PersonaContract, PreferencePair
from foundry.data.stance import PositionRow, position_rows
from foundry.errors import FoundryError
from foundry.training.tiny_model import PretrainDoc

if TYPE_CHECKING:
    from foundry.config import FoundryConfig
    from foundry.data.validation import PreparedPersona, ValidationSummary

SYNTHETIC_DIRNAME = "synthetic"
TURNS_FILENAME = "turns.jsonl"
PAIRS_FILENAME = "pairs.jsonl"
SPLITS = ("train", "validation")
LEGACY_SPLITS = {"eval": "validation"}  # files written before the three-way split


class TrainingDataError(FoundryError):
    """The data a persona would be trained on is missing or malformed."""


def base_documents(summary: ValidationSummary) -> list[PretrainDoc]:
    """Every persona's train items as plain text and as a debate exchange (never validation or
    test items).

    Args:
        summary: validated personas and topics (`foundry.data.validation.validate_personas`).

    Returns:
        Documents in a fixed order: persona by persona (as in `summary`), item by item, the plain
        document before the chat one.
    """
    documents: list[PretrainDoc] = []
    for persona in summary.personas:
        prompts = item_prompts(persona.items, summary.topic_split.framing)
        for item in persona.items:
            if item.split == "train":
                documents.append(PretrainDoc(item.text))
                documents.append(PretrainDoc(item.text, prompt=prompts[item.id]))
    return documents


def taught_position_rows(
    config: FoundryConfig, contract: PersonaContract | None, split: TopicSplit
) -> list[PositionRow]:
    """The position rows training teaches (none when `training.position_rows` is off); the
    evaluation's copy guard reads the same rows."""
    if not config.training.position_rows or contract is None:
        return []
    return position_rows(contract, split)


def sft_examples(
    prepared: PreparedPersona,
    topics: Sequence[DebateTopic],
    synthetic_turns_path: Path | None,
    positions: Sequence[PositionRow] = (),
    *,
    corpus: bool = True,
) -> tuple[list[dict], list[dict]]:
    """The persona's SFT conversations: (train, eval), prompt/completion, no system prompt.

    The adapter is the persona, so no contract is put in a system turn. Synthetic turns (rows
    with `prompt` and `text`) join the split their row names (`split`, default train); position
    rows (`foundry.data.stance`) add their held side, in their split.

    Args:
        prepared: one persona from `foundry.data.validation.prepare_persona`.
        topics: debate topics; each item is framed by its nearest one.
        synthetic_turns_path: `data/synthetic/<slug>/turns.jsonl`; ignored when it does not exist.
        positions: position rows to teach.
        corpus: include the persona's own texts (False: the reasoning expert's stance-bearing
            rows only).

    Returns:
        Train and eval conversations in TRL's prompt/completion format, in item order.

    Raises:
        TrainingDataError: the train split is empty, or a synthetic line is malformed (the
            message names the file and the line).
    """
    prompts = item_prompts(prepared.items, topics)
    train, evaluation = [], []
    for item in prepared.items if corpus else ():
        example = conversation(prompts[item.id], item.text)
        if item.split != "test":  # test documents are evaluation's: never trained or stopped on
            (evaluation if item.split == "validation" else train).append(example)
    if synthetic_turns_path is not None and synthetic_turns_path.is_file():
        for prompt, text, split in read_synthetic_turns(synthetic_turns_path):
            (evaluation if split == "validation" else train).append(conversation(prompt, text))
    for row in positions:
        (evaluation if row.split == "validation" else train).append(
            conversation(row.prompt, row.chosen)
        )
    if not train and not corpus:
        raise TrainingDataError(
            f"persona {prepared.slug} has no stance-bearing examples for its reasoning expert (no "
            f"synthetic turns in data/{SYNTHETIC_DIRNAME}/{prepared.slug}/{TURNS_FILENAME}, no "
            f"position rows): run `foundry synth --persona {prepared.slug}`, or set "
            "`training.experts: single`"
        )
    if not train:
        raise TrainingDataError(
            f"persona {prepared.slug} has no training examples: its train split is empty; add "
            f"corpus files (.jsonl/.json/.csv/.md/.txt) under data/personas/{prepared.slug}/corpus "
            f"or synthetic turns in data/{SYNTHETIC_DIRNAME}/{prepared.slug}/{TURNS_FILENAME}"
        )
    return train, evaluation


def dpo_examples(
    slug: str, pairs: Sequence[PreferencePair], positions: Sequence[PositionRow] = ()
) -> tuple[list[dict], list[dict]]:
    """Preference pairs as TRL's conversational prompt/chosen/rejected rows: (train, eval), the
    position rows' pairs (held side over the opposite side) after the synthetic ones.

    Raises:
        TrainingDataError: no pair is in the train split.
    """
    rows: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for pair in pairs:
        rows[pair.split].append(to_trl(pair))
    for row in positions:
        rows[row.split].append(_trl_row(row.prompt, row.chosen, row.rejected))
    if not rows["train"]:
        raise TrainingDataError(
            f"persona {slug} has no train preference pairs; add train-split pairs to data/"
            f"{SYNTHETIC_DIRNAME}/{slug}/{PAIRS_FILENAME}, or remove it to use cross-persona pairs"
        )
    return rows["train"], rows["validation"]


def read_synthetic_turns(path: Path) -> list[tuple[str, str, str]]:
    """(prompt, text, split) per line of a synthetic turns file; other keys stay out of training."""
    turns = []
    for line_number, row in read_jsonl_records(path):
        values = [row.get(key) for key in ("prompt", "text")]
        split = row.get("split", "train")
        split = LEGACY_SPLITS.get(split, split)
        if not all(isinstance(v, str) and v.strip() for v in values) or split not in SPLITS:
            raise TrainingDataError(
                f"{path}, line {line_number}: a synthetic turn needs non-empty string fields "
                f"`prompt` and `text` and a `split` of train or validation (default train), got "
                f"keys {sorted(row)}; fix or delete the line"
            )
        turns.append((values[0], values[1], split))
    return turns


def read_jsonl_records(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a bad line raises naming file and line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise TrainingDataError(f"{path}: not UTF-8 (byte {exc.start}); save it as UTF-8") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainingDataError(
                f"{path}, line {number}: not valid JSON ({exc.msg}); one JSON object per line"
            ) from None
        if not isinstance(row, dict):
            raise TrainingDataError(
                f"{path}, line {number}: expected a JSON object, got {type(row).__name__}"
            )
        yield number, row


def examples_key(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (config hash, stage, examples, ...)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode() + b"\0")
    return digest.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (read in chunks: adapters of real models are large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def to_trl(pair: PreferencePair) -> dict:
    """TRL's conversational preference row (what DPO trains on)."""
    return _trl_row(pair.prompt, pair.chosen, pair.rejected)


def _trl_row(prompt: str, chosen: str, rejected: str) -> dict:
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def to_together(pair: PreferencePair) -> dict:
    """Together's preference fine-tuning row: `input.messages`, preferred and non-preferred."""
    return {
        "input": {"messages": [{"role": "user", "content": pair.prompt}]},
        "preferred_output": [{"role": "assistant", "content": pair.chosen}],
        "non_preferred_output": [{"role": "assistant", "content": pair.rejected}],
    }
