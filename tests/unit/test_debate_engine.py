"""Debates run round by round through a scripted speaker, written as transcripts `foundry monitor`
reads, and measured: homogeneity by round, conflict fidelity per round, stance changes."""

from __future__ import annotations

import numpy as np
import pytest

from foundry.data.personas import load_contract
from foundry.data.schemas import Conflict
from foundry.debate.config import DebateConfig
from foundry.debate.engine import run_debates
from foundry.debate.measures import measure_debates
from foundry.debate.speakers import Spoken, TurnJob
from foundry.debate.transcript import DebateSpec, read_records, transcript_path, write_transcript
from foundry.evaluation.memorisation import training_indexes
from foundry.steering.transcripts import read_transcript
from tests.conftest import SAMPLE_DIR

A, B = "jonah-okafor", "marguerite-vale"
CONFLICTS = [
    Conflict(
        id=f"c{i}",
        kind="empirical",
        persona_a=A,
        assumption_a="alpha is what A takes for granted",
        persona_b=B,
        assumption_b="beta is what B takes for granted",
        question=f"Question {i}: alpha or beta?",
    )
    for i in (1, 2)
]
# Texts are embedded by their first word: alpha and beta are orthogonal, so two alpha turns have
# cosine 1 and an alpha and a beta turn cosine 0.
AXES = {"alpha": [1.0, 0.0, 0.0], "beta": [0.0, 1.0, 0.0], "on": [0.0, 0.0, 1.0]}


def fake_embed(texts: list[str]) -> tuple[np.ndarray, str]:
    rows = []
    for text in texts:
        first = text.split()[0].strip(":*").lower() if text.split() else ""
        rows.append(AXES.get(first, [0.0, 0.0, 1.0]))
    return np.array(rows), "fake"


@pytest.fixture(scope="module")
def contracts():
    found = {}
    for slug in (A, B):
        contract, problems = load_contract(SAMPLE_DIR / "personas" / slug)
        assert contract is not None, problems
        found[slug] = contract
    return found


class Scripted:
    """Round 1: each side states its own assumption's word. Round 2: B comes round to alpha and
    cites its first flip condition; A disagrees with B and closes with a final line."""

    target = "scripted"

    def __init__(self, flip: str) -> None:
        self.calls: list[tuple[list[TurnJob], int]] = []
        self.flip = flip

    def speak(self, jobs, seed):
        self.calls.append((list(jobs), seed))
        round_number = len(self.calls)
        return [Spoken(self._text(job.persona, round_number), 7, 0.5) for job in jobs]

    def _text(self, persona: str, round_number: int) -> str:
        if round_number == 1:
            return "alpha from A holds" if persona == A else "beta from B holds"
        if persona == A:
            return (
                "alpha still. On Marguerite Vale: DISAGREE (evidence): beta settles it\n"
                "FINAL POSITION: alpha holds | CONFIDENCE: 80%"
            )
        return f"alpha after all. On Jonah Okafor: AGREE\n{self.flip}"


@pytest.fixture(scope="module")
def debated(contracts):
    speaker = Scripted(contracts[B].flip_conditions[0])
    specs = [DebateSpec.for_conflict(c) for c in CONFLICTS]
    seen = []
    settings = DebateConfig(rounds=2, seed=10)
    transcripts = run_debates(
        specs, contracts, speaker, settings, "dpo", lambda n, records: seen.append((n, records))
    )
    return speaker, transcripts, seen


def test_each_round_is_one_call_with_every_debater_of_every_debate_and_its_own_seed(debated):
    speaker, transcripts, seen = debated

    assert [seed for _, seed in speaker.calls] == [11, 12]
    for jobs, _ in speaker.calls:
        assert [(j.debate_id, j.persona) for j in jobs] == [
            ("c1", A),
            ("c1", B),
            ("c2", A),
            ("c2", B),
        ]
    assert [(n, len(records)) for n, records in seen] == [(1, 4), (2, 4)]
    assert all(len(records) == 4 for records in transcripts.values())


def test_a_later_round_reads_the_others_turns_of_the_round_before(debated):
    speaker, _, _ = debated
    opening, reply = speaker.calls[0][0][0], speaker.calls[1][0][0]  # A in c1
    assert "Open the debate" in opening.prompt and "Marguerite Vale:" not in opening.prompt
    assert "Marguerite Vale: beta from B holds" in reply.prompt
    assert "alpha from A holds" not in reply.prompt  # a debater does not read itself


def test_turns_carry_their_stances_and_the_closing_line(debated):
    _, transcripts, _ = debated
    records = {(r.round, r.speaker): r for r in transcripts["c1"]}

    assert records[(1, A)].stances == [] and records[(1, A)].final is None
    [stance] = records[(2, A)].stances
    assert (stance.target, stance.agrees, stance.kind) == (B, False, "evidence")
    assert records[(2, A)].final is not None and records[(2, A)].final.confidence == 0.8
    assert records[(2, B)].stances[0].agrees and records[(2, B)].final is None
    assert {r.variant for r in transcripts["c1"]} == {"dpo"}
    assert {r.target for r in transcripts["c1"]} == {"scripted"}
    assert records[(2, B)].conflict_id == "c1" and records[(2, B)].seed == 12


