"""Who wrote this? Classifiers trained on the personas' real train splits.

`fit_attribution` sees word and character n-grams, so it measures voice and vocabulary together;
the corpus filters use it to check that a generation reads as its persona (chance is 1 /
personas). The evaluation stage keeps the two apart:

- `fit_style_classifier`: how a persona writes. Character n-grams over `mask_content_words(text)`
  (every word outside `FUNCTION_WORDS` becomes its casing shape, digits become `0`), plus
  function-word and punctuation rates. No content word reaches it.
- `fit_content_classifier`: what a persona writes about. Word 1-2 gram TF-IDF over content words
  only (function words and English stop words removed). No punctuation or function word reaches it.

Stance measures in the evaluation stage look past both.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from foundry.data.textnorm import words


@dataclass
class AttributionClassifier:
    pipeline: Any
    labels: list[str]

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [str(label) for label in self.pipeline.predict(list(texts))]

    def probabilities(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Each text's probability per persona (the pipeline's `predict_proba` by `classes_`).

        Args:
            texts: The texts to attribute.

        Returns:
            One `{persona: probability}` dict per text, summing to 1.
        """
        if not texts:
            return []  # scikit-learn rejects an empty batch
        classes = [str(label) for label in self.pipeline.classes_]
        rows = self.pipeline.predict_proba(list(texts))
        return [dict(zip(classes, map(float, row), strict=True)) for row in rows]


def fit_attribution(
    texts: Sequence[str], personas: Sequence[str], seed: int = 0
) -> AttributionClassifier:
    """Fit word (1-2) and character (2-5) n-gram TF-IDF features with a logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
    )
    model = LogisticRegression(max_iter=2000, C=10.0, random_state=seed)
    pipeline = make_pipeline(features, model).fit(list(texts), list(personas))
    return AttributionClassifier(pipeline=pipeline, labels=sorted(set(personas)))


# English function words: the closed classes (articles, pronouns, prepositions, conjunctions,
# auxiliaries and modals), common particles and adverbs, and their contractions. They carry how a
# text is written, so the style features keep them and the content features drop them.
FUNCTION_WORDS = frozenset(
    """
    a an the this that these those each every either neither some any no all both few many much
    more most less least other another such what which whose own same
    i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his
    himself she her hers herself it its itself they them their theirs themselves one ones someone
    somebody something anyone anybody anything everyone everybody everything nobody nothing none
    who whom whoever whatever whichever
    about above across after against along among amongst around at before behind below beneath
    beside besides between beyond by despite down during except for from in inside into like near
    of off on onto out outside over per since through throughout till to toward towards under
    underneath unlike until up upon via with within without
    and but or nor so yet because although though while whilst whereas if unless whether than as
    once lest
    am is are was were be been being have has had having do does did doing will would shall should
    can could may might must ought
    not yes very too also just only even still already again ever never always often sometimes
    perhaps maybe quite rather really then there here now thus hence therefore however indeed
    instead otherwise anyway almost enough else how when where why
    don't doesn't didn't isn't aren't wasn't weren't won't wouldn't can't couldn't shouldn't
    haven't hasn't hadn't mustn't i'm i've i'd i'll you're you've you'd you'll we're we've we'd
    we'll they're they've they'd they'll he's she's it's that's there's what's let's who's
    """.split()
)
# Counted per word by the style features (the character n-grams see them too).
PUNCTUATION = ".,;:!?-\u2013\u2014\u2026'\u2019\"\u201c\u201d()[]/*&%$#@\n"
# scikit-learn's stop list has a few topical words a debate needs (a "bill", the "system").
_TOPICAL_STOP_WORDS = frozenset({"bill", "computer", "fire", "interest", "mill", "system"})
_CLITIC = re.compile(r"(.+)(['\u2019])(s|d|ll|m|re|t|ve)", re.IGNORECASE)
_TOKEN = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*|\d+|\s+|.", re.DOTALL)


def mask_content_words(text: str) -> str:
    """The text as the style features see it: function words and punctuation kept, the rest masked.

    A content word becomes its casing shape (`x`, `Xx` or `XX`), each digit becomes `0`, runs of
    spaces become one space (line breaks stay), and everything else is kept as written.

    Args:
        text: Any text.

    Returns:
        The masked text, e.g. `"The Senate voted 52-48!"` becomes `"The Xx x 00-00!"`.
    """
    parts = []
    for token in _TOKEN.findall(text):
        if token[0].isdigit():
            parts.append("0" * len(token))
        elif token[0].isspace():
            parts.append("\n" if "\n" in token else " ")
        elif not token[0].isalpha() or _is_function_word(token):
            parts.append(token)
        else:
            parts.append(_casing_shape(token))
    return "".join(parts)


def content_words(text: str) -> list[str]:
    """Lowercase words of `text` that are neither function words nor English stop words."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return [
        word
        for word in words(text)
        if word not in FUNCTION_WORDS
        and (word not in ENGLISH_STOP_WORDS or word in _TOPICAL_STOP_WORDS)
    ]


