"""`data/conflicts.yaml`: each bad record named with its fix, and conflicts kept out of training."""

from __future__ import annotations

import re
from pathlib import Path

from foundry.data.conflicts import KINDS, load_conflicts
from tests.conftest import SAMPLE_DIR

ROOT = Path(__file__).resolve().parents[2]
PERSONAS = ["ada-quill", "bo-lund", "cy-marsh"]


def _record(conflict_id: str, a: str = "ada-quill", b: str = "bo-lund", kind: str = "causal"):
    return (
        f"  - id: {conflict_id}\n    kind: {kind}\n"
        f"    persona_a: {a}\n    assumption_a: 'Rates fall.'\n"
        f"    persona_b: {b}\n    assumption_b: 'Rates rise.'\n"
        "    question: 'Where do rates go?'\n"
    )


def _load(tmp_path: Path, *records: str, selected=None):
    path = tmp_path / "conflicts.yaml"
    path.write_text("conflicts:\n" + "".join(records))
    conflicts, problems = load_conflicts(path, PERSONAS, selected)
    return path, conflicts, problems


def test_a_missing_file_means_no_conflicts_and_no_problem(tmp_path):
    assert load_conflicts(tmp_path / "conflicts.yaml", PERSONAS) == ([], [])


def test_the_sample_ships_two_dozen_conflicts_among_its_personas():
    slugs = sorted(p.name for p in (SAMPLE_DIR / "personas").iterdir())
    conflicts, problems = load_conflicts(SAMPLE_DIR / "conflicts.yaml", slugs)
    assert problems == []
    assert len(conflicts) >= 24
    assert {c.kind for c in conflicts} == set(KINDS)


def test_an_unknown_persona_names_the_record_the_slug_and_the_known_ones(tmp_path):
    path, conflicts, problems = _load(
        tmp_path, _record("gold-floor"), _record("capex-payback", b="bo-lunt")
    )
    assert [c.id for c in conflicts] == ["gold-floor"]
    [problem] = problems
    text = str(problem)
    assert problem.level == "error" and str(path) in text
    assert "conflicts[1] (id capex-payback), field persona_b" in text
    assert "unknown persona 'bo-lunt'" in text
    assert "did you mean `bo-lund`?" in text and "ada-quill, bo-lund, cy-marsh" in text


def test_a_persona_the_project_lacks_skips_its_conflicts_with_one_warning(tmp_path):
    path, conflicts, problems = _load(
        tmp_path,
        _record("gold-floor"),
        _record("capex-payback", b="zed-former"),
        _record("rates-path", a="zed-former", b="cy-marsh"),
    )
    assert [c.id for c in conflicts] == ["gold-floor"]
    [problem] = problems
    assert problem.level == "warning" and problem.path == path
    assert "conflicts naming zed-former are skipped" in problem.message
    assert "ada-quill, bo-lund, cy-marsh" in problem.fix


def test_a_bad_kind_lists_the_kinds(tmp_path):
    _, conflicts, [problem] = _load(tmp_path, _record("gold-floor", kind="moral"))
    assert conflicts == []
    assert problem.where == "conflicts[0] (id gold-floor), field kind"
    assert "'moral'" in problem.message
    assert problem.fix == "use one of: " + ", ".join(KINDS)


def test_a_repeated_id_is_an_error_on_the_second_record_only(tmp_path):
    _, conflicts, [problem] = _load(
        tmp_path, _record("gold-floor"), _record("gold-floor", b="cy-marsh")
    )
    assert [(c.id, c.persona_b) for c in conflicts] == [("gold-floor", "bo-lund")]
    assert problem.where == "conflicts[1] (id gold-floor)"
    assert "repeats conflicts[0]" in problem.message and "own id" in problem.fix


def test_the_same_persona_on_both_sides_is_an_error(tmp_path):
    _, conflicts, [problem] = _load(tmp_path, _record("self-doubt", b="ada-quill"))
    assert conflicts == []
    assert problem.where == "conflicts[0] (id self-doubt)"
    assert "both 'ada-quill'" in problem.message and "two different personas" in problem.fix


