"""Text-level helpers for the offline composer: sentences, clauses, fragments, quotes, wording.

Owns how passages are cut into sentence clauses and cleaned into fragments that can stand after a
colon, how the other side is quoted, and the small wording helpers (first person, lowercased first
letter, capitalisation, content words minus stop words). Public entry points: `extract_fragments`,
`pick_quote`, `to_first_person`, `lower_first`, `capitalize`, `content_words` and `SENTENCE_END`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from functools import lru_cache

from foundry.data.textnorm import exact_key, words
from foundry.synthesis.turn_filters import find_refusal

MIN_FRAGMENT_WORDS = 4
MAX_FRAGMENT_WORDS = 12
MAX_QUOTED_WORDS = 12

SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019]?\s+")
_CLAUSE_BREAK = re.compile(r"\s*[;:,()\[\]]\s*|\s+[-\u2013\u2014]+\s+|\u2014")
_JOIN_BREAK = re.compile(r"\s(?:and|but|because|while|so|which|that)\s")
_QUOTE_MARK = re.compile(r"[\"\u201c\u201d]|(?<!\w)['\u2018\u2019]|['\u2018\u2019](?!\w)")
_JOINERS = {"and", "but", "so", "or", "yet", "then", "while", "whereas", "because"}
# Clauses that cannot stand after a colon: questions and subordinate clauses.
_DEPENDENT = {"when", "if", "since", "as", "although", "though", "unless", "whether", "than"}
_DEPENDENT |= {"until", "which", "who", "where", "will", "is", "are", "do", "does", "can", "to"}
_DEPENDENT |= {"should", "would", "could", "did", "of", "for", "with", "from", "by", "in", "on"}
_DEPENDENT |= {"at", "into", "under", "over", "after", "before", "through", "like", "per"}
_DEPENDENT |= {"what", "how", "why", "once"}
# Clauses opening with a likely subject read as statements ("the spending is rational").
_SUBJECTS = {"the", "a", "an", "i", "we", "my", "our", "every", "each", "most", "no", "some", "all"}
# A clause ending in one of these was cut mid-phrase ("my answer to the second is").
_DANGLING = {"is", "are", "was", "were", "be", "the", "a", "an", "of", "to", "and", "or", "that"}
_DANGLING |= {"which", "with", "for", "by", "in", "on", "at", "from", "as", "than", "my", "our"}
_DANGLING |= {"their", "its", "his", "her", "this", "these", "but", "so", "not"}
# Clauses that point back at something the reader no longer sees; used only when little is left.
_DEICTIC = {"that", "this", "it", "these", "those", "they", "he", "she", "there", "here"}
_FIRST_PERSON = [
    (r"\b(?:he|she) has\b", "I have"),
    (r"\b(?:he|she) is\b", "I am"),
    (r"\b(?:he|she|you)\b", "I"),
    (r"\b(?:him|her)self\b", "myself"),
    (r"\bmake (?:him|her)\b", "make me"),
    (r"\b(?:his|her|your)\b", "my"),
    (r"\bhim\b", "me"),
]


def extract_fragments(sources: Sequence[str], prompt: str, rng: random.Random) -> list[str]:
    """Clauses of 4-12 words from the sources, most related to the prompt first (with noise)."""
    topic = content_words(prompt)
    # Words capitalised after a lowercase word or a comma are names ("London"); keep their capital.
    names = set(re.findall(r"(?<=[a-z,;] )[A-Z][\w'-]*", " ".join(sources)))
    lowercase = set(re.findall(r"(?<![\w'])[a-z][\w'-]*", " ".join(sources)))
    scored: dict[str, tuple[float, str]] = {}
    for rank, source in enumerate(sources):
        relevance = 1 - rank / len(sources)  # sources come best first
        for sentence in SENTENCE_END.split(" ".join(source.split())):
            if sentence.rstrip("\"'\u201d\u2019").endswith("?"):
                continue  # rhetorical questions read badly once cut into clauses
            for clause in _clauses(sentence):
                fragment = _clean_fragment(clause, names, lowercase)
                if fragment and exact_key(fragment) not in scored:
                    first = words(fragment)[0]
                    score = len(topic & content_words(fragment)) + relevance + 1.5 * rng.random()
                    score += 1 if first in _SUBJECTS or first.isdigit() else 0
                    score -= 3 if first in _DEICTIC else 0
                    scored[exact_key(fragment)] = (-score, fragment)
    return [fragment for _, fragment in sorted(scored.values())]


def _clauses(sentence: str) -> list[str]:
    """A sentence's clauses; one too long to use is cut again at its conjunctions."""
    clauses = []
    for clause in _CLAUSE_BREAK.split(sentence):
        too_long = len(clause.split()) > MAX_FRAGMENT_WORDS
        clauses += _JOIN_BREAK.split(clause) if too_long else [clause]
    return clauses


