"""The `fireworks` target end to end: `deploy_version` through the real `fireworks` SDK against
`FakeFireworksServer`, with persona versions registered in the project's sqlite registry."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy import DeployError
from deploy.bundle import ADAPTER_FILES, bundle_from_folder, bundle_from_registry
from deploy.fireworks import FireworksTarget, make_target, model_id_for
from deploy.release import deploy_version, deployment_status, undeploy
from foundry.config import FoundryConfig, load_config
from registry.models import model_name
from registry.tracking import open_client
from tests.conftest import make_project
from tests.deploy_support import register_lora, write_lora
from tests.fakes.fireworks_server import BASE_MODEL, FakeFireworksServer, reply_text

ENV = ("API_KEY", "ACCOUNT_ID", "BASE_URL")
_slugs = itertools.count(1)


@pytest.fixture(scope="module")
def shared_config(tmp_path_factory: pytest.TempPathFactory) -> FoundryConfig:
    """One project (and so one sqlite registry) for the module: creating a registry takes
    seconds, and each test deploys its own persona slug, so tests stay independent."""
    root = make_project(tmp_path_factory.mktemp("fireworks") / "project")
    return load_config(root / "foundry.yaml")


@pytest.fixture
def slug() -> str:
    return f"fireworks-persona-{next(_slugs)}"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFireworksServer]:
    with FakeFireworksServer() as server:
        for name in ENV:
            monkeypatch.delenv(f"FOUNDRY_FIREWORKS_{name}", raising=False)
        monkeypatch.setenv("FIREWORKS_API_KEY", server.api_key)
        monkeypatch.setenv("FIREWORKS_ACCOUNT_ID", server.account_id)
        monkeypatch.setenv("FIREWORKS_BASE_URL", server.base_url)
        yield server


@pytest.fixture
def fw_config(shared_config: FoundryConfig) -> FoundryConfig:
    config = shared_config.model_copy(deep=True)
    config.deploy.fireworks.base_model = BASE_MODEL
    config.deploy.fireworks.poll_s = 0.01
    config.deploy.fireworks.timeout_s = 5.0
    return config


@pytest.fixture
def target(fake: FakeFireworksServer, fw_config) -> Iterator[FireworksTarget]:
    built = make_target(fw_config)
    yield built
    built.close()


def served_name(fake: FakeFireworksServer, config, slug: str, version: int) -> str:
    bundle = bundle_from_registry(config, slug, version)
    return f"accounts/{fake.account_id}/models/{model_id_for(bundle)}"


def deployed_tag(config, slug: str) -> str | None:
    tags = open_client(config).get_registered_model(model_name(slug)).tags or {}
    return tags.get("deploy.fireworks.version")


def test_deploy_loads_uploads_only_adapter_files_and_records_tags(slug, fake, fw_config, target):
    version = register_lora(fw_config, slug, base_model=BASE_MODEL, rank=8)
    result = deploy_version(fw_config, target, slug)
    name = served_name(fake, fw_config, slug, version)
    assert result.served_name == name and not result.reused
    assert fake.loaded() == {name}
    prompt = fw_config.deploy.smoke_prompt
    assert result.answer == reply_text(name, prompt, fw_config.deploy.smoke_max_tokens)
    bundle = bundle_from_registry(fw_config, slug, version)
    uploaded = fake.files(model_id_for(bundle))
    assert set(uploaded) == set(ADAPTER_FILES)  # no tokenizer.json, no training_summary.json
    assert all(uploaded[n] == (bundle.folder / n).read_bytes() for n in ADAPTER_FILES)
    assert fake.count("PUT", "/signed-upload/") == 2
    tags = open_client(fw_config).get_model_version(model_name(slug), str(version)).tags
    assert deployed_tag(fw_config, slug) == str(version)
    assert tags["deploy.fireworks.served_name"] == name
    assert tags["deploy.fireworks.digest"] == bundle.digest


def test_redeploying_the_same_version_uploads_nothing(slug, fake, fw_config, target):
    register_lora(fw_config, slug, base_model=BASE_MODEL)
    first = deploy_version(fw_config, target, slug)
    creates, puts = fake.count("POST", "/v1/accounts/"), fake.count("PUT", "/")
    second = deploy_version(fw_config, target, slug)
    assert second.reused and second.served_name == first.served_name
    assert fake.count("PUT", "/") == puts
    assert fake.creates == 1
    assert fake.count("POST", "/v1/accounts/") == creates  # no create, no upload URL, no load
    assert fake.loaded() == {first.served_name}


def test_an_existing_unfinished_model_is_reused_and_uploaded_again(slug, fake, fw_config, target):
    register_lora(fw_config, slug, base_model=BASE_MODEL)
    fake.validation_error = "weights are truncated"
    with pytest.raises(DeployError):
        deploy_version(fw_config, target, slug)
    fake.validation_error = None
    result = deploy_version(fw_config, target, slug)
    assert (fake.creates, fake.conflicts) == (2, 1)
    assert fake.count("PUT", "/signed-upload/") == 4
    assert fake.loaded() == {result.served_name}


@pytest.mark.parametrize(
    "prefix",
    [
        "/v1/accounts/fireworks/models/",  # the base model check
        "/v1/accounts/{account}/models",  # create
        "/signed-upload/",
        "/v1/accounts/{account}/deployedModels",
        "/v1/chat/completions",
    ],
)
def test_a_503_is_retried_and_the_deploy_succeeds(slug, fake, fw_config, target, prefix):
    register_lora(fw_config, slug, base_model=BASE_MODEL)
    fake.fail_next(503, prefix.format(account=fake.account_id))
    result = deploy_version(fw_config, target, slug)
    assert fake.faults_served == 1 and target.retries == 1
    assert fake.loaded() == {result.served_name}


def test_a_model_not_ready_for_a_few_polls_then_ready_deploys(slug, fake, fw_config, target):
    register_lora(fw_config, slug, base_model=BASE_MODEL)
    fake.ready_after_polls = 3
    result = deploy_version(fw_config, target, slug)
    model_path = f"/v1/accounts/{fake.account_id}/models/{result.remote_id}"
    gets = sum(1 for s in fake.seen if s.method == "GET" and s.path == model_path)
    assert gets >= 5  # find, then 4 polls after validation
    assert fake.loaded() == {result.served_name}


def test_validation_that_fails_is_an_error_naming_the_model_and_nothing_is_loaded(
    slug, fake, fw_config, target
):
    version = register_lora(fw_config, slug, base_model=BASE_MODEL)
    fake.validation_error = "tensor shapes do not match the base"
    with pytest.raises(DeployError) as caught:
        deploy_version(fw_config, target, slug)
    model_id = model_id_for(bundle_from_registry(fw_config, slug, version))
    assert model_id in str(caught.value) and "tensor shapes do not match" in str(caught.value)
    assert fake.loaded() == set() and deployed_tag(fw_config, slug) is None


def test_validation_that_never_finishes_times_out(slug, fake, fw_config, target):
    register_lora(fw_config, slug, base_model=BASE_MODEL)
    fake.ready_after_polls = None
    target.timeout_s = 0.2
    with pytest.raises(DeployError, match="still UPLOADING after"):
        deploy_version(fw_config, target, slug)
    assert fake.loaded() == set()


@pytest.mark.parametrize("failure", ["empty", 500])
def test_a_new_version_failing_its_smoke_test_is_unloaded_and_the_old_one_kept(
    slug, fake, fw_config, target, failure
):
    first = register_lora(fw_config, slug, base_model=BASE_MODEL, seed=0)
    old = deploy_version(fw_config, target, slug)
    second = register_lora(fw_config, slug, base_model=BASE_MODEL, seed=1)
    fake.chat_failure = failure
    with pytest.raises(DeployError, match=f"{slug} v{second}.*v{first} is served again"):
        deploy_version(fw_config, target, slug)
    assert fake.loaded() == {old.served_name}
    assert served_name(fake, fw_config, slug, second) not in fake.loaded()
    assert deployed_tag(fw_config, slug) == str(first)


@pytest.mark.parametrize("rank", [2, 128])
def test_a_rank_fireworks_does_not_serve_is_refused_before_any_upload(
    slug, fake, fw_config, target, rank
):
    register_lora(fw_config, slug, base_model=BASE_MODEL, rank=rank)
    with pytest.raises(DeployError, match=rf"rank {rank} .*4\.\.64"):
        deploy_version(fw_config, target, slug)
    assert fake.count("POST", f"/v1/accounts/{fake.account_id}/") == 0
    assert fake.count("PUT", "/") == 0


def test_an_adapter_over_max_adapter_mb_is_refused_before_any_upload(slug, fake, fw_config, target):
    register_lora(fw_config, slug, base_model=BASE_MODEL)
    target.max_bytes = 1024
    with pytest.raises(DeployError, match="max_adapter_mb"):
        deploy_version(fw_config, target, slug)
    assert fake.creates == 0 and fake.count("PUT", "/") == 0


def test_a_configured_deployment_gets_the_lora_and_serverless_refusal_is_explained(
    slug, fake, fw_config
):
    register_lora(fw_config, slug, base_model=BASE_MODEL)
    fake.require_deployment = True
    serverless = make_target(fw_config)
    with pytest.raises(DeployError) as caught:
        deploy_version(fw_config, serverless, slug)
    serverless.close()
    assert "dedicated deployment" in str(caught.value)
    assert "`deploy.fireworks.deployment`" in str(caught.value)
    fw_config.deploy.fireworks.deployment = "persona-dep"
    dedicated = make_target(fw_config)
    result = deploy_version(fw_config, dedicated, slug)
    assert dedicated.live() == {result.served_name}
    dedicated.close()
    deployment = f"accounts/{fake.account_id}/deployments/persona-dep"
    assert fake.placements() == {(result.served_name, deployment)}


def test_a_base_fireworks_does_not_know_is_refused(slug, fake, fw_config):
    unknown = "accounts/fireworks/models/no-such-base"
    fw_config.deploy.fireworks.base_model = unknown
    register_lora(fw_config, slug, base_model=unknown)
    target = make_target(fw_config)
    with pytest.raises(DeployError, match=f"Fireworks does not serve base {unknown}"):
        deploy_version(fw_config, target, slug)
    target.close()
    assert fake.creates == 0 and fake.count("PUT", "/") == 0


def test_target_modules_fireworks_does_not_accept_are_refused(slug, fake, target, tmp_path: Path):
    folder = write_lora(tmp_path / "adapter", BASE_MODEL)
    for name in ("tokenizer.json", "training_summary.json"):
        (folder / name).unlink()
    config = json.loads((folder / "adapter_config.json").read_text())
    config["target_modules"] = ["q_proj", "lm_head"]
    (folder / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(DeployError, match=r"\['lm_head'\].*q_proj"):
        target.limits(bundle_from_folder(slug, 1, folder, BASE_MODEL))


def test_missing_key_account_or_a_tiny_base_is_named(fake, fw_config, monkeypatch):
    monkeypatch.delenv("FIREWORKS_API_KEY")
    with pytest.raises(DeployError, match="FIREWORKS_API_KEY"):
        make_target(fw_config)
    monkeypatch.setenv("FIREWORKS_API_KEY", fake.api_key)
    monkeypatch.delenv("FIREWORKS_ACCOUNT_ID")
    with pytest.raises(DeployError, match=r"deploy\.fireworks\.account_id.*FIREWORKS_ACCOUNT_ID"):
        make_target(fw_config)
    fw_config.deploy.fireworks.account_id = fake.account_id
    fw_config.deploy.fireworks.base_model = ""
    with pytest.raises(DeployError, match="`tiny` base"):
        make_target(fw_config)


def test_the_key_never_reaches_logs_errors_or_signed_urls(slug, fake, fw_config, target, caplog):
    caplog.set_level(logging.DEBUG)
    register_lora(fw_config, slug, base_model=BASE_MODEL)
    fake.fail_next(503, "/signed-upload/")
    deploy_version(fw_config, target, slug)
    target.client.api_key = "wrong-fake-key-for-this-test"  # every API call now answers 401
    with pytest.raises(DeployError) as caught:
        target.chat("any", [{"role": "user", "content": "hi"}], 4)
    assert "HTTP 401: invalid API key" in str(caught.value)
    for secret in (fake.api_key, "wrong-fake-key-for-this-test"):
        assert secret not in caplog.text and secret not in str(caught.value)
    uploads = [s for s in fake.seen if s.path.startswith("/signed-upload/")]
    assert len(uploads) == 3  # 503, then both files
    for request in uploads:
        assert "authorization" not in request.headers
        assert fake.api_key not in json.dumps(request.headers)


def test_undeploy_unloads_and_status_reports_whether_it_is_live(slug, fake, fw_config, target):
    version = register_lora(fw_config, slug, base_model=BASE_MODEL)
    result = deploy_version(fw_config, target, slug)
    assert target.live() == {result.served_name}
    [row] = deployment_status(fw_config, [slug], {"fireworks": target})
    assert (row.version, row.live) == (version, True)
    fake.unload_all()  # unloaded behind the registry's back
    [row] = deployment_status(fw_config, [slug], {"fireworks": target})
    assert row.live is False
    deploy_version(fw_config, target, slug)
    assert undeploy(fw_config, target, slug) == version
    assert fake.loaded() == set() and deployed_tag(fw_config, slug) is None
    target.deactivate(target.find(bundle_from_registry(fw_config, slug, version)))  # no error
