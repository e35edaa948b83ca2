"""What a batch of debates measures, per round: do the personas stay different?

- homogeneity: the mean pairwise embedding cosine of a debate's turns in one round, averaged over
  debates (interval: resampling debates), and its slope over rounds (convergence: positive means
  the debaters grow alike);
- conflict fidelity per round, for debates about a conflict: does each side still hold its own
  assumption rather than the opponent's? By likelihood under the bare base model when a scorer is
  given, and by embedding (the evaluation's `conflict_fidelity`, on each round's turns);
- stance changes: a side that held its own assumption (likelihood, else embedding) in round 1 and
  not in the last round, and whether its last turn cites one of its flip conditions;
- what the turns say of each other (`On <name>: AGREE|DISAGREE (<type>)`): how many such lines
  could be read, the share that disagree and that name a type; final positions read and their
  mean confidence;
- distinct-2 of each round's turns, the copy rate of the memorisation guard (a turn sharing
  `copy_run_words` consecutive words with its persona's training texts), and the empty turns
  (counted, and left out of homogeneity).

Entry point: `measure_debates(...)` -> `DebateMeasures`. Intervals are 95 % bootstrap intervals
resampling debates, so a figure from three debates says how little three debates show.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import combinations

import numpy as np
from pydantic import BaseModel

from foundry.data.schemas import Conflict, PersonaContract
from foundry.debate.transcript import TurnRecord
from foundry.debate.vector_monitoring import VectorMonitoring
from foundry.evaluation.conflicts import (
    Side,
    Tag,
    answer_sides,
    conflict_fidelity,
    continuation_nll,
    fidelity_rows,
    topic_id,
)
from foundry.evaluation.intervals import bootstrap_interval
from foundry.evaluation.memorisation import TrainingTextIndex
from foundry.evaluation.metrics import distinct_n
from foundry.synthesis.composer_text import content_words
from foundry.training.scoring import ScoreRow

Embed = Callable[[list[str]], tuple[np.ndarray, str]]
Scorer = Callable[[list[ScoreRow]], list[tuple[float, int]]]  # rows -> (summed NLL, tokens)
FLIP_CITE_SHARE = 0.5  # of a flip condition's content words in the turn: it is cited


class Estimate(BaseModel):
    value: float | None
    interval: list[float] | None = None


class DebateMeasures(BaseModel):
    variant: str
    target: str
    debates: int
    rounds: int
    embeddings: str
    homogeneity: list[Estimate]  # one per round
    homogeneity_slope: Estimate
    fidelity_likelihood: list[Estimate]  # one per round; value None without conflicts/scorer
    fidelity_embedding: list[Estimate]
    sides: int = 0  # conflict sides (debater of a conflict debate)
    stance_changes: int = 0
    changes_citing_flip: int = 0
    stance_lines: int = 0  # `On <name>:` lines read
    stance_lines_expected: int = 0
    disagree_share: float | None = None
    typed_share: float | None = None  # of disagreements, naming one of the six types
    finals_read: int = 0
    finals_expected: int = 0
    mean_confidence: float | None = None
    distinct_2: list[float]
    copy_rate: float | None = None
    mean_tokens: float = 0.0
    empty_turns: int = 0  # left out of homogeneity
    vectors: VectorMonitoring | None = None  # drift on the persona vectors, when they exist


def measure_debates(
    transcripts: Mapping[str, Sequence[TurnRecord]],
    conflicts: Mapping[str, Conflict],
    contracts: Mapping[str, PersonaContract],
    embed: Embed,
    training: Mapping[str, TrainingTextIndex],
    copy_run_words: int,
    scorer: Scorer | None = None,
    seed: int = 0,
) -> DebateMeasures:
    """The measures of one variant's debates (`transcripts`: debate id -> its turns)."""
    turns = [t for records in transcripts.values() for t in records]
    if not turns:
        raise ValueError("no debate turns to measure")
    rounds = max(t.round for t in turns)
    said = [t for t in turns if t.text.strip()]  # an empty turn is counted, not embedded
    matrix, backend = embed([t.text for t in said]) if said else (np.zeros((0, 1)), "none")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = np.divide(matrix, norms, out=np.zeros_like(matrix, dtype=float), where=norms > 0)
    vector = {id(t): unit[i] for i, t in enumerate(said)}
    by_round = [[t for t in turns if t.round == r] for r in range(1, rounds + 1)]
    likely, closer = _fidelity(by_round, conflicts, embed, scorer, seed)
    return DebateMeasures(
        variant=turns[0].variant,
        target=turns[0].target,
        debates=len(transcripts),
        rounds=rounds,
        embeddings=backend,
        homogeneity=[_homogeneity(r, vector, seed) for r in by_round],
        homogeneity_slope=_slope(transcripts, vector, rounds, seed),
        fidelity_likelihood=[e for e, _ in likely],
        fidelity_embedding=[e for e, _ in closer],
        **_changes(likely, closer, by_round, contracts),
        **_stances(turns),
        distinct_2=[round(distinct_n([t.text for t in r], 2), 4) for r in by_round],
        copy_rate=_copy_rate(turns, training, copy_run_words),
        mean_tokens=round(float(np.mean([t.tokens for t in turns])), 1),
        empty_turns=len(turns) - len(said),
    )