def _is_function_word(token: str) -> bool:
    return token.casefold().replace("\u2019", "'") in FUNCTION_WORDS


def _casing_shape(word: str) -> str:
    """`x`, `Xx` or `XX`; a clitic (`'s`, `'ll`, ...) stays, so `NATO's` becomes `XX's`."""
    clitic = _CLITIC.fullmatch(word)
    if clitic:
        return _casing_shape(clitic[1]) + clitic[2] + clitic[3]
    if len(word) > 1 and word.isupper():
        return "XX"
    return "Xx" if word[0].isupper() else "x"


def _content_ngrams(text: str) -> list[str]:
    """Content word unigrams and bigrams (bigrams join words that were apart before filtering)."""
    tokens = content_words(text)
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]


def _style_rates(texts: Sequence[str]) -> np.ndarray:
    """Per text: each function word's and punctuation mark's count per word."""
    columns = {word: i for i, word in enumerate(sorted(FUNCTION_WORDS))}
    offset = len(columns)
    rates = np.zeros((len(texts), offset + len(PUNCTUATION)))
    for row, text in enumerate(texts):
        tokens = words(text.replace("\u2019", "'"))
        for token in tokens:
            if token in columns:
                rates[row, columns[token]] += 1
        for i, mark in enumerate(PUNCTUATION):
            rates[row, offset + i] = text.count(mark)
        rates[row] /= max(1, len(tokens))
    return rates


def fit_style_classifier(
    texts: Sequence[str], personas: Sequence[str], seed: int = 0
) -> AttributionClassifier:
    """Fit a classifier that tells personas apart by how they write, not what they write about.

    Features: character 1-5 grams of `mask_content_words(text)` (TF-IDF) and the rates of each
    function word and punctuation mark, each block L2-normalised; a logistic regression on top.

    Args:
        texts: Training texts.
        personas: The persona slug of each text.
        seed: Seed for the logistic regression.

    Returns:
        The fitted classifier; it takes raw texts.

    Raises:
        ValueError: If the lengths differ or fewer than two personas are given.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.preprocessing import FunctionTransformer, Normalizer

    features = make_union(
        TfidfVectorizer(
            analyzer="char",
            ngram_range=(1, 5),
            preprocessor=mask_content_words,
            lowercase=False,
            sublinear_tf=True,
        ),
        make_pipeline(FunctionTransformer(_style_rates), Normalizer()),
    )
    return _fit(features, texts, personas, seed)


def fit_content_classifier(
    texts: Sequence[str], personas: Sequence[str], seed: int = 0
) -> AttributionClassifier:
    """Fit a classifier that tells personas apart by what they write about, not how.

    Features: TF-IDF of content word 1-2 grams (`content_words`: no function words, no English
    stop words, no punctuation, lowercased); a logistic regression on top.

    Args:
        texts: Training texts.
        personas: The persona slug of each text.
        seed: Seed for the logistic regression.

    Returns:
        The fitted classifier; it takes raw texts.

    Raises:
        ValueError: If the lengths differ or fewer than two personas are given.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    return _fit(TfidfVectorizer(analyzer=_content_ngrams, sublinear_tf=True), texts, personas, seed)


def _fit(
    features: Any, texts: Sequence[str], personas: Sequence[str], seed: int
) -> AttributionClassifier:
    """Check the training set, then fit `features` + logistic regression on it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if len(texts) != len(personas):
        raise ValueError(
            f"got {len(texts)} texts but {len(personas)} persona labels; pass one label per text"
        )
    if len(set(personas)) < 2:
        raise ValueError(
            f"attribution needs texts from at least two personas, got {sorted(set(personas))}"
        )
    model = LogisticRegression(max_iter=2000, C=10.0, random_state=seed)
    pipeline = make_pipeline(features, model).fit(list(texts), list(personas))
    return AttributionClassifier(pipeline=pipeline, labels=sorted(set(personas)))


def own_share(classifier: AttributionClassifier, texts: Sequence[str], persona: str) -> float:
    """Share of `texts` the classifier attributes to `persona`."""
    predicted = classifier.predict(texts)
    return sum(p == persona for p in predicted) / max(1, len(predicted))


def largest_share(classifier: AttributionClassifier, texts: Sequence[str]) -> tuple[str, float]:
    """The persona most often predicted for `texts`, and its share (a base model's bias)."""
    counts = Counter(classifier.predict(texts))
    persona, count = counts.most_common(1)[0]
    return persona, count / max(1, len(texts))
