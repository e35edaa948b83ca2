"""Text normalisation and duplicate detection shared by corpus preparation and later filters.

Near duplicates are found with word 3-gram shingles and an inverted index, so only pairs that share
a shingle are compared (linear in practice instead of all pairs; see benchmarks/dedupe.py).
Copying is measured as the longest run of consecutive words two texts share
(`longest_common_run`, `longest_copied_run`).
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence

_INVISIBLE = dict.fromkeys(
    [
        0x200B,
        0x200C,
        0x200D,
        0x2060,
        0xFEFF,
        *range(0x00, 0x09),
        0x0B,
        0x0C,
        *range(0x0E, 0x20),
        *range(0x7F, 0xA0),
    ]
)
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def normalize_text(text: str) -> str:
    """NFKC, no control or zero-width characters, single spaces, at most one blank line."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = text.translate(_INVISIBLE)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def words(text: str) -> list[str]:
    """Lowercase word tokens (letters and digits, with simple contractions)."""
    return _WORD.findall(text.casefold())


def exact_key(text: str) -> str:
    """Texts with the same key differ only in case, punctuation or spacing."""
    return " ".join(words(text))


def shingles(text: str, size: int = 3) -> frozenset[str]:
    """Word n-grams of a text; a text shorter than `size` words is one shingle."""
    tokens = words(text)
    if len(tokens) < size:
        return frozenset([" ".join(tokens)]) if tokens else frozenset()
    return frozenset(" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def find_duplicates(texts: Sequence[str], threshold: float) -> dict[int, tuple[int, float]]:
    """Map each duplicate's index to (index of the earlier text it repeats, similarity).

    The first occurrence is kept; a later text is a duplicate when its exact key matches an earlier
    kept text or its shingle Jaccard similarity with one is at least `threshold`.
    """
    duplicates: dict[int, tuple[int, float]] = {}
    seen_exact: dict[str, int] = {}
    index: dict[str, list[int]] = defaultdict(list)
    kept_shingles: dict[int, frozenset[str]] = {}
    for i, text in enumerate(texts):
        key = exact_key(text)
        if key in seen_exact:
            duplicates[i] = (seen_exact[key], 1.0)
            continue
        grams = shingles(text)
        best = best_match(grams, index, kept_shingles, threshold)
        if best is not None:
            duplicates[i] = best
            continue
        seen_exact[key] = i
        kept_shingles[i] = grams
        for gram in grams:
            index[gram].append(i)
    return duplicates


def best_match(
    grams: frozenset[str],
    index: dict[str, list[int]],
    kept: dict[int, frozenset[str]],
    threshold: float,
) -> tuple[int, float] | None:
    """The kept text (index, Jaccard) most similar to `grams` at or above `threshold`, if any."""
    # A pair with Jaccard >= t shares at least t * |grams| shingles, so count shared ones first.
    # Compare count / |grams| (not count < t * |grams|): rounding then agrees with `jaccard`.
    shared: dict[int, int] = defaultdict(int)
    for gram in grams:
        for j in index.get(gram, ()):
            shared[j] += 1
    best: tuple[int, float] | None = None
    for j, count in shared.items():
        if count / len(grams) < threshold:
            continue
        score = jaccard(grams, kept[j])
        if score >= threshold and (best is None or score > best[1]):
            best = (j, score)
    return best


def find_duplicates_naive(texts: Sequence[str], threshold: float) -> dict[int, tuple[int, float]]:
    """All-pairs reference implementation of `find_duplicates` (tests and benchmarks only)."""
    duplicates: dict[int, tuple[int, float]] = {}
    kept: list[tuple[int, str, frozenset[str]]] = []
    for i, text in enumerate(texts):
        key, grams = exact_key(text), shingles(text)
        match = None
        for j, other_key, other in kept:
            score = 1.0 if key == other_key else jaccard(grams, other)
            if score >= threshold and (match is None or score > match[1]):
                match = (j, score)
        if match is None:
            kept.append((i, key, grams))
        else:
            duplicates[i] = match
    return duplicates


def longest_copied_run(text: str, sources: Sequence[str]) -> int:
    """The longest run of consecutive words (`textnorm.words`) `text` shares with any source.

    Args:
        text: The text that may copy.
        sources: The texts it may copy from.

    Returns:
        The run length in words (0 when no word is shared).
    """
    tokens = words(text)
    return max((longest_common_run(tokens, words(source)) for source in sources), default=0)


def longest_common_run(a: list[str], b: list[str]) -> int:
    """Longest common substring of two token lists (dynamic programming, O(len(a) * len(b)))."""
    best, previous = 0, [0] * (len(b) + 1)
    for token in a:
        current = [0] * (len(b) + 1)
        for j, other in enumerate(b, start=1):
            if token == other:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best