def _homogeneity(
    turns: Sequence[TurnRecord], vector: Mapping[int, np.ndarray], seed: int
) -> Estimate:
    """Mean pairwise cosine within each debate of the round, then over debates."""
    values, debates = [], []
    for debate in dict.fromkeys(t.debate_id for t in turns):
        rows = [vector[id(t)] for t in turns if t.debate_id == debate and id(t) in vector]
        if len(rows) >= 2:
            values.append(float(np.mean([a @ b for a, b in combinations(rows, 2)])))
            debates.append(debate)
    if not values:
        return Estimate(value=None)
    return Estimate(value=_round(np.mean(values)), interval=_interval(values, debates, seed))


def _slope(transcripts, vector, rounds: int, seed: int) -> Estimate:
    """Per debate, the least-squares slope of its homogeneity over rounds; their mean."""
    if rounds < 2:
        return Estimate(value=None)
    slopes, debates = [], []
    for debate, records in transcripts.items():
        ys = [
            _homogeneity([t for t in records if t.round == r], vector, seed).value
            for r in range(1, rounds + 1)
        ]
        if all(y is not None for y in ys):
            slopes.append(float(np.polyfit(np.arange(1, rounds + 1), ys, 1)[0]))
            debates.append(debate)
    if not slopes:
        return Estimate(value=None)
    return Estimate(value=_round(np.mean(slopes)), interval=_interval(slopes, debates, seed))


Votes = dict[tuple[str, str], float]  # (conflict id, persona) -> 1 own, 0 other, 0.5 tie
Fidelity = list[tuple[Estimate, Votes]]  # one per round


def _fidelity(
    by_round: Sequence[Sequence[TurnRecord]],
    conflicts: Mapping[str, Conflict],
    embed: Embed,
    scorer: Scorer | None,
    seed: int,
) -> tuple[Fidelity, Fidelity]:
    """Per round: the likelihood and the embedding fidelity, each with its votes per side."""
    likely: Fidelity = []
    closer: Fidelity = []
    for turns in by_round:
        mine = [t for t in turns if t.conflict_id in conflicts]
        if not mine:
            likely.append((Estimate(value=None), {}))
            closer.append((Estimate(value=None), {}))
            continue
        chosen = [conflicts[c] for c in dict.fromkeys(t.conflict_id for t in mine)]
        answers = [
            {
                "persona": t.speaker,
                "topic_id": topic_id(conflicts[t.conflict_id]),
                "prompt": t.question,
                "answer": t.text,
            }
            for t in mine
        ]
        sides = answer_sides(chosen, answers)
        totals: dict[Tag, tuple[float, int]] = {}
        if scorer is not None:
            rows = fidelity_rows(sides)
            scores = scorer([row for _, row in rows])
            totals = dict(zip([tag for tag, _ in rows], scores, strict=True))
        result = conflict_fidelity(chosen, answers, totals, embed, seed=seed)
        if result is not None and len(chosen) < 2:  # one conflict: an interval would say nothing
            result = result.model_copy(
                update={"likelihood_interval": None, "embedding_interval": None}
            )
        if scorer is None:
            likely.append((Estimate(value=None), {}))
        else:
            estimate = Estimate(
                value=result.likelihood if result else None,
                interval=result.likelihood_interval if result else None,
            )
            likely.append((estimate, _likelihood_votes(sides, totals)))
        estimate = Estimate(
            value=result.embedding if result else None,
            interval=result.embedding_interval if result else None,
        )
        closer.append((estimate, _embedding_votes(sides, embed)))
    return likely, closer


