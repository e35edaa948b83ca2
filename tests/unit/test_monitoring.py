"""Persona monitoring on a random tiny Llama: projections, baselines, transcripts and flags."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from foundry.errors import FoundryError
from foundry.steering.activations import ResponseRow, response_activations
from foundry.steering.hooks import SteerVector
from foundry.steering.monitoring import flags_from_scores, monitor_transcript
from foundry.steering.projections import (
    Baseline,
    ProjectionMatrix,
    baselines,
    project_rows,
    projection_matrix,
)
from foundry.steering.transcripts import Turn, read_transcript, transcript_rows

PROMPT = "What do you say?"
# Each persona speaks its own words, so mean activations differ by persona even in a random model.
WORDS = {
    "alpha": "apple banana cherry mango peach plum grape melon".split(),
    "beta": "zinc quartz volt iron copper cobalt nickel argon".split(),
    "gamma": "river ocean lake stream harbor delta canal brook".split(),
}


def _texts(rng: random.Random, persona: str, count: int) -> list[str]:
    return [" ".join(rng.choice(WORDS[persona]) for _ in range(8)) for _ in range(count)]


def _rows(texts: list[str]) -> list[ResponseRow]:
    return [ResponseRow(PROMPT, t) for t in texts]


@pytest.fixture(scope="module")
def planted():
    """A random tiny Llama, each persona's train/held texts, and vectors planted at layer 2.

    A persona's vector is the mean activation of its train texts minus that of the others'.
    """
    import torch

    from foundry.training.config import TinyModelConfig
    from foundry.training.tiny_model import PretrainDoc, new_tiny_model, train_tokenizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rng = random.Random(0)
    train = {p: _texts(rng, p, 8) for p in WORDS}
    held = {p: _texts(rng, p, 6) for p in WORDS}
    settings = TinyModelConfig(
        vocab_size=300, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64
    )
    docs = [PretrainDoc(t, PROMPT) for texts in train.values() for t in texts]
    tokenizer = train_tokenizer(docs, settings)
    model = new_tiny_model(settings, tokenizer).eval()
    acts = {p: response_activations(model, tokenizer, _rows(t))[:, 1] for p, t in train.items()}
    vectors = {}
    for p in WORDS:
        rest = np.concatenate([acts[q] for q in WORDS if q != p]).mean(axis=0)
        vectors[p] = SteerVector(2, acts[p].mean(axis=0) - rest, name=p)
    matrix = projection_matrix(model, tokenizer, {p: _rows(t) for p, t in held.items()}, vectors)
    yield model, tokenizer, train, held, vectors, matrix
    torch.set_num_threads(threads)


def test_project_rows_is_the_mean_activation_dotted_with_each_unit_vector(planted):
    model, tokenizer, _, held, _, _ = planted
    rng = np.random.default_rng(0)
    vectors = {
        "one": SteerVector(1, rng.normal(size=32).astype(np.float32) * 7.0, alpha=3.0),
        "two": SteerVector(2, rng.normal(size=32).astype(np.float32)),
    }
    rows = _rows(held["alpha"][:2] + held["beta"][:1])
    got = project_rows(model, tokenizer, rows, vectors)
    acts = response_activations(model, tokenizer, rows)
    for j, v in enumerate(vectors.values()):
        expected = acts[:, v.layer - 1] @ (v.vector / np.linalg.norm(v.vector))
        np.testing.assert_allclose(got[:, j], expected, rtol=1e-5, atol=1e-6)
    assert got.shape == (3, 2)
    assert project_rows(model, tokenizer, [], vectors).shape == (0, 2)
    with pytest.raises(FoundryError, match="'zero' is zero"):
        project_rows(model, tokenizer, rows, {"zero": SteerVector(1, np.zeros(32, np.float32))})


def test_planted_vectors_read_highest_on_their_own_held_texts(planted):
    *_, matrix = planted
    assert matrix.rows == matrix.columns == list(WORDS)
    assert matrix.values.shape == (3, 3)
    assert matrix.diagonal_dominance() == 1.0
    as_json = json.loads(json.dumps(matrix.to_dict()))
    assert as_json["values"][1][1] == pytest.approx(float(matrix.values[1, 1]))


def test_baselines_put_own_held_texts_at_one_and_the_others_at_zero(planted):
    model, tokenizer, _, held, vectors, matrix = planted
    found = baselines(matrix)
    assert set(found) == set(WORDS)
    for p, baseline in found.items():
        raw = project_rows(model, tokenizer, _rows(held[p]), vectors)[:, list(WORDS).index(p)]
        assert np.mean([baseline.normalise(x) for x in raw]) == pytest.approx(1.0, abs=1e-4)
        others = [matrix.values[i, list(WORDS).index(p)] for i, q in enumerate(WORDS) if q != p]
        assert np.mean([baseline.normalise(x) for x in others]) == pytest.approx(0.0, abs=1e-6)


def test_baselines_refuse_a_vector_that_does_not_separate_its_owner():
    flat = ProjectionMatrix(["a", "b"], ["a", "b"], np.array([[0.5, 1.0], [0.5, 0.0]]))
    with pytest.raises(FoundryError, match="vector 'a' does not separate 'a'"):
        baselines(flat)
    lonely = ProjectionMatrix(["a"], ["a"], np.array([[1.0]]))
    with pytest.raises(FoundryError, match="at least one other persona"):
        baselines(lonely)


def test_diagonal_dominance_compares_z_scored_columns_not_raw_projections():
    # Raw: a reads higher on b's vector (100 > 1), but b's vector is simply on a larger scale.
    scaled = ProjectionMatrix(["a", "b"], ["a", "b"], np.array([[1.0, 100.0], [0.0, 300.0]]))
    assert scaled.diagonal_dominance() == 1.0
    swapped = ProjectionMatrix(["a", "b"], ["a", "b"], np.array([[0.0, 1.0], [1.0, 0.0]]))
    assert swapped.diagonal_dominance() == 0.0
    # a is higher than b on both vectors: a tie after z-scoring is no win for either row.
    tied = ProjectionMatrix(["a", "b"], ["a", "b"], np.array([[2.0, 5.0], [1.0, 4.0]]))
    assert tied.diagonal_dominance() == 0.0
    half = ProjectionMatrix(
        ["a", "b", "c", "d"],
        ["a", "b", "c", "d"],
        np.array([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 0, 3], [0, 0, 3, 0.0]]),
    )
    assert half.diagonal_dominance() == 0.5


def test_transcript_rows_answer_the_prompt_else_the_previous_turn():
    turns = [Turn(0, "a", "first"), Turn(1, "b", "second"), Turn(2, "a", "third", prompt="Why?")]
    rows = transcript_rows(turns)
    assert [(r.prompt, r.response) for r in rows] == [
        ("Continue the debate.", "first"),
        ("first", "second"),
        ("Why?", "third"),
    ]


def _table(rows: list[tuple[str, dict[str, float]]]) -> tuple[list[str], list[dict[str, float]]]:
    return [s for s, _ in rows], [scores for _, scores in rows]


def test_drift_is_flagged_once_per_run_of_low_own_scores():
    a_low, a_ok, b_ok = {"a": 0.2, "b": 0.0}, {"a": 0.9, "b": 0.0}, {"a": 0.0, "b": 0.9}
    speakers, scores = _table(
        [("a", a_low), ("b", b_ok), ("a", a_low), ("a", a_ok), ("a", a_low)]
        + [("b", b_ok), ("a", a_low), ("a", a_low)]
    )
    flags = flags_from_scores(speakers, scores, drift_threshold=0.5, converge_drop=9, window=2)
    assert [(f.kind, f.speaker, f.turns) for f in flags] == [
        ("drift", "a", [0, 2]),
        ("drift", "a", [4, 6, 7]),
    ]
    assert "0.20" in flags[0].message
    wide = flags_from_scores(speakers, scores, drift_threshold=0.5, converge_drop=9, window=3)
    assert [f.turns for f in wide] == [[4, 6, 7]]


def test_convergence_needs_every_speaker_with_enough_turns_to_lose_separation():
    def turn(speaker: str, a: float, b: float) -> tuple[str, dict[str, float]]:
        return speaker, {"a": a, "b": b, "c": 0.0}

    early = [turn("a", 1, 0), turn("b", 0, 1), turn("a", 1, 0), turn("b", 0, 1)]
    both_merge = early + [turn("a", 0.6, 0.6), turn("b", 0.6, 0.6)] * 2
    flags = flags_from_scores(*_table(both_merge), drift_threshold=0.0, converge_drop=0.3)
    assert [(f.kind, f.speaker, f.other) for f in flags] == [("convergence", "a", "b")]
    assert flags[0].numbers == {"a early": 1.0, "a late": 0.0, "b early": 1.0, "b late": 0.0}
    assert flags[0].turns == [4, 5, 6, 7]

    only_a = early + [turn("a", 0.6, 0.6), turn("b", 0, 1)] * 2
    assert flags_from_scores(*_table(only_a), drift_threshold=0.0) == []
    # b speaks only twice (< 2 * window), so a's drop alone decides.
    short_b = [turn("a", 1, 0), turn("b", 0, 1), turn("a", 1, 0), turn("b", 0.5, 0.5)]
    short_b += [turn("a", 0.5, 0.5)] * 2
    flags = flags_from_scores(*_table(short_b), drift_threshold=0.0)
    assert [(f.kind, f.speaker, f.other) for f in flags] == [("convergence", "a", "b")]
    steady = early * 2
    assert flags_from_scores(*_table(steady), drift_threshold=0.5) == []


def _transcript(pairs: list[tuple[str, str]]) -> list[Turn]:
    return [Turn(i, speaker, text) for i, (speaker, text) in enumerate(pairs)]


def test_monitor_flags_speakers_that_swap_voices_and_not_those_in_character(planted):
    model, tokenizer, _, held, vectors, matrix = planted
    calibration = baselines(matrix)
    a, b = held["alpha"], held["beta"]
    swapped = _transcript(
        [("alpha", a[0]), ("beta", b[0]), ("alpha", a[1]), ("beta", b[1])]
        + [("alpha", b[2]), ("beta", a[2]), ("alpha", b[3]), ("beta", a[3])]
    )
    report = monitor_transcript(model, tokenizer, swapped, vectors, calibration)
    assert len(report.turns) == 8
    for row, t in zip(report.turns, swapped, strict=True):
        assert (row["index"], row["speaker"]) == (t.index, t.speaker)
        assert set(row["scores"]) == set(WORDS)
        assert row["own"] == row["scores"][t.speaker]
    kinds = sorted((f.kind, f.speaker, tuple(f.turns)) for f in report.flags)
    assert kinds == [
        ("convergence", "alpha", (4, 5, 6, 7)),
        ("drift", "alpha", (4, 6)),
        ("drift", "beta", (5, 7)),
    ]
    json.dumps(report.to_dict())
    table = report.render_table()
    assert [c.header for c in table.columns] == ["turn", "speaker", "own", *WORDS]
    own_cells = list(table.columns[2].cells)
    assert own_cells[4].startswith("[red]") and not own_cells[0].startswith("[red]")

    steady = _transcript([(p, held[p][k]) for k in range(3) for p in ("alpha", "beta", "gamma")])
    calm = monitor_transcript(model, tokenizer, steady, vectors, calibration)
    assert calm.flags == []
    assert np.mean([row["own"] for row in calm.turns]) > 0.7


def test_monitor_needs_a_baseline_for_every_vector(planted):
    model, tokenizer, _, held, vectors, _ = planted
    turns = _transcript([("alpha", held["alpha"][0])])
    with pytest.raises(FoundryError, match="no baseline for vector.*gamma"):
        monitor_transcript(model, tokenizer, turns, vectors, {"alpha": Baseline(1.0, 0.0)})


def test_read_transcript_accepts_aliases_and_skips_blank_lines(tmp_path: Path):
    path = tmp_path / "debate.jsonl"
    lines = [
        json.dumps({"speaker": "alpha", "text": "Plums.", "prompt": "Fruit?"}),
        "",
        json.dumps({"persona": "beta", "content": "Zinc."}),
    ]
    path.write_text("\n".join(lines) + "\n")
    assert read_transcript(path, {"alpha", "beta"}) == [
        Turn(0, "alpha", "Plums.", "Fruit?"),
        Turn(1, "beta", "Zinc.", ""),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"speaker": "alpha", "text": "ok"}\n\n{"speaker": "beta", "text": }\n',
            "line 3: not valid",
        ),
        ('{"speaker": "zeta", "text": "hi"}\n', "line 1: unknown speaker 'zeta'.*alpha, beta"),
        ('{"speaker": "alpha", "text": "  "}\n', "line 1: `text` .* non-empty"),
        ('{"speaker": "alpha"}\n', "line 1: `text` \\(or `content`\\)"),
        ('["alpha", "hi"]\n', "line 1: expected a JSON object"),
        ("\n\n", "has no turns"),
    ],
)
def test_read_transcript_errors_name_the_file_line_and_fix(tmp_path: Path, content, message):
    path = tmp_path / "debate.jsonl"
    path.write_text(content)
    with pytest.raises(FoundryError, match=message) as caught:
        read_transcript(path, ["beta", "alpha"])
    assert str(path) in str(caught.value)
