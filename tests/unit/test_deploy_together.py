"""The `together` target end to end: `deploy_version` through the real `together` SDK against
`FakeTogetherServer`, with LoRA versions registered in the project's sqlite registry."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy import DeployError, get_target
from deploy.bundle import ADAPTER_FILES, bundle_from_registry
from deploy.release import Remote, deploy_version, deployment_status, undeploy
from deploy.together import TogetherTarget, make_target, upload_name
from registry.models import model_name
from registry.tracking import open_client, tracking_uri
from tests.deploy_support import NOT_FOR_UPLOAD, register_lora
from tests.fakes.together_server import BASE_MODEL, PROJECT_ID, FakeTogetherServer, reply_text

SLUG = "priya-castellanos"
ENV = ("API_KEY", "BASE_URL", "PROJECT_ID")
UPLOAD_CREATE = f"/v2/projects/{PROJECT_ID}/models/upload/create"


@pytest.fixture
def fake() -> Iterator[FakeTogetherServer]:
    with FakeTogetherServer() as server:
        yield server


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, fake: FakeTogetherServer) -> pytest.MonkeyPatch:
    for name in ENV:
        monkeypatch.delenv(f"FOUNDRY_TOGETHER_{name}", raising=False)
    monkeypatch.setenv("TOGETHER_API_KEY", fake.api_key)
    monkeypatch.setenv("TOGETHER_BASE_URL", fake.base_url)
    monkeypatch.setenv("TOGETHER_PROJECT_ID", PROJECT_ID)
    return monkeypatch


@pytest.fixture(scope="module")
def empty_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An sqlite MLflow store with its tables, made once: creating them takes MLflow ~2 s."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("registry") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tconfig(config, env, empty_registry):
    shutil.copy(empty_registry, tracking_uri(config).removeprefix("sqlite:///"))
    config.deploy.together.base_model = BASE_MODEL
    config.deploy.together.poll_s = 0.01
    config.deploy.together.timeout_s = 5.0
    return config


def open_target(config) -> TogetherTarget:
    target = get_target("together", config)
    assert isinstance(target, TogetherTarget)
    target.retry_delay_s = 0.01  # the retry schedule, shortened
    return target


@pytest.fixture
def target(tconfig) -> Iterator[TogetherTarget]:
    target = open_target(tconfig)
    yield target
    target.close()


def version_tags(config, version: int) -> dict[str, str]:
    return open_client(config).get_model_version(model_name(SLUG), str(version)).tags


def deployed_version(config) -> str | None:
    tags = open_client(config).get_registered_model(model_name(SLUG)).tags
    return tags.get("deploy.together.version")


def test_deploy_uploads_only_adapter_files_and_records_the_version(tconfig, target, fake):
    version = register_lora(tconfig, SLUG, base_model=BASE_MODEL)
    result = deploy_version(tconfig, target, SLUG)

    bundle = bundle_from_registry(tconfig, SLUG, version)
    assert fake.model_ids(upload_name(bundle)) == [result.remote_id]
    assert result.served_name == fake.served_name(result.remote_id)
    prompt = tconfig.deploy.smoke_prompt
    expected = reply_text(result.served_name, prompt, tconfig.deploy.smoke_max_tokens)
    assert result.answer == expected
    tags = version_tags(tconfig, version)
    assert tags["deploy.together.served_name"] == result.served_name
    assert tags["deploy.together.remote_id"] == result.remote_id
    assert tags["deploy.together.digest"] == bundle.digest
    assert deployed_version(tconfig) == str(version)
    # Exactly the adapter files' bytes left, and the part PUTs never carried the key.
    received = fake.received[result.remote_id]
    assert set(received) == set(ADAPTER_FILES)
    assert not set(received) & set(NOT_FOR_UPLOAD)
    for name, path in bundle.files().items():
        assert received[name] == path.read_bytes()
    assert fake.part_puts == 2 and fake.puts_with_auth == 0


def test_redeploying_the_same_version_uploads_nothing(tconfig, target, fake):
    register_lora(tconfig, SLUG, base_model=BASE_MODEL)
    first = deploy_version(tconfig, target, SLUG)
    puts, creates = fake.part_puts, fake.model_creates
    second = deploy_version(tconfig, target, SLUG)
    assert not first.reused and second.reused
    assert second.remote_id == first.remote_id
    assert (fake.part_puts, fake.model_creates) == (puts, creates) == (2, 1)


def test_a_model_that_exists_already_is_reused_after_409(tconfig, target, fake):
    version = register_lora(tconfig, SLUG, base_model=BASE_MODEL)
    name = upload_name(bundle_from_registry(tconfig, SLUG, version))
    existing = fake.add_model(name)  # registered by an upload that never finished
    result = deploy_version(tconfig, target, SLUG)
    assert fake.model_creates == 1  # tried, answered 409
    assert result.remote_id == existing
    assert fake.model_ids(name) == [existing]
    assert set(fake.received[existing]) == set(ADAPTER_FILES)


def test_transient_503s_are_retried(tconfig, target, fake):
    register_lora(tconfig, SLUG, base_model=BASE_MODEL)
    fake.fail_next(503, UPLOAD_CREATE)
    fake.fail_next(503, "/_signed/")
    fake.fail_next(503, "/v1/fine-tunes/models/limits", count=2)
    result = deploy_version(tconfig, target, SLUG)
    assert result.answer
    assert fake.calls.count(("POST", UPLOAD_CREATE)) == 2
    assert fake.part_puts == 3


def test_a_503_that_lasts_is_an_error_with_the_status(tconfig, target, fake):
    register_lora(tconfig, SLUG, base_model=BASE_MODEL)
    fake.fail_next(503, UPLOAD_CREATE, count=3)
    with pytest.raises(DeployError, match=rf"{SLUG} v1 on together: .*upload.*HTTP 503"):
        deploy_version(tconfig, target, SLUG)
    assert deployed_version(tconfig) is None


def test_validation_pending_for_a_few_polls_then_valid(tconfig, target, fake):
    register_lora(tconfig, SLUG, base_model=BASE_MODEL)
    fake.polls_before_valid = 3
    result = deploy_version(tconfig, target, SLUG)
    revisions = f"/v2/projects/{PROJECT_ID}/models/{result.remote_id}/revisions"
    assert fake.calls.count(("GET", revisions)) >= 4
    assert deployed_version(tconfig) == "1"


def test_a_failed_validation_job_is_an_error_naming_the_job(tconfig, target, fake):
    register_lora(tconfig, SLUG, base_model=BASE_MODEL)
    fake.fail_validation = True
    with pytest.raises(DeployError) as caught:
        deploy_version(tconfig, target, SLUG)
    message = str(caught.value)
    assert f"{SLUG} v1" in message and "FAILED" in message
    assert "unsupported target module" in message
    assert "validation job rev_" in message
    assert deployed_version(tconfig) is None


def test_a_validation_job_that_never_ends_times_out(tconfig, target, fake):
    register_lora(tconfig, SLUG, base_model=BASE_MODEL)
    fake.polls_before_valid = 10**6
    tconfig.deploy.together.timeout_s = 0.1
    with pytest.raises(DeployError, match=r"validation job rev_\d+ .* not done after"):
        deploy_version(tconfig, target, SLUG)


def test_failed_smoke_test_keeps_the_previous_version_attached(tconfig, env, fake):
    fake.add_endpoint("ep_1", ("dep_1",))
    tconfig.deploy.together.endpoint_id = "ep_1"
    target = open_target(tconfig)
    register_lora(tconfig, SLUG, base_model=BASE_MODEL)
    first = deploy_version(tconfig, target, SLUG)
    assert fake.attached("dep_1") == {first.remote_id}

    register_lora(tconfig, SLUG, base_model=BASE_MODEL, seed=1)
    fake.chat_mode = "empty"
    with pytest.raises(DeployError, match=r"v2 on together: .*empty text.*v1 is served again"):
        deploy_version(tconfig, target, SLUG)
    assert deployed_version(tconfig) == "1"
    assert fake.attached("dep_1") == {first.remote_id}
    target.close()


def test_failed_smoke_test_serverless_keeps_the_previous_version_recorded(tconfig, target, fake):
    register_lora(tconfig, SLUG, base_model=BASE_MODEL)
    first = deploy_version(tconfig, target, SLUG)
    register_lora(tconfig, SLUG, base_model=BASE_MODEL, seed=1)
    fake.chat_mode = "error"
    with pytest.raises(DeployError, match=r"v2 on together: .*HTTP 500"):
        deploy_version(tconfig, target, SLUG)
    assert deployed_version(tconfig) == "1"
    assert version_tags(tconfig, 1)["deploy.together.remote_id"] == first.remote_id
    assert "deploy.together.remote_id" not in version_tags(tconfig, 2)


def test_rank_over_the_limit_is_refused_before_any_upload(tconfig, target, fake):
    register_lora(tconfig, SLUG, base_model=BASE_MODEL, rank=fake.max_rank * 2)
    with pytest.raises(DeployError, match=rf"rank {fake.max_rank * 2} .*1\.\.{fake.max_rank}"):
        deploy_version(tconfig, target, SLUG)
    assert fake.upload_calls() == []


def test_another_base_model_is_refused_before_any_upload(tconfig, target, fake):
    register_lora(tconfig, SLUG, base_model="Qwen/Qwen2.5-7B-Instruct")
    with pytest.raises(DeployError, match=r"trained on base 'Qwen/Qwen2.5-7B-Instruct'"):
        deploy_version(tconfig, target, SLUG)
    assert fake.upload_calls() == []


def test_a_base_together_does_not_know_is_refused(tconfig, fake):
    tconfig.deploy.together.base_model = "acme/unknown-7b"
    register_lora(tconfig, SLUG, base_model="acme/unknown-7b")
    target = open_target(tconfig)
    with pytest.raises(DeployError, match="Together does not serve base 'acme/unknown-7b'"):
        deploy_version(tconfig, target, SLUG)
    assert fake.upload_calls() == []
    target.close()


def test_missing_api_key_names_the_variable(tconfig, env):
    env.delenv("TOGETHER_API_KEY")
    with pytest.raises(DeployError, match="TOGETHER_API_KEY .*FOUNDRY_TOGETHER_API_KEY"):
        make_target(tconfig)


def test_the_tiny_base_is_refused(tconfig):
    tconfig.deploy.together.base_model = ""
    assert tconfig.base_model.is_tiny
    with pytest.raises(DeployError, match=r"`tiny`.*deploy\.together\.base_model"):
        make_target(tconfig)


def test_the_key_never_reaches_logs_or_errors(tconfig, env, fake, caplog):
    caplog.set_level(logging.DEBUG)
    register_lora(tconfig, SLUG, base_model=BASE_MODEL)
    target = open_target(tconfig)
    fake.fail_next(503, UPLOAD_CREATE)
    fake.fail_validation = True
    with pytest.raises(DeployError) as failed:
        deploy_version(tconfig, target, SLUG)
    target.close()
    wrong_key = "fake-wrong-together-key-42"  # the fake echoes a rejected key back
    env.setenv("TOGETHER_API_KEY", wrong_key)
    target = open_target(tconfig)
    with pytest.raises(DeployError, match="HTTP 401") as refused:
        deploy_version(tconfig, target, SLUG)
    target.close()
    assert "try 2 of 3" in caplog.text  # the retry was logged
    assert "Request options" in caplog.text  # and so were the SDK's own debug lines
    for key in (fake.api_key, wrong_key):
        assert key not in caplog.text
        assert key not in str(failed.value) and key not in str(refused.value)


def test_chat_with_an_unknown_model_is_a_404_error(target):
    messages = [{"role": "user", "content": "hello"}]
    with pytest.raises(DeployError, match="HTTP 404"):
        target.chat("foundry-test/persona-nobody-000000000000", messages, 8)


def test_status_asks_together_and_undeploy_detaches(tconfig, env, fake):
    fake.add_endpoint("ep_1", ("dep_1", "dep_2"))
    tconfig.deploy.together.endpoint_id = "ep_1"
    target = open_target(tconfig)
    register_lora(tconfig, SLUG, base_model=BASE_MODEL)
    result = deploy_version(tconfig, target, SLUG)
    assert fake.attached("dep_1") == fake.attached("dep_2") == {result.remote_id}

    (row,) = deployment_status(tconfig, [SLUG], {"together": target})
    assert (row.version, row.served_name, row.live) == (1, result.served_name, True)

    assert undeploy(tconfig, target, SLUG) == 1
    assert fake.attached("dep_1") == fake.attached("dep_2") == set()
    assert result.served_name not in target.live()
    assert deployment_status(tconfig, [SLUG], {"together": target}) == []
    assert undeploy(tconfig, target, SLUG) is None
    target.close()


def test_serverless_live_lists_persona_models(tconfig, target, fake):
    register_lora(tconfig, SLUG, base_model=BASE_MODEL)
    result = deploy_version(tconfig, target, SLUG)
    fake.add_model("someone-elses-model")
    assert target.live() == {result.served_name}
    (row,) = deployment_status(tconfig, [SLUG], {"together": target})
    assert row.live is True
    assert undeploy(tconfig, target, SLUG) == 1
    assert target.live() == {result.served_name}  # the upload stays for reuse


def test_detaching_an_adapter_that_is_gone_is_not_an_error(tconfig, env, fake):
    fake.add_endpoint("ep_1", ("dep_1",))
    tconfig.deploy.together.endpoint_id = "ep_1"
    target = open_target(tconfig)
    register_lora(tconfig, SLUG, base_model=BASE_MODEL)
    result = deploy_version(tconfig, target, SLUG)
    deployment = f"/v2/projects/{PROJECT_ID}/endpoints/ep_1/deployments/dep_1"
    fake.fail_next(404, f"{deployment}/adapters/dad_")  # removed by someone else meanwhile
    target.deactivate(Remote(result.remote_id, result.served_name))
    assert any(m == "DELETE" and p.startswith(f"{deployment}/adapters/dad_") for m, p in fake.calls)
    target.activate(Remote(result.remote_id, result.served_name))  # attached still: 409, fine
    target.close()