def _likelihood_votes(sides: Sequence[Side], totals: Mapping[Tag, Sequence[float]]) -> Votes:
    votes: Votes = {}
    for side in sides:
        tag = ("conflict", side.conflict.id, side.persona)
        own, other = continuation_nll(totals, tag, "own"), continuation_nll(totals, tag, "other")
        if own is not None and other is not None:
            votes[(side.conflict.id, side.persona)] = _vote(-own, -other)
    return votes


def _embedding_votes(sides: Sequence[Side], embed: Embed) -> Votes:
    texts = list(dict.fromkeys(x for s in sides for x in (s.answer, s.own, s.other)))
    matrix, _ = embed(texts)
    row = {text: matrix[i] for i, text in enumerate(texts)}
    return {
        (s.conflict.id, s.persona): _vote(
            float(row[s.answer] @ row[s.own]), float(row[s.answer] @ row[s.other])
        )
        for s in sides
    }


def _vote(own: float, other: float) -> float:
    return 1.0 if own > other else 0.0 if own < other else 0.5


def _changes(
    likely: Fidelity,
    closer: Fidelity,
    by_round: Sequence[Sequence[TurnRecord]],
    contracts: Mapping[str, PersonaContract],
) -> dict[str, int]:
    """Sides that held their own assumption in round 1 and not in the last round (by
    likelihood when it was scored, else by embedding)."""
    votes = likely if likely and likely[0][1] else closer
    first = votes[0][1] if votes else {}
    if len(by_round) < 2:
        return {"sides": len(first), "stance_changes": 0, "changes_citing_flip": 0}
    last = votes[-1][1]
    said = {(t.conflict_id, t.speaker): t.text for t in by_round[-1]}
    changed = [key for key, vote in first.items() if vote == 1.0 and last.get(key) == 0.0]
    citing = sum(
        _cites_flip(said.get(key, ""), contracts[key[1]].flip_conditions) for key in changed
    )
    return {"sides": len(first), "stance_changes": len(changed), "changes_citing_flip": citing}


def _cites_flip(text: str, conditions: Sequence[str]) -> bool:
    said = content_words(text)
    for condition in conditions:
        wanted = content_words(condition)
        if wanted and len(wanted & said) / len(wanted) >= FLIP_CITE_SHARE:
            return True
    return False


def _stances(turns: Sequence[TurnRecord]) -> dict:
    later = [t for t in turns if t.round > 1]
    debaters: dict[str, set[str]] = {}
    for t in turns:
        debaters.setdefault(t.debate_id, set()).add(t.speaker)
    expected = sum(len(debaters[t.debate_id]) - 1 for t in later)
    lines = [s for t in later for s in t.stances]
    disagree = [s for s in lines if not s.agrees]
    last = max((t.round for t in turns), default=1)
    finals_expected = sum(t.round == last for t in turns) if last > 1 else 0
    finals = [t.final for t in turns if t.final is not None]
    typed = sum(bool(s.kind) for s in disagree)
    return {
        "stance_lines": len(lines),
        "stance_lines_expected": expected,
        "disagree_share": _round(len(disagree) / len(lines)) if lines else None,
        "typed_share": _round(typed / len(disagree)) if disagree else None,
        "finals_read": len(finals),
        "finals_expected": finals_expected,
        "mean_confidence": _round(np.mean([f.confidence for f in finals])) if finals else None,
    }


def _copy_rate(turns, training: Mapping[str, TrainingTextIndex], run_words: int) -> float | None:
    checked = [
        training[t.speaker].check(t.text).longest_run >= run_words
        for t in turns
        if t.speaker in training
    ]
    return _round(np.mean(checked)) if checked else None


def _interval(values: Sequence[float], debates: Sequence[str], seed: int) -> list[float] | None:
    """The bootstrap interval over debates; None from one debate (resampling one debate gives
    back its own value, which is no error bar)."""
    if len(set(debates)) < 2:
        return None
    return bootstrap_interval(values, debates, seed=seed)


def _round(value: float) -> float:
    return round(float(value), 4)
