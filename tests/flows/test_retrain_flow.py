"""The whole `retrain` flow under Prefect's test harness, on a Faultline deck shaped like real ones:
a cold run, a rerun that is all cache hits, an edit that retrains one persona (with
`orchestration.executor: ray`: a local Ray started by the run, artifacts through a shared folder),
and a failure that spares the others.

The project starts as a user's does: `foundry init --empty`, then `foundry import faultline` of
`tests/fixtures/faultline_deck` (one persona with 20 essays cut at 2,000 characters, two on the same
chips in similar prose, one of dated tweets with duplicates, conflicts and belief graphs). The runs
build on each other (module-scoped project), as a user's runs do: each test asserts on the task run
states Prefect recorded, on the registry and on the artifacts, never on time.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundry.config import load_config
from foundry.data.versions import init_project, read_data_version
from tests.conftest import TINY_TRAINING, make_project
from tests.flows.conftest import settled_task_runs

pytestmark = pytest.mark.slow

DECK = Path(__file__).parents[1] / "fixtures" / "faultline_deck"
PERSONAS = ["felix-ardmore", "ottilie-brask", "renske-halloran", "wren-castellano"]
ESSAYIST = "ottilie-brask"  # 20 essays, each cut at 2,000 characters, and nothing else
SMALL = (
    TINY_TRAINING
    + """
synthesis: {turns_per_persona: 20}
registry:
  promotion: {min_content_recall: 0.0, min_style_recall: 0.0, max_fluency_nll: 50, compare: []}
orchestration: {workers: 2}
steering: {enabled: true, prompts: 2, sweep_prompts: 2, alphas: [0, 4], max_new_tokens: 8,
  max_texts: 8}
"""
)
STEP_TASKS = ("synthesize", "pairs", "train", "vectors", "register")


def _task_states(flow_run_id) -> dict[str, str]:
    """task run name -> final state name, as Prefect recorded them."""
    return {run.name: run.state.name for run in settled_task_runs(flow_run_id)}


def _artifact(key: str, flow_run_id) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=[key]),
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                )
            )

    found = asyncio.run(read())
    assert found, f"no {key} artifact"
    return found[0].data if isinstance(found[0].data, str) else json.dumps(found[0].data)


def _versions(config, slug: str) -> list[int]:
    from registry.models import list_versions
    from registry.tracking import open_client

    return sorted(int(v.version) for v in list_versions(open_client(config), slug))


def _champion(config, slug: str) -> int | None:
    from registry.models import get_alias_version
    from registry.tracking import open_client

    version = get_alias_version(open_client(config), slug, "champion")
    return int(version.version) if version else None


def _edit_corpus(config, slug: str, text: str) -> None:
    """A new item in the persona's imported corpus, as a re-import of a grown deck would add."""
    path = config.persona_dir(slug) / "corpus" / "faultline.json"
    items = json.loads(path.read_text(encoding="utf-8"))
    item = {"id": f"edit-{len(items)}", "content": text, "date": "2025-01-02", "platform": "blog"}
    path.write_text(json.dumps([*items, item], indent=2), encoding="utf-8")


