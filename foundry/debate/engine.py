"""Run debates round by round: every debater of every debate speaks once per round.

Rounds are simultaneous: in round r each persona reads the others' turns of round r-1, so a whole
round of every debate is one call to the speaker (in-process: one mixed-adapter batch). The seed
of round r is `seed + r`, the same for every variant, so `--compare` runs the same debates.

Entry point: `run_debates(specs, contracts, speaker, settings, ...)` -> transcripts by debate id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from foundry.data.schemas import PersonaContract
from foundry.debate.config import DebateConfig
from foundry.debate.protocol import Heard, critique_prompt, parse_final, parse_stances, turn_prompt
from foundry.debate.speakers import Speaker, Spoken, TurnJob
from foundry.debate.transcript import DebateSpec, TurnRecord
from foundry.logs import get_logger

logger = get_logger(__name__)

OnRound = Callable[[int, list[TurnRecord]], None]


def run_debates(
    specs: Sequence[DebateSpec],
    contracts: Mapping[str, PersonaContract],
    speaker: Speaker,
    settings: DebateConfig,
    variant: str,
    on_round: OnRound | None = None,
) -> dict[str, list[TurnRecord]]:
    """Every debate's turns, round by round; `on_round(r, records)` sees each round as it ends."""
    transcripts: dict[str, list[TurnRecord]] = {spec.id: [] for spec in specs}
    latest: dict[tuple[str, str], str] = {}
    for number in range(1, settings.rounds + 1):
        jobs = [
            TurnJob(spec.id, slug, _prompt(spec, slug, number, contracts, latest, settings))
            for spec in specs
            for slug in spec.personas
        ]
        seed = settings.seed + number
        spoken = speaker.speak(jobs, seed)
        drafts = [""] * len(jobs)
        if settings.critique:
            drafts = [turn.text for turn in spoken]
            revisions = [
                TurnJob(j.debate_id, j.persona, critique_prompt(s.text, contracts[j.persona]))
                for j, s in zip(jobs, spoken, strict=True)
            ]
            spoken = _after_critique(spoken, speaker.speak(revisions, seed))
        by_id = {spec.id: spec for spec in specs}
        records = []
        for job, turn, draft in zip(jobs, spoken, drafts, strict=True):
            spec = by_id[job.debate_id]
            where = (variant, speaker.target)
            record = _record(spec, job, turn, draft, number, contracts, settings, where)
            transcripts[spec.id].append(record)
            latest[(spec.id, job.persona)] = turn.text
            records.append(record)
        logger.info("round %d of %d: %d turn(s)", number, settings.rounds, len(records))
        if on_round is not None:
            on_round(number, records)
    return transcripts


def _prompt(
    spec: DebateSpec,
    slug: str,
    number: int,
    contracts: Mapping[str, PersonaContract],
    latest: Mapping[tuple[str, str], str],
    settings: DebateConfig,
) -> str:
    heard = [
        Heard(other, contracts[other].name, latest[(spec.id, other)])
        for other in spec.personas
        if other != slug and (spec.id, other) in latest
    ]
    return turn_prompt(
        spec.question, contracts[slug], number, settings.rounds, heard, settings.window_chars
    )


def _after_critique(drafts: Sequence[Spoken], revised: Sequence[Spoken]) -> list[Spoken]:
    """The revised turns, costed with both passes (a revision that came back empty keeps its
    draft: a turn is never lost to the critique)."""
    return [
        Spoken(r.text or d.text, d.tokens + r.tokens, round(d.latency_s + r.latency_s, 3))
        for d, r in zip(drafts, revised, strict=True)
    ]


def _record(
    spec: DebateSpec,
    job: TurnJob,
    turn: Spoken,
    draft: str,
    number: int,
    contracts: Mapping[str, PersonaContract],
    settings: DebateConfig,
    where: tuple[str, str],
) -> TurnRecord:
    """The turn as a transcript line; `where` is (variant, target)."""
    names = {o: contracts[o].name for o in spec.personas if o != job.persona}
    is_last = number == settings.rounds and settings.rounds > 1
    return TurnRecord(
        debate_id=spec.id,
        round=number,
        speaker=job.persona,
        variant=where[0],
        target=where[1],
        text=turn.text,
        prompt=job.prompt,
        question=spec.question,
        conflict_id=spec.conflict.id if spec.conflict else "",
        tokens=turn.tokens,
        latency_s=turn.latency_s,
        seed=settings.seed + number,
        draft=draft,
        stances=parse_stances(turn.text, names) if number > 1 else [],
        final=parse_final(turn.text) if is_last else None,
    )
