"""Quality gates for generated debate turns: length, duplicates, copying, refusals, attribution.

`filter_turns` returns every candidate's rejection reasons (an empty list keeps it). Each reason is
a short machine-friendly tag plus detail, e.g. `"copies-corpus: 23 words verbatim"`. Attribution
holds each persona to its own bar (`foundry.synthesis.attribution_bars` measures it). Also
`find_refusal` (the refusal phrase a text opens with or contains, if any); the longest shared run
of words is `foundry.data.textnorm.longest_copied_run`.

Near duplicates use `foundry.data.textnorm`'s word 3-gram shingles and inverted index; verbatim
copying indexes the corpora's (max_copied_words + 1)-word n-grams, so only corpus texts that share
such an n-gram are compared word by word.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from foundry.data.attribution import AttributionClassifier
from foundry.data.textnorm import (
    best_match,
    exact_key,
    find_duplicates,
    longest_common_run,
    shingles,
    words,
)
from foundry.synthesis.config import FilterConfig

# Phrases that only mean a refusal; checked anywhere in the text.
_REFUSALS_ANYWHERE = [
    r"\bas an ai (?:language model|assistant)\b",
    r"\bi can(?:no|')t (?:help|assist) with\b",
    r"\bi cannot (?:help|assist|provide|comply)\b",
    r"\bi(?:'m| am) (?:not able|unable) to (?:help|assist|provide|comply)\b",
    r"\bi won't be able to (?:help|assist|provide)\b",
]
# Phrases a debater may use rhetorically mid-argument ("I'm sorry, but that is wrong"); they only
# count as a refusal in the opening characters.
_REFUSALS_OPENING = [
    r"\bas an ai(?=\s*[,;:.])",  # "As an AI, I ..." but not "as an AI bubble"
    r"\bas an ai (?:model|system)\b",
    r"\bi(?:'m| am) sorry,? but\b",
    r"\bi(?:'m| am) (?:not able|unable) to\b",
    r"\bi won't be able to\b",
    r"\bi can(?:no|')t (?:help|assist|provide|do that)\b",
]
OPENING_CHARS = 200
ATTRIBUTION = "attribution:"  # the tag of the one reason a persona's floor may override
_ANYWHERE = [re.compile(p) for p in _REFUSALS_ANYWHERE]
_OPENING = [re.compile(p) for p in _REFUSALS_OPENING]


@dataclass(frozen=True)
class TurnCandidate:
    """A generated turn waiting for the filters."""

    key: str  # unique id of the generated turn
    persona: str  # slug
    text: str


def find_refusal(text: str) -> str | None:
    """The refusal phrase in `text`, lowercased, or None when it reads as an answer.

    Args:
        text: A generated turn.

    Returns:
        The matched phrase; opening-only phrases are looked for in the first 200 characters.
    """
    folded = text.casefold().replace("\u2019", "'")
    checks = [(p, folded) for p in _ANYWHERE] + [(p, folded[:OPENING_CHARS]) for p in _OPENING]
    for pattern, haystack in checks:
        match = pattern.search(haystack)
        if match:
            return match.group(0)
    return None


class _CorpusIndex:
    """Exact keys, shingles and long n-grams of every persona's corpus, built once per call."""

    def __init__(self, corpora: Mapping[str, Sequence[str]], settings: FilterConfig) -> None:
        self.settings = settings
        self.texts = [(slug, text) for slug, texts in corpora.items() for text in texts]
        self.exact = {exact_key(text): slug for slug, text in self.texts}
        self.shingles: dict[int, frozenset[str]] = {}
        self.shingle_index: dict[str, list[int]] = defaultdict(list)
        self.copy_index: dict[str, set[int]] = defaultdict(set)
        for i, (_, text) in enumerate(self.texts):
            self.shingles[i] = shingles(text)
            for gram in self.shingles[i]:
                self.shingle_index[gram].append(i)
            for gram in shingles(text, settings.max_copied_words + 1):
                self.copy_index[gram].add(i)

    def reasons(self, text: str) -> list[str]:
        """Duplicate-of-corpus and copies-corpus reasons for one text."""
        found = []
        key, threshold = exact_key(text), self.settings.near_duplicate_threshold
        if key in self.exact:
            found.append(f"duplicate-of-corpus: exact copy of a {self.exact[key]} text")
        elif match := best_match(shingles(text), self.shingle_index, self.shingles, threshold):
            slug = self.texts[match[0]][0]
            found.append(f"duplicate-of-corpus: jaccard {match[1]:.2f} with a {slug} text")
        run, slug = self._longest_run(text)
        if run > self.settings.max_copied_words:
            found.append(f"copies-corpus: {run} words verbatim from {slug}")
        return found

    def _longest_run(self, text: str) -> tuple[int, str]:
        hits = set()
        for gram in shingles(text, self.settings.max_copied_words + 1):
            hits |= self.copy_index.get(gram, set())
        tokens = words(text)
        runs = [
            (longest_common_run(tokens, words(self.texts[i][1])), self.texts[i][0]) for i in hits
        ]
        return max(runs, default=(0, ""))


