"""The memorisation guard: does an answer score by repeating the persona's training text?

A small model trained on ~100 texts can recite them, and a recited paragraph is attributed to
its persona perfectly: a variant that copies must be flagged, not praised. For every answer,
`copy_check` measures the longest run of consecutive words it shares with its persona's training
texts and the share of its word 8-grams found there; `memorisation(...)` turns one variant's
answers into a `Memorisation` record (copy rate overall and per persona, attribution recomputed on
the answers that do not copy). Only texts that share a word 3-gram with the answer are compared
word by word, so runs shorter than three words read as 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from foundry.data.textnorm import longest_common_run, shingles, words
from foundry.evaluation.intervals import bootstrap_interval
from foundry.evaluation.schema import Memorisation

NGRAM_WORDS = 8  # the n of the n-gram share
CANDIDATE_WORDS = 3  # texts sharing no word 3-gram with an answer cannot share a longer run


@dataclass(frozen=True)
class CopyCheck:
    longest_run: int  # words, the longest run shared with one training text
    ngram_share: float  # share of the answer's word 8-grams found in the training texts


class TrainingTextIndex:
    """One persona's training texts, indexed for copy checks."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.tokens = [words(text) for text in texts]
        self.by_gram: dict[str, set[int]] = defaultdict(set)
        self.ngrams: set[str] = set()
        for i, text in enumerate(texts):
            for gram in shingles(text, CANDIDATE_WORDS):
                self.by_gram[gram].add(i)
            self.ngrams |= shingles(text, NGRAM_WORDS)

    def check(self, answer: str) -> CopyCheck:
        """How much of `answer` is the training text, word for word."""
        candidates: set[int] = set()
        for gram in shingles(answer, CANDIDATE_WORDS):
            candidates |= self.by_gram.get(gram, set())
        tokens = words(answer)
        run = max((longest_common_run(tokens, self.tokens[i]) for i in candidates), default=0)
        grams = shingles(answer, NGRAM_WORDS)
        share = len(grams & self.ngrams) / len(grams) if grams else 0.0
        return CopyCheck(run, share)


def training_indexes(train_texts: Mapping[str, Sequence[str]]) -> dict[str, TrainingTextIndex]:
    """Every persona's training texts indexed once, for all the variants an evaluation checks."""
    return {slug: TrainingTextIndex(texts) for slug, texts in train_texts.items()}


def memorisation(
    answers: Sequence[Mapping[str, Any]],
    indexes: Mapping[str, TrainingTextIndex],
    run_words: int,
    classifiers: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> Memorisation:
    """The copy rate of one variant's answers, and attribution without the copies.

    Args:
        answers: rows with `persona` and `answer`.
        indexes: every persona's training texts (`training_indexes`); an answer is checked
            against its own persona's.
        run_words: an answer that shares a run of this many words or more copies.
        classifiers: `style` and `content` attribution classifiers, when attribution is
            measured (two personas or more): accuracy is recomputed on the answers that do not
            copy.
        seed: the seed of the copy rate's bootstrap interval (over the rows' `topic_id`).

    Returns:
        The variant's `Memorisation` record.
    """
    empty = TrainingTextIndex([])
    checks = [indexes.get(r["persona"], empty).check(r["answer"] or "") for r in answers]
    copied = [c.longest_run >= run_words for c in checks]
    by_persona: dict[str, list[bool]] = defaultdict(list)
    for row, is_copy in zip(answers, copied, strict=True):
        by_persona[row["persona"]].append(is_copy)
    kept = [row for row, is_copy in zip(answers, copied, strict=True) if not is_copy]
    accuracy = {kind: None for kind in ("style", "content")}
    if classifiers and kept:
        truth = [row["persona"] for row in kept]
        texts = [row["answer"] or " " for row in kept]
        for kind, classifier in classifiers.items():
            predicted = classifier.predict(texts)
            accuracy[kind] = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(kept)
    return Memorisation(
        run_words=run_words,
        copy_rate=sum(copied) / len(copied) if copied else 0.0,
        copied=sum(copied),
        copy_rate_interval=bootstrap_interval(
            [float(c) for c in copied],
            [row.get("topic_id", i) for i, row in enumerate(answers)],
            seed=seed,
        ),
        copy_rate_by_persona={s: sum(v) / len(v) for s, v in by_persona.items()},
        max_run=max((c.longest_run for c in checks), default=0),
        mean_ngram_share=sum(c.ngram_share for c in checks) / len(checks) if checks else 0.0,
        style_accuracy_without_copies=accuracy["style"],
        content_accuracy_without_copies=accuracy["content"],
    )
