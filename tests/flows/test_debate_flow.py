"""The `debate` flow under the Prefect test harness: tasks, artifacts, transcripts and the MLflow
run on a tiny base in-process; a served target's transient error retried, any other not."""

from __future__ import annotations

import asyncio
import json
import shutil
from http.client import HTTPMessage
from pathlib import Path

import httpx2
import openai
import pytest

from foundry.config import load_config
from foundry.debate.transcript import DebateError
from foundry.orchestration.retries import is_served_outage
from tests.conftest import SAMPLE_DIR, TINY_TRAINING, make_project
from tests.fakes.http_fake import FakeHttpServer, FaultScript, Reply
from tests.flows.conftest import settled_task_runs

pytestmark = pytest.mark.slow

CONFLICTS = ["accelerator-lifespan-overbuild", "learning-curves-price-level"]
DEBATE = """
debate: {max_new_tokens: 12, embeddings: tfidf}
orchestration: {retries: 1, retry_delay_s: 0}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from foundry.training.base_model import ensure_base

    root = make_project(
        tmp_path_factory.mktemp("debate") / "project", config_text=TINY_TRAINING + DEBATE
    )
    shutil.copytree(SAMPLE_DIR, root / "data")
    config = load_config(root / "foundry.yaml")
    ensure_base(config)
    return config


def artifacts(flow_run_id) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )

    return {a.key: a for a in asyncio.run(read())}


@pytest.fixture(scope="module")
def debated(prefect_harness, config):
    from flows.debate import debate_flow

    state = debate_flow(
        str(config.source), conflicts=CONFLICTS, variants=["prompt"], rounds=2, return_state=True
    )
    return state, state.result()


def test_the_flow_runs_each_step_as_a_completed_task(debated):
    state, _ = debated
    runs = settled_task_runs(state.state_details.flow_run_id)

    names = sorted(run.name for run in runs)
    assert len(names) == 3 and names[0] == "debate[prompt]"
    assert names[1].startswith("open-debates-") and names[2].startswith("publish-debates-")
    assert {run.state.name for run in runs} == {"Completed"}
    assert state.is_completed()


def test_the_comparison_and_the_plot_are_artifacts(debated):
    state, result = debated
    found = artifacts(state.state_details.flow_run_id)

    table = found["debate-comparison"].data
    assert "| measure | prompt |" in table
    assert "| homogeneity, round 2 |" in table and "| copy rate |" in table
    assert "2 x 2 round(s)" in table and result["run_id"] in table
    plot = found["debate-homogeneity"].data
    assert plot.startswith("file://") and plot.endswith("/homogeneity.png")


def test_transcripts_table_plot_and_measures_are_written_under_the_run_folder(config, debated):
    from foundry.steering.transcripts import read_transcript

    state, result = debated
    folder = config.resolve(Path(config.debate.out_dir)) / str(state.state_details.flow_run_id)
    assert result["folder"] == str(folder)
    transcripts = sorted(folder.glob("*.jsonl"))
    assert [p.name for p in transcripts] == [f"{c}.prompt.jsonl" for c in sorted(CONFLICTS)]
    for path in transcripts:
        turns = read_transcript(path, known={p.name for p in config.personas_dir.iterdir()})
        assert len(turns) == 4  # two debaters, two rounds
    measures = json.loads((folder / "measures.json").read_text())
    assert [m["variant"] for m in measures] == ["prompt"] and measures[0]["rounds"] == 2
    assert (folder / "homogeneity.png").read_bytes().startswith(b"\x89PNG")
    assert "| homogeneity, round 1 |" in (folder / "comparison.md").read_text()


def test_the_metrics_and_files_are_one_mlflow_run_beside_the_evaluation(config, debated):
    from mlflow import MlflowClient

    from registry.tracking import tracking_uri

    state, result = debated
    client = MlflowClient(tracking_uri=tracking_uri(config))
    run = client.get_run(result["run_id"])

    assert client.get_experiment(run.info.experiment_id).name == config.registry.experiment
    assert run.data.tags["kind"] == "debate" and run.data.tags["mlflow.runName"] == "debate"
    assert run.data.tags["prefect_flow_run_id"] == str(state.state_details.flow_run_id)
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    for name in (
        "debate.prompt.homogeneity.round1",
        "debate.prompt.homogeneity.round2",
        "debate.prompt.homogeneity_slope",
        "debate.prompt.fidelity_likelihood.round1",
        "debate.prompt.fidelity_likelihood.round2",
        "debate.prompt.copy_rate",
    ):
        assert name in metrics, sorted(metrics)
    assert metrics == pytest.approx(result["metrics"])
    assert metrics["debate.prompt.debates"] == 2
    low, high = map(float, run.data.tags["interval.debate.prompt.homogeneity.round1"].split(","))
    assert low <= metrics["debate.prompt.homogeneity.round1"] <= high
    assert run.data.params["rounds"] == "2" and run.data.params["variants"] == "prompt"
    files = {a.path for a in client.list_artifacts(run.info.run_id, "debate")}
    assert files == {"debate/comparison.md", "debate/homogeneity.png", "debate/measures.json"}


def test_champions_without_any_registered_fails_before_debating(prefect_harness, config):
    from flows.debate import debate_flow

    state = debate_flow(
        str(config.source), conflicts=CONFLICTS[:1], variants=["prompt"], champions=True,
        return_state=True,
    )  # fmt: skip

    assert state.is_failed()
    with pytest.raises(DebateError, match="no persona has a champion to debate"):
        state.result()
    [run] = settled_task_runs(state.state_details.flow_run_id)
    assert run.name.startswith("fetch-champions") and run.state.name == "Completed"


# Retries: a served target's transient errors, and only those


def _request() -> httpx2.Request:
    return httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")


def _status(error_class, status: int):
    response = httpx2.Response(status, request=_request())
    return error_class("scripted", response=response, body=None)


class _Failed:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def result(self) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (openai.APIConnectionError(request=_request()), True),
        (openai.APITimeoutError(request=_request()), True),
        (_status(openai.RateLimitError, 429), True),
        (_status(openai.InternalServerError, 503), True),
        (_status(openai.AuthenticationError, 401), False),
        (_status(openai.NotFoundError, 404), False),
        (_status(openai.BadRequestError, 400), False),
        (DebateError("set TOGETHER_API_KEY to debate through together"), False),
        (ValueError("no debate turns to measure"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_only_a_served_targets_transient_errors_are_retried(error, retry):
    assert is_served_outage(None, None, _Failed(error)) is retry


class FakeChatServer(FakeHttpServer):
    """An OpenAI-compatible `/v1/chat/completions` on 127.0.0.1: the scripted faults first
    (`faults.add("chat", status)`), then the same short turn for everyone. A fault says
    `x-should-retry: false`, so the `openai` client raises at once and the task's own retry is
    what answers it."""

    def __init__(self) -> None:
        super().__init__()
        self.faults = FaultScript()
        self.requests = 0

    def respond(self, method: str, target: str, headers: HTTPMessage, body: bytes) -> Reply:
        if (method, target) != ("POST", "/v1/chat/completions"):
            return Reply.json({"error": {"message": f"no route {target}"}}, 404)
        with self._lock:
            self.requests += 1
        fault = self.faults.take("chat")
        if fault is not None:
            error = {"error": {"message": "scripted failure", "type": "server_error"}}
            return Reply.json(error, fault.status, headers={"x-should-retry": "false"})
        turn = "Costs fall as output grows. FINAL POSITION: it holds | CONFIDENCE: 60%"
        return Reply.json(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 0,
                "model": json.loads(body)["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": turn},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21},
            }
        )


def debate_through(server: FakeChatServer, tmp_path):
    """The flow on one conflict for one round, through `foundry serve` at the fake's URL."""
    from flows.debate import debate_flow

    root = tmp_path / "served"
    text = TINY_TRAINING + DEBATE + f"deploy: {{local: {{url: '{server.base_url}'}}}}\n"
    make_project(root, config_text=text)
    shutil.copytree(SAMPLE_DIR, root / "data")
    state = debate_flow(
        str(root / "foundry.yaml"), conflicts=CONFLICTS[:1], variants=["prompt"], rounds=1,
        target="local", return_state=True,
    )  # fmt: skip
    [run] = [
        r for r in settled_task_runs(state.state_details.flow_run_id) if r.name == "debate[prompt]"
    ]
    return state, run


def test_a_503_from_the_served_target_is_retried_and_the_debate_completes(
    prefect_harness, tmp_path
):
    with FakeChatServer() as server:
        server.faults.add("chat", 503)
        state, run = debate_through(server, tmp_path)

    assert state.is_completed(), state.message
    assert run.state.name == "Completed" and run.run_count == 2
    assert server.requests == 2 + 2  # both openings; one failed, so both again


def test_a_bad_request_to_the_served_target_is_not_retried(prefect_harness, tmp_path):
    with FakeChatServer() as server:
        server.faults.add("chat", 400)
        state, run = debate_through(server, tmp_path)

    assert state.is_failed()
    assert run.state.name == "Failed" and run.run_count == 1
    assert server.requests == 2
    with pytest.raises(openai.BadRequestError):
        state.result()
