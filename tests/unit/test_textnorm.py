"""Text normalisation and exact / near duplicate detection."""

from __future__ import annotations

import random

import pytest

from foundry.data.textnorm import (
    exact_key,
    find_duplicates,
    find_duplicates_naive,
    jaccard,
    normalize_text,
    shingles,
    words,
)

# normalize_text


def test_normalize_applies_nfkc() -> None:
    assert normalize_text("ﬁne ｆｕｌｌ² café") == "fine full2 café"


def test_normalize_composes_decomposed_accents() -> None:
    assert normalize_text("cafe\u0301") == "caf\u00e9"


@pytest.mark.parametrize("char", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"])
def test_normalize_removes_zero_width_characters(char: str) -> None:
    assert normalize_text(f"in{char}visible{char}") == "invisible"


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x7f", "\x9b"])
def test_normalize_removes_control_characters(char: str) -> None:
    assert normalize_text(f"bell{char}s") == "bells"


def test_normalize_collapses_spaces_and_tabs_and_strips_lines() -> None:
    assert normalize_text("  a \t b\u00a0\u00a0c  \n   d   ") == "a b c\nd"


def test_normalize_turns_other_unicode_spaces_into_single_spaces() -> None:
    assert normalize_text("a\u2003\u2009b\u3000c") == "a b c"


def test_normalize_converts_windows_and_old_mac_line_endings() -> None:
    assert normalize_text("a\r\nb\rc") == "a\nb\nc"


def test_normalize_keeps_at_most_one_blank_line() -> None:
    assert normalize_text("a\n\n\n\nb\n \n\t\n\nc\nd") == "a\n\nb\n\nc\nd"


def test_normalize_strips_leading_and_trailing_blank_lines() -> None:
    assert normalize_text("\n\n  \n text \n\n\n") == "text"


def test_normalize_of_only_invisible_characters_is_empty() -> None:
    assert normalize_text("\u200b \x00\n\ufeff\t") == ""


def test_normalize_is_idempotent() -> None:
    once = normalize_text("  A\u200b  b\r\n\r\n\r\n c\x07 ")
    assert normalize_text(once) == once


# words, shingles, jaccard


def test_words_are_lowercase_and_keep_simple_contractions() -> None:
    assert words("Don't PANIC: it's 42, O'Brien!") == ["don't", "panic", "it's", "42", "o'brien"]


def test_shingles_are_word_trigrams() -> None:
    assert shingles("A b, c. D") == frozenset({"a b c", "b c d"})


def test_short_text_is_one_shingle_and_empty_text_none() -> None:
    assert shingles("Hello there") == frozenset({"hello there"})
    assert shingles("...") == frozenset()


def test_jaccard_of_empty_sets_is_zero() -> None:
    assert jaccard(frozenset(), frozenset()) == 0.0
    assert jaccard(frozenset({"a"}), frozenset({"a", "b"})) == 0.5


# Exact duplicates


def test_exact_key_ignores_case_punctuation_and_spacing() -> None:
    assert exact_key("Hello,   World!") == exact_key("hello world") == "hello world"


def test_exact_duplicates_by_case_and_punctuation_are_found() -> None:
    texts = ["Gold is money.", "Rates matter.", "GOLD is money!!!", "gold,  is money"]
    assert find_duplicates(texts, 0.8) == {2: (0, 1.0), 3: (0, 1.0)}


def test_exact_duplicates_are_found_even_with_threshold_one() -> None:
    assert find_duplicates(["Short.", "short"], 1.0) == {1: (0, 1.0)}


# Near duplicates


BASE = [f"w{i}" for i in range(11)]  # 11 distinct words: 9 trigrams


def test_near_duplicate_at_exactly_the_threshold_is_found() -> None:
    edited = [*BASE[:-1], "changed"]  # 8 of 9 trigrams kept: Jaccard 8 / 10
    texts = [" ".join(BASE), " ".join(edited)]
    assert find_duplicates(texts, 0.8) == {1: (0, 0.8)}
    assert find_duplicates_naive(texts, 0.8) == {1: (0, 0.8)}


def test_near_duplicate_just_below_the_threshold_is_kept() -> None:
    edited = [*BASE[:-1], "changed"]
    texts = [" ".join(BASE), " ".join(edited)]
    assert find_duplicates(texts, 0.81) == {}
    assert find_duplicates_naive(texts, 0.81) == {}


def test_contained_text_at_exactly_the_threshold_is_found() -> None:
    # 27 words (25 trigrams) contain the 9 words (7 trigrams) seen first: Jaccard 7 / 25 = 0.28.
    long = [f"t{i}" for i in range(27)]
    texts = [" ".join(long[:9]), " ".join(long)]
    threshold = 7 / 25
    assert find_duplicates_naive(texts, threshold) == {1: (0, threshold)}
    assert find_duplicates(texts, threshold) == {1: (0, threshold)}


def test_distinct_texts_are_all_kept() -> None:
    texts = [
        "Rates set the price of time for every asset.",
        "Gold has been money for five thousand years.",
        "Adoption follows an S-curve, not a straight line.",
        "Central banks respond to inflation with a lag.",
    ]
    assert find_duplicates(texts, 0.5) == {}


def test_the_first_occurrence_is_kept_and_later_ones_point_to_it() -> None:
    a = " ".join(BASE)
    texts = ["Something else entirely here.", a, a.upper(), " ".join([*BASE[:-1], "x"])]
    duplicates = find_duplicates(texts, 0.8)
    assert duplicates == {2: (1, 1.0), 3: (1, 0.8)}


def test_a_duplicate_points_to_its_most_similar_kept_text() -> None:
    vocab = [f"a{i}" for i in range(30)]
    # a = 0..19 and b = 10..29 share 8 of their 18 trigrams each (0.29): both kept at 0.3.
    # c = 5..25 scores 13 / 24 against a and 14 / 23 against b.
    texts = [" ".join(vocab[0:20]), " ".join(vocab[10:30]), " ".join(vocab[5:26])]
    assert find_duplicates(texts, 0.3) == {2: (1, 14 / 23)}
    assert find_duplicates_naive(texts, 0.3) == {2: (1, 14 / 23)}


# Fast and naive agree


def planted_corpus(seed: int, size: int = 300) -> tuple[list[str], set[int]]:
    """Random texts, about a third of them lightly edited copies of an earlier text."""
    rng = random.Random(seed)
    vocab = [f"v{i}" for i in range(400)]
    texts: list[str] = []
    planted: set[int] = set()
    for i in range(size):
        if texts and rng.random() < 0.35:
            tokens = rng.choice(texts).split()
            for _ in range(rng.randint(0, 3)):
                op, at = rng.random(), rng.randrange(len(tokens))
                if op < 0.4:
                    tokens[at] = rng.choice(vocab)
                elif op < 0.7:
                    tokens.insert(at, rng.choice(vocab))
                elif len(tokens) > 3:
                    del tokens[at]
            text = " ".join(tokens)
            texts.append(text.upper() if rng.random() < 0.2 else text)
            planted.add(i)
        else:
            texts.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(2, 40))))
    return texts, planted


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.9])
def test_find_duplicates_matches_the_naive_reference(seed: int, threshold: float) -> None:
    texts, planted = planted_corpus(seed)
    fast, naive = find_duplicates(texts, threshold), find_duplicates_naive(texts, threshold)
    assert set(fast) == set(naive)
    assert set(fast) <= planted  # unrelated random texts are never flagged
    assert len(set(fast) & planted) > len(planted) // 4  # the planted copies are really found
    for i, (j, score) in fast.items():
        assert j < i
        assert score >= threshold
        assert j not in fast
