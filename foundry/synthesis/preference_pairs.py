"""Preference pairs from synthetic turns: which strategy each turn gets, and how a pair is made.

A pair's prompt is its chosen turn's prompt and its split is the chosen turn's split; topics belong
to one split only (`foundry.data.framing.split_topics`), so no prompt is in both train and eval.

Strategies: `cross_persona` (rejected: another persona's turn on the same topic and move, else
the same topic), `generic` (a neutral answer, or offline the prompt-only baseline's), and
`constitution_violation` (a rewrite of the turn that breaks one of its persona's principles).
The rows trainers read are made from these pairs in `foundry.training.datasets` (`to_trl`,
`to_together`).
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from foundry.data.schemas import DebateTurn, PreferencePair
from foundry.data.textnorm import exact_key


def allocate_strategies(
    turns: Sequence[DebateTurn], mix: Mapping[str, float], seed: int = 0
) -> dict[str, str]:
    """turn key -> strategy, in the proportions of `mix` (largest remainder), order seeded."""
    total = sum(mix.values())
    quotas = {name: share / total * len(turns) for name, share in mix.items() if share > 0}
    counts = {name: int(quota) for name, quota in quotas.items()}
    by_remainder = sorted(quotas, key=lambda n: (counts[n] - quotas[n], n))
    for name in by_remainder[: len(turns) - sum(counts.values())]:
        counts[name] += 1
    order = sorted(turns, key=lambda t: _digest(f"{seed}:{t.key}"))
    labels = [name for name in sorted(counts) for _ in range(counts[name])]
    return {turn.key: label for turn, label in zip(order, labels, strict=True)}


def index_by_slot(turns: Iterable[DebateTurn]) -> dict[tuple[str, str], list[DebateTurn]]:
    """(topic id, move) -> turns, and (topic id, "") -> every turn on that topic."""
    index: dict[tuple[str, str], list[DebateTurn]] = defaultdict(list)
    for turn in turns:
        index[(turn.topic_id, turn.move)].append(turn)
        index[(turn.topic_id, "")].append(turn)
    return index


def cross_persona_rejection(
    turn: DebateTurn, index: Mapping[tuple[str, str], list[DebateTurn]]
) -> DebateTurn | None:
    """Another persona's turn on the same topic and move (else topic), chosen by hash."""
    for slot in ((turn.topic_id, turn.move), (turn.topic_id, "")):
        others = sorted(
            (t for t in index.get(slot, ()) if t.persona != turn.persona), key=lambda t: t.key
        )
        if others:
            return others[int(_digest(turn.key), 16) % len(others)]
    return None


def make_pair(
    turn: DebateTurn, rejected: str, strategy: str, provenance: Mapping[str, str]
) -> PreferencePair | None:
    """The pair, or None when the rejected text says the same as the chosen one."""
    if not rejected.strip() or exact_key(rejected) == exact_key(turn.text):
        return None
    return PreferencePair(
        persona=turn.persona,
        prompt=turn.prompt,
        chosen=turn.text,
        rejected=rejected,
        strategy=strategy,
        provenance={"chosen_key": turn.key, "topic_id": turn.topic_id, "move": turn.move}
        | dict(provenance),
        split=turn.split,
    )


def cap_pairs(
    pairs: Sequence[PreferencePair], max_pairs: int, seed: int = 0
) -> list[PreferencePair]:
    """At most `max_pairs`, each split kept in proportion (validation keeps one), order kept."""
    if len(pairs) <= max_pairs:
        return list(pairs)
    rng = random.Random(seed)
    indices: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for i, pair in enumerate(pairs):
        indices[pair.split].append(i)
    held = indices["validation"]
    eval_quota = round(max_pairs * len(held) / len(pairs))
    eval_quota = min(len(held), max(1 if held else 0, eval_quota))
    keep = set(rng.sample(held, eval_quota))
    keep |= set(rng.sample(indices["train"], min(len(indices["train"]), max_pairs - eval_quota)))
    return [pair for i, pair in enumerate(pairs) if i in keep]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