@pytest.fixture(scope="module")
def project(prefect_harness, tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    from foundry.cli.main import app

    root = make_project(tmp_path_factory.mktemp("retrain") / "repo", git=True, config_text=SMALL)
    config_file = str(root / "foundry.yaml")
    for args in (["init", "--empty"], ["import", "faultline", str(DECK)]):
        result = CliRunner().invoke(app, [*args, "--config", config_file], terminal_width=200)
        assert result.exit_code == 0, result.output
    yield load_config(root / "foundry.yaml")
    monkeypatch.undo()


@pytest.fixture(scope="module")
def cold(project):
    from flows.retrain import retrain

    state = retrain(config_path=str(project.source), deploy=True, return_state=True)
    return state


@pytest.fixture(scope="module")
def rerun(project, cold):
    """The second run goes through `foundry run`, as a user would start it."""
    from foundry.cli.main import app

    result = CliRunner().invoke(app, ["run", "--config", str(project.source)], terminal_width=200)
    return result


@pytest.fixture(scope="module")
def edited(project, rerun):
    """The edit's run goes through Ray, switched on from the environment as a user would
    (`FOUNDRY_ORCHESTRATION__EXECUTOR=ray foundry run`), inputs and adapters through a shared
    folder given as a URL, the nodes' copies of the project in a scratch folder."""
    from flows.retrain import retrain

    _edit_corpus(
        project, ESSAYIST, "Packaging, not lithography, sets how many K3 boards ship next year."
    )
    shared = project.root.parent / "shared"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FOUNDRY_ORCHESTRATION__EXECUTOR", "ray")
        env.setenv("FOUNDRY_PATHS__SHARED_URL", f"file://{shared}")
        env.setenv("FOUNDRY_ORCHESTRATION__RAY__SCRATCH_DIR", str(project.root.parent / "nodes"))
        return retrain(config_path=str(project.source), return_state=True)


@pytest.fixture(scope="module")
def failed(project, edited):
    """Two personas edited; one of them cannot train (its work folder is a plain file)."""
    from flows.retrain import retrain

    _edit_corpus(
        project, "renske-halloran", "Lead times are a ledger of demand, not a rumour of it."
    )
    _edit_corpus(project, "wren-castellano", "Lead times on K3 boards: 22 weeks, down from 30.")
    blocker = project.cache_dir / "work" / "wren-castellano"
    shutil.rmtree(blocker, ignore_errors=True)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder\n")
    state = retrain(config_path=str(project.source), return_state=True)
    blocker.unlink()
    return state


def test_cold_run_trains_evaluates_registers_and_promotes_every_persona(project, cold):
    assert cold.is_completed(), cold.message
    result = cold.result()
    states = _task_states(cold.state_details.flow_run_id)
    for slug in PERSONAS:
        assert result["personas"][slug]["status"] == "retrained"
        for step in STEP_TASKS:
            assert states[f"{step}[{slug}]"] == "Completed", (step, slug, states)
        for stage in ("sft", "dpo"):
            assert (project.adapter_dir(slug, stage) / "adapter_model.safetensors").is_file()
        assert _versions(project, slug) == [1] and _champion(project, slug) == 1
        meta = json.loads((project.vector_dir(slug) / "vector.json").read_text())
        assert meta["data_version"] == result["data_rev"]
        assert result["personas"][slug]["vectors"]["layer"] == meta["layer"]
    assert result["data_rev"] == read_data_version(project).data_rev
    summary = _artifact("retrain-summary", cold.state_details.flow_run_id)
    assert "retrained: " + ", ".join(PERSONAS) in summary
    assert "persona-felix-ardmore: v1 promoted" in summary and "#/models/persona-" in summary
    assert "Persona vectors" in summary
    evaluation = json.loads((Path(result["evaluation"]["folder"]) / "metrics.json").read_text())
    assert {"steer", "dpo+steer"} <= set(evaluation["variants"])
    table = _artifact("retrain-metrics", cold.state_details.flow_run_id)
    assert all(slug in table for slug in PERSONAS)


def test_the_deck_is_judged_on_its_own_conflicts_and_topics_never_trained_on(project, cold):
    """On-domain topics only, the deck's conflicts in the report, and no synthetic turn on a
    question the evaluation asks."""
    import yaml

    deck_conflicts = json.loads((DECK / "worldviews" / "_conflicts.json").read_text())
    outsider = "Petra Sunnvale"  # the one conflict naming a persona outside the deck
    in_deck = {c["id"] for c in deck_conflicts if outsider not in (c["personaA"], c["personaB"])}
    assert len(in_deck) == len(deck_conflicts) - 1
    topics = yaml.safe_load(project.topics_file.read_text())["topics"]
    assert topics and all("faultline" in t["tags"] for t in topics)  # no sample topic left
    result = cold.result()
    evaluation = json.loads((Path(result["evaluation"]["folder"]) / "metrics.json").read_text())
    assert evaluation["conflict_ids"] and set(evaluation["conflict_ids"]) <= in_deck
    assert evaluation["metrics"]["dpo"]["conflicts"]["conflicts"] == len(evaluation["conflict_ids"])
    asked = set(evaluation["heldout_topics"])
    assert len(asked) == len(evaluation["heldout_topics"])  # each prompt asked once
    for slug in PERSONAS:
        turns = project.data_dir / "synthetic" / slug / "turns.jsonl"
        synthesized = {json.loads(line)["topic_id"] for line in turns.read_text().splitlines()}
        assert synthesized and not synthesized & asked, (slug, synthesized & asked)
        assert not any(topic.startswith("conflict-") for topic in synthesized)


def test_foundry_debate_compares_prompt_and_dpo_on_a_conflict_and_monitor_reads_it(
    project, cold, tmp_path
):
    """The trained adapters debate one of the deck's conflicts over two rounds, side by side with
    the prompt-only personas; the transcripts are what `foundry monitor` reads."""
    import yaml

    from foundry.cli.main import app
    from foundry.debate.transcript import read_records

    conflict = "k3-orders-real-or-doubled"  # renske-halloran (A) vs felix-ardmore (B)
    [sides] = [
        (c["persona_a"], c["persona_b"])
        for c in yaml.safe_load(project.conflicts_file.read_text())["conflicts"]
        if c["id"] == conflict
    ]
    out = tmp_path / "debates"
    args = ["debate", "--conflict", conflict, "--compare", "prompt,dpo", "--rounds", "2"]
    config = ["--config", str(project.source)]

    result = CliRunner().invoke(app, [*args, "--out", str(out), *config], terminal_width=200)

    assert result.exit_code == 0, result.output
    for row in ("homogeneity, round 2", "conflict fidelity (likelihood), round 1", "copy rate"):
        assert row in result.output
    assert f"round 2 · {sides[1]} (dpo)" in result.output  # turns stream as they come
    for variant in ("prompt", "dpo"):
        records = read_records(out / f"{conflict}.{variant}.jsonl")
        assert [(r.round, r.speaker) for r in records] == [(n, s) for n in (1, 2) for s in sides]
        assert {(r.variant, r.target, r.conflict_id) for r in records} == {
            (variant, "in-process", conflict)
        }
    measures = json.loads((out / "measures.json").read_text())
    assert [m["variant"] for m in measures] == ["prompt", "dpo"]
    assert all(len(m["homogeneity"]) == 2 and m["sides"] == 2 for m in measures)
    # The cold run extracted persona vectors: the debate is read on them too.
    assert all(len(m["vectors"]["own_score"]) == 2 for m in measures)
    assert "own persona-vector score, round 2" in result.output
    assert (out / "homogeneity.png").read_bytes()[:4] == b"\x89PNG"
    assert "| homogeneity, round 1 |" in (out / "comparison.md").read_text()
    monitor = ["monitor", str(out / f"{conflict}.dpo.jsonl"), *config]
    read = CliRunner().invoke(app, monitor, terminal_width=200)
    assert read.exit_code == 0, read.output
    assert "Persona monitoring" in read.output


def test_the_cold_run_deploys_each_new_champion_to_the_local_target(project, cold):
    """`deploy=True` (`foundry run --deploy`): each champion smoke-tested on `deploy.target`
    (local: a temporary server) and recorded on its model version."""
    from deploy.local import served_adapters
    from registry.tracking import open_client

    states = _task_states(cold.state_details.flow_run_id)
    client = open_client(project)
    adapters, origin = served_adapters(project, "deployed")
    for slug in PERSONAS:
        assert states[f"deploy[{slug}]"] == "Completed", states
        model = client.get_registered_model(f"persona-{slug}")
        assert model.tags["deploy.local.version"] == "1"
        tags = client.get_model_version(f"persona-{slug}", "1").tags
        assert float(tags["deploy.local.smoke_latency_s"]) > 0
        assert adapters[slug].name == tags["deploy.local.digest"][:12]
        assert origin[slug] == "deployed"


def test_the_evaluate_flow_re_evaluates_the_champions_from_the_registry(project, cold):
    from flows.evaluate import evaluate_flow

    result = evaluate_flow(str(project.source), variants=["base", "dpo"])

    assert result["champions"] == dict.fromkeys(PERSONAS, 1)
    folder = Path(result["folder"])
    assert folder == project.cache_dir / "eval-champions" and (folder / "metrics.json").is_file()
    assert "eval.dpo.content_accuracy" in result["metrics"]
    for slug in PERSONAS:  # fetched from the registry, byte for byte what was trained
        fetched = folder.parent / "champions" / slug / "dpo" / "adapter_model.safetensors"
        trained = project.adapter_dir(slug, "dpo") / "adapter_model.safetensors"
        assert fetched.read_bytes() == trained.read_bytes()
        vector = folder.parent / "champions" / slug / "vector" / "vectors.safetensors"
        assert (
            vector.read_bytes() == (project.vector_dir(slug) / "vectors.safetensors").read_bytes()
        )


def test_a_rerun_with_nothing_changed_is_all_cache_hits(project, cold, rerun):
    from prefect.client.orchestration import get_client

    assert rerun.exit_code == 0, rerun.output

    async def last_run():
        async with get_client() as client:
            runs = await client.read_flow_runs(sort="START_TIME_DESC", limit=1)
            return runs[0]

    states = _task_states(asyncio.run(last_run()).id)
    heavy = {name: s for name, s in states.items() if not name.startswith(("plan", "version"))}
    assert heavy and all(s == "Cached" for s in heavy.values()), heavy
    assert all(f"train[{slug}]" in heavy for slug in PERSONAS)
    assert all(_versions(project, slug) == [1] for slug in PERSONAS)
    for slug in PERSONAS:
        assert slug in rerun.output
    assert rerun.output.count("cached") >= len(PERSONAS)
    assert "Where to look next" in rerun.output


def test_editing_one_persona_retrains_only_that_persona_on_ray(project, cold, edited):
    assert edited.is_completed(), edited.message
    states = _task_states(edited.state_details.flow_run_id)

    # The same task runs as the local executor's cold run (which also deployed); Prefect names
    # a task run without a name template with a random suffix.
    def kinds(names):
        return {name if "[" in name else name.rsplit("-", 1)[0] for name in names}

    cold_states = _task_states(cold.state_details.flow_run_id)
    assert kinds(states) == kinds(n for n in cold_states if not n.startswith("deploy"))
    # Trained, vectors extracted and evaluated in a node's copy of the project; the adapter
    # fetched into the project is that copy's, byte for byte. Switching executor kept the
    # other personas' caches (orchestration is not part of the config hash).
    node_copy = next((project.root.parent / "nodes" / "foundry-ray").iterdir())
    node_config = project.model_copy()
    node_config._root = node_copy
    for part in ("sft/adapter_model.safetensors", "dpo/adapter_model.safetensors",
                 "vector/vectors.safetensors"):  # fmt: skip
        fetched = project.adapters_dir / ESSAYIST / part
        assert (node_config.adapters_dir / ESSAYIST / part).read_bytes() == fetched.read_bytes()
    assert (node_config.cache_dir / "eval" / "metrics.json").is_file()
    for step in STEP_TASKS:
        assert states[f"{step}[{ESSAYIST}]"] == "Completed", (step, states)
        for slug in (s for s in PERSONAS if s != ESSAYIST):
            assert states[f"{step}[{slug}]"] == "Cached", (step, slug, states)
    assert next(s for n, s in states.items() if n.startswith("build-base")) == "Cached"
    assert next(s for n, s in states.items() if n.startswith("evaluate")) == "Completed"
    assert _versions(project, ESSAYIST) == [1, 2]
    assert all(_versions(project, slug) == [1] for slug in PERSONAS if slug != ESSAYIST)
    assert edited.result()["personas"][ESSAYIST]["status"] == "retrained"


def test_a_failing_persona_leaves_the_others_registered_and_its_champion_in_place(project, failed):
    assert failed.is_failed()
    assert "wren-castellano" in failed.message and "train" in failed.message
    result = failed.result(raise_on_failure=False)
    assert set(result["failed"]) == {"wren-castellano"}
    assert result["personas"]["renske-halloran"]["status"] == "retrained"
    assert _versions(project, "renske-halloran") == [1, 2]
    assert _versions(project, "wren-castellano") == [1]
    assert _champion(project, "wren-castellano") == 1
    states = _task_states(failed.state_details.flow_run_id)
    assert states["train[wren-castellano]"] == "Failed"
    assert "register[wren-castellano]" not in states
    summary = _artifact("retrain-summary", failed.state_details.flow_run_id)
    assert "**wren-castellano**" in summary and "champion is unchanged" in summary


def test_a_broken_persona_stops_the_run_before_anything_is_written(prefect_harness, tmp_path):
    from flows.retrain import retrain

    root = make_project(tmp_path / "repo", git=True, config_text=SMALL)
    config = load_config(root / "foundry.yaml")
    init_project(config)
    before = read_data_version(config)
    bad = config.persona_dir("tobias-renn") / "corpus" / "posts.jsonl"
    bad.write_text(bad.read_text() + "{not json\n")

    state = retrain(config_path=str(config.source), return_state=True)

    assert state.is_failed()
    with pytest.raises(Exception, match=r"posts\.jsonl, line \d+: not valid JSON"):
        state.result()
    assert read_data_version(config).data_rev == before.data_rev
    assert not (config.cache_dir / "results").exists()
    assert not (config.cache_dir / "base").exists()


def test_without_dvc_the_run_says_to_run_foundry_init(prefect_harness, tmp_path):
    from flows.retrain import retrain

    root = make_project(tmp_path / "repo", config_text=SMALL)
    shutil.copytree(root / "examples" / "sample", root / "data")

    state = retrain(config_path=str(root / "foundry.yaml"), return_state=True)

    assert state.is_failed()
    with pytest.raises(Exception, match="DVC is not initialised.*foundry init"):
        state.result()
    assert not (root / "data.dvc").exists()


def test_without_personas_the_run_says_how_to_start(prefect_harness, tmp_path):
    from flows.retrain import retrain

    root = make_project(tmp_path / "empty", git=True)
    init_root = Path(root)
    (init_root / ".dvc").mkdir()
    (init_root / "data.dvc").write_text("outs: []\n")
    (init_root / "data" / "personas").mkdir(parents=True)

    state = retrain(config_path=str(root / "foundry.yaml"), return_state=True)

    assert state.is_failed()
    with pytest.raises(Exception, match="no personas in .*foundry init"):
        state.result()


def test_watch_data_retrains_only_what_changed_since_its_champion(project, failed):
    from flows.watch import watch_data

    result = watch_data(config_path=str(project.source))

    assert result["changed"] == ["wren-castellano"]  # its edit never reached a champion
    summary = result["retrain"]
    assert summary["personas"]["wren-castellano"]["status"] == "retrained"
    assert all(
        summary["personas"][s]["status"] == "cached" for s in PERSONAS if s != "wren-castellano"
    )
    assert _champion(project, "wren-castellano") == 2
    again = watch_data(config_path=str(project.source))
    assert again["changed"] == [] and again["retrain"] is None


def test_the_promote_flow_promotes_an_earlier_version(project, edited):
    from flows.promote import promote_flow

    result = promote_flow(ESSAYIST, version=1, config_path=str(project.source), force=True)

    assert result["promoted"] and result["version"] == 1
    assert _champion(project, ESSAYIST) == 1  # back from v2