def test_a_missing_field_and_a_bad_id_name_the_record(tmp_path):
    record = _record("gold-floor").replace("    question: 'Where do rates go?'\n", "")
    _, _, problems = _load(tmp_path, record, _record("Bad_Id"))
    wheres = [p.where for p in problems]
    assert wheres == [
        "conflicts[0] (id gold-floor), field question",
        "conflicts[1] (id Bad_Id), field id",
    ]
    assert problems[0].fix == "add `question:`"


def test_bad_yaml_and_a_wrong_shape_are_errors_with_the_fix(tmp_path):
    path = tmp_path / "conflicts.yaml"
    path.write_text("conflicts:\n  - id: [unclosed\n")
    _, [problem] = load_conflicts(path, PERSONAS)
    assert "not valid YAML" in problem.message and re.match(r"line \d+", problem.where)

    path.write_text("- id: gold-floor\n")
    _, [problem] = load_conflicts(path, PERSONAS)
    assert "mapping" in problem.message and "`conflicts:`" in problem.fix

    path.write_text("conflict:\n  - id: gold-floor\n")
    _, [problem] = load_conflicts(path, PERSONAS)
    assert problem.where == "field conflict" and "only `conflicts:`" in problem.fix


def test_conflicts_with_an_unselected_persona_are_left_out_silently(tmp_path):
    _, conflicts, problems = _load(
        tmp_path,
        _record("gold-floor"),
        _record("capex-payback", b="cy-marsh"),
        selected=["ada-quill", "bo-lund"],
    )
    assert [c.id for c in conflicts] == ["gold-floor"] and problems == []


def test_validation_joins_the_conflicts_and_their_problems(config):
    from foundry.data.validation import validate_personas

    summary = validate_personas(config)
    assert len(summary.conflicts) >= 24 and summary.error_count == 0

    text = (config.conflicts_file).read_text()
    config.conflicts_file.write_text(text.replace("kind: causal", "kind: moral", 1))
    summary = validate_personas(config)
    [problem] = [p for p in summary.problems if p.path == config.conflicts_file]
    assert problem.level == "error" and "field kind" in problem.where
    assert summary.error_count == 1

    pair = ["jonah-okafor", "tobias-renn"]
    selected = validate_personas(config, pair).conflicts
    assert selected and all({c.persona_a, c.persona_b} == set(pair) for c in selected)


def test_the_evaluation_asks_each_conflict_question_after_the_test_topics(config):
    from foundry.data.validation import validate_personas
    from foundry.evaluation.answers import EvalSetup

    config.evaluation.max_conflicts = 3
    summary = validate_personas(config)
    setup = EvalSetup.build(config, summary)
    topics = len(summary.topic_split.heldout)
    assert setup.prompts[:topics] == summary.topic_split.heldout
    assert [c.id for c in setup.conflicts] == [c.id for c in summary.conflicts[:3]]
    assert [(t.id, t.prompt) for t in setup.prompts[topics:]] == [
        (f"conflict-{c.id}", c.question) for c in setup.conflicts
    ]


def test_synthesis_and_training_never_read_conflicts():
    sources = [
        *(ROOT / "foundry" / "synthesis").rglob("*.py"),
        *(ROOT / "foundry" / "training").rglob("*.py"),
        *(ROOT / "foundry" / "steering").rglob("*.py"),
        *(ROOT / "tasks" / name for name in ("synth.py", "preferences.py", "train.py")),
    ]
    assert len(sources) > 40
    readers = [p.relative_to(ROOT) for p in sources if "conflict" in p.read_text().lower()]
    assert readers == [], "conflicts are test data: only validation and evaluation read them"


def test_editing_the_conflicts_reruns_the_evaluation(config):
    from foundry.orchestration.run_keys import evaluation_key

    before = evaluation_key(config, {"a": "k1"}, "b1")
    config.conflicts_file.write_text(config.conflicts_file.read_text() + "\n# reviewed\n")
    assert evaluation_key(config, {"a": "k1"}, "b1") != before
