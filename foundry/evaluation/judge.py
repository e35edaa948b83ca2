"""The optional judge: Claude compares two answers to one held-out prompt and says which is more
like the persona, in how it reasons and what it believes.

`judge_variants(setup, answers, engine, cache, budget)` asks, for every persona, prompt and
variant other than the baseline (`prompt`), "A or B?" with the two answers in an order fixed by a
hash (so position bias cancels out over many prompts). Verdicts are cached in one
`GenerationCache` keyed like every synthesis call, so a rerun pays only for new answers.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from foundry.data.framing import persona_system_prompt
from foundry.evaluation.answers import EvalSetup
from foundry.evaluation.schema import Judge
from foundry.synthesis.generation_cache import CachedCall, GenerationCache, run_cached
from foundry.synthesis.jobs import Budget, GenerationJob, Provider
from foundry.synthesis.plan import job_key

BASELINE = "prompt"
JUDGE_TEMPLATE = "judge-v1"
JUDGE_SYSTEM = (
    "You judge a multi-persona debate. You are given a debater's profile, a debate prompt and "
    "two answers. Decide which answer is more like this debater: the way it reasons (its "
    "method, what counts as evidence) and what it believes, not only its tone. Reply with one "
    "letter, A or B, and nothing else."
)
_VERDICT = re.compile(r"^\W*([AB])\b")


def judge_variants(
    setup: EvalSetup,
    answers: Sequence[dict[str, Any]],
    engine: Provider,
    cache: GenerationCache,
    budget: Budget,
) -> dict[str, Judge]:
    """variant -> its win rate against the baseline's answers (variants other than `prompt`)."""
    by_key = {(r["variant"], r["persona"], r["topic_id"]): r for r in answers}
    calls: list[tuple[str, bool, CachedCall]] = []  # (variant, variant is A, call)
    for (variant, persona, topic), row in by_key.items():
        baseline = by_key.get((BASELINE, persona, topic))
        if variant == BASELINE or baseline is None:
            continue
        is_a = hashlib.sha256(f"{variant}:{persona}:{topic}".encode()).digest()[0] % 2 == 0
        first, second = (row, baseline) if is_a else (baseline, row)
        user = (
            f"Debater profile:\n{persona_system_prompt(setup.contracts[persona])}\n\n"
            f"{row['prompt']}\n\nAnswer A:\n{first['answer']}\n\nAnswer B:\n{second['answer']}\n\n"
            "Which answer is more like this debater? Reply A or B."
        )
        settings = setup.config.synthesis.model_copy(update={"max_tokens": 5})
        key = job_key(engine.name, engine.model, JUDGE_TEMPLATE, JUDGE_SYSTEM, user, settings)
        job = GenerationJob(key, JUDGE_SYSTEM, user, 5, 1.0, persona)
        calls.append((variant, is_a, CachedCall("judge", job, {"kind": "judge"})))
    texts = run_cached([c for _, _, c in calls], engine, {"judge": cache}, budget, label="judge")
    tallies: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # wins, valid, invalid
    for variant, is_a, call in calls:
        if call.job.key not in texts:
            continue
        match = _VERDICT.match(texts[call.job.key].strip().upper())
        if match is None:
            tallies[variant][2] += 1
            continue
        tallies[variant][1] += 1
        tallies[variant][0] += (match.group(1) == "A") == is_a
    return {
        variant: Judge(
            win_rate=wins / valid if valid else None,
            judgements=valid,
            invalid=invalid,
            against=BASELINE,
            model=engine.model,
        )
        for variant, (wins, valid, invalid) in tallies.items()
    }
