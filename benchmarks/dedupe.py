"""Near-duplicate detection: the shingle index (`find_duplicates`) against all pairs, side by side.

Builds a corpus from the shipped sample's texts plus planted near-duplicates (a few words changed),
runs both implementations on the same input in one process, checks they drop the same items, and
prints the speed ratio. Run: `.venv/bin/python benchmarks/dedupe.py [--size 3000]`.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from foundry.config import load_config
from foundry.data.textnorm import find_duplicates, find_duplicates_naive
from foundry.data.validation import validate_personas

REPO_ROOT = Path(__file__).resolve().parents[1]


def build_corpus(size: int, seed: int) -> list[str]:
    """Sample texts, recombined to reach `size`, with about 10% planted near-duplicates."""
    config = load_config(REPO_ROOT / "foundry.yaml")
    config.paths.data_dir = config.paths.examples_dir
    texts = [item.text for p in validate_personas(config).personas for item in p.items]
    rng = random.Random(seed)
    corpus: list[str] = []
    while len(corpus) < size:
        if corpus and rng.random() < 0.1:
            words = rng.choice(corpus).split()
            words[rng.randrange(len(words))] = "indeed"
            corpus.append(" ".join(words))
        else:
            a, b = rng.sample(texts, 2)
            corpus.append(f"{a} {b}")  # new combinations keep the corpus from repeating itself
    return corpus


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=3000, help="texts in the corpus")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    corpus = build_corpus(args.size, args.seed)
    indexed, t_indexed = timed(find_duplicates, corpus, args.threshold)
    naive, t_naive = timed(find_duplicates_naive, corpus, args.threshold)
    assert set(indexed) == set(naive), "the two implementations disagree"
    print(f"texts: {len(corpus)}, duplicates found: {len(indexed)} (both agree)")
    print(f"all pairs:     {t_naive:8.3f} s")
    print(f"shingle index: {t_indexed:8.3f} s")
    print(f"speed-up:      {t_naive / t_indexed:8.1f}x")


if __name__ == "__main__":
    main()