def _clean_fragment(clause: str, names: set[str], lowercase: set[str]) -> str | None:
    """A clause trimmed to stand after a colon, or None when it is unusable.

    Its first letter is lowercased when the sources also use that word in lowercase and never
    capitalise it mid-sentence (`names`): "Confidence" -> "confidence", but "China" stays.
    """
    tokens = clause.strip(" .!?*_#>`").split()
    while tokens and tokens[0].lower() in _JOINERS:
        tokens = tokens[1:]
    text = " ".join(tokens)
    if not MIN_FRAGMENT_WORDS <= len(words(text)) <= MAX_FRAGMENT_WORDS:
        return None
    if len(_QUOTE_MARK.findall(text)) % 2 or "http" in text or "@" in text or find_refusal(text):
        return None
    if words(text)[0] in _DEPENDENT or words(text)[-1] in _DANGLING:
        return None
    first = tokens[0].lower()
    is_common = first in lowercase or first in _stop_words()
    return lower_first(text) if is_common and tokens[0] not in names else text


def pick_quote(text: str, prompt: str, rng: random.Random) -> str:
    """The other side's statement (at most 12 words) that bears most on the prompt.

    A sentence's last colon part is its statement ("First, I ...: <statement>"); sentences that
    quote something (often the prompt itself) are passed over.
    """
    topic = content_words(prompt)
    parts = [s.split(": ")[-1] for s in SENTENCE_END.split(" ".join(text.split()))]
    sentences = [s for s in parts if len(words(s)) >= 5 and not _QUOTE_MARK.search(s)]
    sentences = sentences or [" ".join(text.split())]
    best = max(len(topic & content_words(s)) for s in sentences)
    chosen = rng.choice([s for s in sentences if len(topic & content_words(s)) == best])
    tokens = chosen.replace('"', "'").strip(" .!?").split()
    return " ".join(tokens[:MAX_QUOTED_WORDS]) + ("..." if len(tokens) > MAX_QUOTED_WORDS else "")


def to_first_person(text: str) -> str:
    """Rewrite a third- or second-person phrase in the first person ("his" -> "my")."""
    for pattern, replacement in _FIRST_PERSON:
        text = re.sub(pattern, replacement, text, flags=re.IGNORECASE)
    return text


def lower_first(text: str) -> str:
    """Lowercase the first letter unless the first word is "I" or an acronym ("AI", "G20")."""
    first = text.split()[0] if text.split() else ""
    if first == "I" or first.startswith("I'") or sum(c.isupper() for c in first) > 1:
        return text
    if len(first) > 1 and first[1].isdigit():
        return text
    return text[:1].lower() + text[1:]


def capitalize(sentence: str) -> str:
    """Uppercase the first letter, leaving the rest as it is."""
    return sentence[:1].upper() + sentence[1:]


def content_words(text: str) -> set[str]:
    """The words longer than two letters that are not English stop words."""
    return {w for w in words(text) if len(w) > 2 and w not in _stop_words()}


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)