def test_the_critique_pass_revises_each_turn_and_keeps_the_draft(contracts):
    class Reviser(Scripted):
        def speak(self, jobs, seed):
            self.calls.append((list(jobs), seed))
            if "Your draft debate turn" in jobs[0].prompt:
                return [Spoken(f"revised {i}", 3, 0.25) for i in range(len(jobs))]
            return [Spoken("alpha draft", 7, 0.5) for _ in jobs]

    speaker = Reviser("")
    specs = [DebateSpec.for_conflict(CONFLICTS[0])]
    settings = DebateConfig(rounds=1, critique=True)

    [record, _] = run_debates(specs, contracts, speaker, settings, "prompt")["c1"]

    assert len(speaker.calls) == 2 and speaker.calls[1][1] == speaker.calls[0][1]  # same seed
    assert "alpha draft" in speaker.calls[1][0][0].prompt
    assert (record.text, record.draft, record.tokens, record.latency_s) == (
        "revised 0",
        "alpha draft",
        10,
        0.75,
    )


def test_the_transcript_round_trips_and_foundry_monitor_reads_it(debated, tmp_path):
    _, transcripts, _ = debated
    path = transcript_path(tmp_path, "c1", "dpo+steer")

    write_transcript(path, transcripts["c1"])

    assert path.name == "c1.dpo-steer.jsonl"
    assert read_records(path) == transcripts["c1"]
    turns = read_transcript(path, known={A, B})
    assert [(t.speaker, t.text) for t in turns] == [(r.speaker, r.text) for r in transcripts["c1"]]
    assert turns[2].prompt == transcripts["c1"][2].prompt


def test_the_measures_follow_the_scripted_debate(debated, contracts):
    _, transcripts, _ = debated
    training = training_indexes({A: ["nothing alike here at all"], B: ["beta from B holds"]})

    m = measure_debates(
        transcripts, {c.id: c for c in CONFLICTS}, contracts, fake_embed, training, 3
    )

    # Round 1: alpha vs beta (cosine 0) in both debates; round 2: alpha vs alpha (cosine 1).
    assert [e.value for e in m.homogeneity] == [0.0, 1.0]
    assert [e.interval for e in m.homogeneity] == [[0.0, 0.0], [1.0, 1.0]]  # two debates
    assert m.homogeneity_slope.value == 1.0
    # Embedding fidelity: both sides hold their own in round 1; in round 2 B reads as alpha.
    assert [e.value for e in m.fidelity_embedding] == [1.0, 0.5]
    assert [e.value for e in m.fidelity_likelihood] == [None, None]  # no scorer given
    assert (m.sides, m.stance_changes, m.changes_citing_flip) == (4, 2, 2)
    assert (m.stance_lines, m.stance_lines_expected) == (4, 4)
    assert m.disagree_share == 0.5 and m.typed_share == 1.0
    assert (m.finals_read, m.finals_expected, m.mean_confidence) == (2, 4, 0.8)
    assert m.copy_rate == 0.25  # B's two openings repeat its training text
    assert (m.debates, m.rounds, m.embeddings, m.empty_turns) == (2, 2, "fake", 0)


def test_a_change_without_the_flip_condition_is_not_counted_as_citing_it(contracts):
    speaker = Scripted("nothing to do with it")
    specs = [DebateSpec.for_conflict(CONFLICTS[0])]
    transcripts = run_debates(specs, contracts, speaker, DebateConfig(rounds=2), "dpo")

    m = measure_debates(transcripts, {"c1": CONFLICTS[0]}, contracts, fake_embed, {}, 12)

    assert (m.stance_changes, m.changes_citing_flip) == (1, 0)
    assert m.copy_rate is None  # no training texts given
    # One debate: no interval (resampling one debate returns its own value).
    assert m.homogeneity[0].interval is None and m.fidelity_embedding[0].interval is None


def test_empty_turns_are_counted_and_left_out_of_homogeneity(contracts):
    class Silent(Scripted):
        def _text(self, persona, round_number):
            return "" if persona == B else "alpha alone"

    specs = [DebateSpec.for_conflict(CONFLICTS[0])]
    transcripts = run_debates(specs, contracts, Silent(""), DebateConfig(rounds=1), "dpo")

    m = measure_debates(transcripts, {}, contracts, fake_embed, {}, 12)

    assert m.empty_turns == 1 and m.homogeneity[0].value is None  # one turn: no pair


def test_without_persona_vectors_the_debate_is_not_read_on_them(config, debated):
    from foundry.debate.vector_monitoring import vector_monitoring

    _, transcripts, _ = debated
    assert not (config.vector_dir(A) / "vector.json").exists()
    assert vector_monitoring(config, transcripts) is None