def filter_turns(
    candidates: Sequence[TurnCandidate],
    corpora: Mapping[str, Sequence[str]],
    settings: FilterConfig,
    accepted: Mapping[str, Sequence[str]] | None = None,
    classifier: AttributionClassifier | None = None,
    bars: Mapping[str, float] | None = None,
) -> dict[str, list[str]]:
    """Check generated turns and say why each one is rejected.

    Args:
        candidates: The new turns, in generation order (of two near duplicates the first stays).
        corpora: Persona slug -> that persona's real corpus texts (train split); turns are checked
            against every persona's corpus.
        settings: Length bounds and thresholds.
        accepted: Persona slug -> turns kept by earlier runs, which new turns must not repeat.
        classifier: Attribution classifier fitted on `corpora`; with `settings.min_attribution`
            above 0, a turn's own persona must get at least its bar in probability.
        bars: Persona slug -> its attribution bar (`attribution_bars.measure_bars`); a persona
            not in it is held to `settings.min_attribution`.

    Returns:
        `{candidate.key: [reasons]}` for every candidate; an empty list means keep.

    Raises:
        ValueError: when two candidates share a key.
    """
    keys = [c.key for c in candidates]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"candidate keys must be unique, repeated: {', '.join(repeated)}")
    corpus = _CorpusIndex(corpora, settings)
    reasons = {c.key: _length_reasons(c.text, settings) for c in candidates}
    for candidate in candidates:
        refusal = find_refusal(candidate.text)
        if refusal:
            reasons[candidate.key].append(f"refusal: {refusal!r}")
        reasons[candidate.key] += corpus.reasons(candidate.text)
    if classifier is not None and settings.min_attribution > 0:
        limits = {c.persona: settings.min_attribution for c in candidates} | dict(bars or {})
        _check_attribution(candidates, classifier, limits, reasons)
    # Turn-to-turn duplicates last: a turn rejected for another reason must not block a later one.
    survivors = [c for c in candidates if not reasons[c.key]]
    _check_turn_duplicates(survivors, accepted or {}, settings, reasons)
    return reasons


def _length_reasons(text: str, settings: FilterConfig) -> list[str]:
    count = len(words(text))
    if count < settings.min_words:
        return [f"too-short: {count} words < {settings.min_words}"]
    if count > settings.max_words:
        return [f"too-long: {count} words > {settings.max_words}"]
    return []


def _check_attribution(
    candidates: Sequence[TurnCandidate],
    classifier: AttributionClassifier,
    bars: Mapping[str, float],
    reasons: dict[str, list[str]],
) -> None:
    """Reject turns whose own persona gets less probability than its bar."""
    for candidate, probs in zip(
        candidates, classifier.probabilities([c.text for c in candidates]), strict=True
    ):
        own, bar = probs.get(candidate.persona, 0.0), bars[candidate.persona]
        if own < bar:
            likely = max(probs, key=lambda slug: (probs[slug], slug))
            reasons[candidate.key].append(
                f"{ATTRIBUTION} {own:.2f} < {bar:.2f} for {candidate.persona} "
                f"(most likely {likely})"
            )


def _check_turn_duplicates(
    survivors: Sequence[TurnCandidate],
    accepted: Mapping[str, Sequence[str]],
    settings: FilterConfig,
    reasons: dict[str, list[str]],
) -> None:
    """Reject survivors that repeat an accepted turn or an earlier survivor."""
    earlier = [text for texts in accepted.values() for text in texts]
    texts = earlier + [c.text for c in survivors]
    duplicates = find_duplicates(texts, settings.near_duplicate_threshold)
    for index, (match, score) in sorted(duplicates.items()):
        if index < len(earlier):
            continue  # accepted turns repeating each other were kept by an earlier run
        original = "earlier" if match < len(earlier) else survivors[match - len(earlier)].key
        reasons[survivors[index - len(earlier)].key].append(
            f"duplicate-of-turn: {original} jaccard {score:.2f}"
        )
