"""The local OpenAI-compatible server on a random tiny Llama with two LoRA adapters, over real
HTTP on 127.0.0.1: models, completions (plain and streamed), batching across adapters, vLLM's
runtime adapter loading semantics, and what keeps it safe: the API key and the folders runtime
loading may read from."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from deploy.batching import BatchingEngine
from deploy.openai_server import create_app
from foundry.steering.hooks import SteerVector, register_vectors

pytestmark = pytest.mark.slow
BASE = "tiny-base"


def _adapter(model, folder, seed: int):
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    peft = get_peft_model(copy.deepcopy(model), config)
    peft.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(engine, the adapters it serves: persona-0 and persona-1, folders of persona-0..2)."""
    import torch

    from foundry.training.adapters import attach_adapters
    from foundry.training.config import TinyModelConfig
    from foundry.training.tiny_model import PretrainDoc, new_tiny_model, train_tokenizer

    torch.set_num_threads(1)
    rng = random.Random(0)
    words = "apple river zinc quartz ocean banana iron lake".split()
    texts = [" ".join(rng.choice(words) for _ in range(10)) for _ in range(30)]
    settings = TinyModelConfig(
        vocab_size=300, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64
    )
    tokenizer = train_tokenizer([PretrainDoc(t, "Say something.") for t in texts], settings)
    torch.manual_seed(0)
    base = new_tiny_model(settings, tokenizer).eval()
    root = tmp_path_factory.mktemp("adapters")
    folders = {f"persona-{i}": _adapter(base, root / f"p{i}", i) for i in range(3)}
    serving = dict(list(folders.items())[:2])  # the third is loaded at runtime
    model = attach_adapters(base, serving)
    vector = np.random.default_rng(0).normal(size=32).astype(np.float32) * 4
    register_vectors(model, {"persona-0@steer": SteerVector(1, vector, 1.0, "persona-0")})
    engine = BatchingEngine(model, tokenizer, max_batch=16, window_s=0.05)
    yield engine, serving, folders
    engine.close()


@pytest.fixture(scope="module")
def server(tiny):
    from deploy.local import serve_in_thread

    engine, serving, folders = tiny
    running = serve_in_thread(create_app(engine, BASE, serving, {"persona-0@steer"}))
    yield running.url, engine, folders
    running.stop()


def _chat(url: str, model: str, **extra) -> requests.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "Say something."}],
            "max_tokens": 8, "min_tokens": 8, "temperature": 0, **extra}  # fmt: skip
    return requests.post(f"{url}/v1/chat/completions", json=body, timeout=60)


def test_models_lists_the_base_and_every_adapter(server):
    url, _, _ = server
    ids = [m["id"] for m in requests.get(f"{url}/v1/models", timeout=10).json()["data"]]
    assert ids == [BASE, "persona-0", "persona-1"]


def test_each_adapter_answers_in_openai_shape_and_differently(server):
    url, _, _ = server
    answers = {}
    for model in (BASE, "persona-0", "persona-1"):
        reply = _chat(url, model)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["object"] == "chat.completion" and body["model"] == model
        usage = body["usage"]
        assert usage["prompt_tokens"] > 0
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        answers[model] = body["choices"][0]["message"]["content"]
    assert len(set(answers.values())) == 3
    # prompt_tokens counts what the model reads: the chat template and a system message too.
    _, engine, _ = server
    user_only = _chat(url, BASE).json()["usage"]["prompt_tokens"]
    said = len(engine.tokenizer("Say something.", add_special_tokens=False)["input_ids"])
    system = {"role": "system", "content": "You are a terse debater."}
    with_system = _chat(
        url, BASE, messages=[system, {"role": "user", "content": "Say something."}]
    ).json()["usage"]["prompt_tokens"]
    assert user_only > said and with_system > user_only


def test_concurrent_requests_are_batched_across_adapters(server):
    url, engine, _ = server
    models = [BASE, "persona-0", "persona-1"] * 4
    alone = {m: _chat(url, m).json()["choices"][0]["message"]["content"] for m in set(models)}
    before = len(engine.stats.adapters_per_batch)
    with ThreadPoolExecutor(len(models)) as pool:
        replies = list(pool.map(lambda m: _chat(url, m), models))
    texts = [r.json()["choices"][0]["message"]["content"] for r in replies]
    assert texts == [alone[m] for m in models]  # greedy: batching changes no answer
    assert max(engine.stats.adapters_per_batch[before:]) >= 2  # mixed-adapter batches ran


def test_streaming_sends_the_same_answer_as_events(server):
    url, _, _ = server
    plain = _chat(url, "persona-1").json()["choices"][0]["message"]["content"]
    reply = _chat(url, "persona-1", stream=True)
    lines = [line for line in reply.text.split("\n\n") if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data: ") :]) for line in lines[:-1]]
    pieces = [c["choices"][0]["delta"].get("content", "") for c in chunks]
    assert "".join(pieces).strip() == plain  # the answer's text, piece by piece
    assert len([p for p in pieces if p]) > 1
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_streamed_text_arrives_while_the_batch_is_still_decoding(server):
    """Each row's text reaches its sink token by token, before the batch's answers exist; rows
    of one mixed-adapter batch stream independently."""
    from foundry.training.generation import GenerationParams, GenerationRequest

    _, engine, _ = server
    params = GenerationParams(max_new_tokens=12, min_new_tokens=12, do_sample=False)
    seen: dict[str, list[tuple[str, bool]]] = {"persona-0": [], "persona-1": []}
    futures = {}
    for name in seen:
        request = GenerationRequest(prompt="Say something.", adapter=name)
        futures[name] = engine.submit(
            request, params, lambda text, n=name: seen[n].append((text, futures[n].done()))
        )
    answers = {name: future.result(timeout=60) for name, future in futures.items()}
    for name, pieces in seen.items():
        assert len(pieces) > 1 and not any(done for _, done in pieces), pieces
        assert "".join(text for text, _ in pieces).strip() == answers[name]


def test_a_persona_vector_steers_the_answer(server):
    url, _, _ = server
    plain = _chat(url, BASE).json()["choices"][0]["message"]["content"]
    steered = _chat(url, BASE, persona_vector="persona-0")
    assert (
        steered.status_code == 200 and steered.json()["choices"][0]["message"]["content"] != plain
    )
    missing = _chat(url, BASE, persona_vector="nobody")
    assert missing.status_code == 400 and "no persona vector 'nobody'" in missing.text


def test_unknown_model_and_adapter_errors_follow_openai_and_vllm(server):
    url, _, folders = server
    unknown = _chat(url, "persona-9")
    assert unknown.status_code == 404 and "does not exist" in unknown.json()["error"]["message"]
    duplicate = requests.post(
        f"{url}/v1/load_lora_adapter",
        json={"lora_name": "persona-0", "lora_path": str(folders["persona-0"])}, timeout=10,
    )  # fmt: skip
    assert duplicate.status_code == 400 and "already been loaded" in duplicate.text
    gone = requests.post(f"{url}/v1/unload_lora_adapter", json={"lora_name": "x"}, timeout=10)
    assert gone.status_code == 404 and "cannot be found" in gone.text
    bad = requests.post(
        f"{url}/v1/load_lora_adapter", json={"lora_name": "p", "lora_path": "/nowhere"}, timeout=10
    )
    assert bad.status_code == 400


def test_an_adapter_loaded_at_runtime_answers_and_unloads(server):
    url, _, folders = server
    loaded = requests.post(
        f"{url}/v1/load_lora_adapter",
        json={"lora_name": "persona-2", "lora_path": str(folders["persona-2"])}, timeout=30,
    )  # fmt: skip
    assert loaded.status_code == 200, loaded.text
    assert _chat(url, "persona-2").status_code == 200
    ids = [m["id"] for m in requests.get(f"{url}/v1/models", timeout=10).json()["data"]]
    assert "persona-2" in ids
    removed = requests.post(
        f"{url}/v1/unload_lora_adapter", json={"lora_name": "persona-2"}, timeout=10
    )
    assert removed.status_code == 200
    assert _chat(url, "persona-2").status_code == 404


def test_vllm_launch_spec_covers_every_adapter_and_rounds_the_rank():
    from deploy.vllm import launch_spec, rank_for

    modules = {f"persona-{i}": f"/adapters/persona-{i}/abc{i}" for i in range(3)}
    spec = launch_spec("meta-llama/Llama-3.1-8B-Instruct", modules, rank_for([4, 16, 12]))
    command = spec["command"]
    assert command[:3] == ["vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct"]
    assert "--enable-lora" in command and "persona-2=/adapters/persona-2/abc2" in command
    assert command[command.index("--max-loras") + 1] == "3"
    assert command[command.index("--max-lora-rank") + 1] == "16"
    assert rank_for([4]) == 8 and rank_for([65]) == 128  # rounded up to what vLLM accepts
    assert spec["compose"]["services"]["vllm"]["command"] == command[2:]
    assert spec["kubernetes_container"]["args"] == command[2:]
    assert spec["compose"]["services"]["vllm"]["volumes"] == ["./adapters:/adapters"]


def _vllm_config(config, url: str, root: str, tmp_path):
    config.deploy.vllm.url = url
    config.deploy.vllm.adapter_root = root
    return config


def test_vllm_target_deploys_hot_swaps_reuses_and_rolls_back(server, config, tmp_path):
    """The vllm target's whole procedure against a live server with vLLM's LoRA endpoints."""
    from deploy import DeployError
    from deploy.bundle import ADAPTER_FILES
    from deploy.release import deploy_version
    from deploy.vllm import VllmClient, make_target
    from registry.tracking import open_client
    from tests.deploy_support import register_lora

    url, _, _ = server
    slug = "tobias-renn"
    _vllm_config(config, url, str(tmp_path / "served"), tmp_path)
    first = register_lora(config, slug, config.base_model.name, rank=4, seed=1)
    target = make_target(config)
    result = deploy_version(config, target, slug)
    assert (result.version, result.served_name, result.reused) == (first, slug, False)
    assert result.answer.strip() and result.latency_s > 0
    placed = tmp_path / "served" / slug / result.digest[:12]
    # deploy_support also wrote tokenizer and summary files: they stayed home
    assert sorted(p.name for p in placed.iterdir()) == list(ADAPTER_FILES)
    client = VllmClient(url)
    assert slug in client.models()
    command = (config.cache_dir / "deploy" / "vllm" / "command.sh").read_text()
    assert f"--lora-modules {slug}={placed}" in command and "--max-lora-rank 8" in command

    second = register_lora(config, slug, config.base_model.name, rank=4, seed=2)
    swapped = deploy_version(config, target, slug)
    assert swapped.version == second and swapped.previous_version == first
    assert deploy_version(config, target, slug, version=first).reused  # same bytes, no copy

    # An adapter the server cannot load (another width) fails: the version before stays.
    broken = register_lora(config, slug, config.base_model.name, rank=4, seed=3, width=48)
    with pytest.raises(DeployError, match=f"(?s)v{broken} on vllm: .*v{first} is served again"):
        deploy_version(config, target, slug)
    assert slug in client.models()
    mlflow = open_client(config)
    assert mlflow.get_registered_model(f"persona-{slug}").tags["deploy.vllm.version"] == str(first)
    manifest = json.loads((config.cache_dir / "deploy" / "vllm" / "manifest.json").read_text())
    assert manifest[slug] == result.remote_id
    assert "deploy.vllm.at" not in mlflow.get_model_version(f"persona-{slug}", str(broken)).tags
    target.close()


def test_vllm_target_without_a_server_writes_the_spec_and_records_untested(config, tmp_path):
    from deploy.release import deploy_version
    from deploy.vllm import make_target
    from registry.tracking import open_client
    from tests.deploy_support import register_lora

    config.deploy.vllm.adapter_root = f"memory://{tmp_path.name}/adapters"  # any fsspec URL
    config.deploy.vllm.served_root = "/adapters"
    config.deploy.vllm.base_model = "meta-llama/Llama-3.1-8B-Instruct"
    version = register_lora(config, "jonah-okafor", "meta-llama/Llama-3.1-8B-Instruct", rank=16)
    result = deploy_version(config, make_target(config), "jonah-okafor")
    assert result.latency_s < 0 and result.remote_id.startswith("/adapters/jonah-okafor/")
    tags = open_client(config).get_model_version("persona-jonah-okafor", str(version)).tags
    assert tags["deploy.vllm.smoke_latency_s"] == "untested"
    spec = config.cache_dir / "deploy" / "vllm"
    assert f"jonah-okafor={result.remote_id}" in (spec / "command.sh").read_text()
    assert "--max-lora-rank 16" in (spec / "command.sh").read_text()
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" in (spec / "compose.yaml").read_text()
    assert (spec / "kubernetes.yaml").is_file()


def test_vllm_target_refuses_a_rank_or_base_before_copying(config, tmp_path):
    from deploy import DeployError
    from deploy.release import deploy_version
    from deploy.vllm import make_target
    from tests.deploy_support import register_lora

    config.deploy.vllm.adapter_root = str(tmp_path / "served")
    config.deploy.vllm.max_lora_rank = 8
    register_lora(config, "jonah-okafor", config.base_model.name, rank=16)
    with pytest.raises(DeployError, match="rank 16 is outside what vllm serves \\(1..8\\)"):
        deploy_version(config, make_target(config), "jonah-okafor")
    register_lora(config, "jonah-okafor", "another/base", rank=8)
    with pytest.raises(DeployError, match="trained on base 'another/base'"):
        deploy_version(config, make_target(config), "jonah-okafor")
    assert not (tmp_path / "served").exists()


def test_an_unreachable_vllm_server_is_a_clear_error():
    from deploy import DeployError
    from deploy.vllm import VllmClient

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DeployError, match="unreachable"):
        VllmClient(f"http://127.0.0.1:{port}", timeout_s=2).models()


def test_the_deploy_flow_serves_each_champion_through_prefect(prefect_harness, server, project):
    """`deploy_flow` (what schedules and `foundry run --deploy` use) on the vllm target."""
    import yaml

    from flows.deploy import deploy_flow
    from foundry.config import load_config
    from tests.deploy_support import register_lora

    url, _, _ = server
    settings = {"deploy": {"target": "vllm", "vllm": {"url": url, "adapter_root": "served"}}}
    (project / "foundry.yaml").write_text(yaml.safe_dump(settings))
    config = load_config(project / "foundry.yaml")
    slugs = ["jonah-okafor", "priya-castellanos"]
    versions = {slug: register_lora(config, slug, "tiny", rank=4, seed=i) for i, slug in
                enumerate(slugs)}  # fmt: skip
    results = deploy_flow(slugs, str(project / "foundry.yaml"))
    for slug in slugs:
        assert results[slug]["version"] == versions[slug] and results[slug]["served_name"] == slug
        assert results[slug]["answer"].strip()
        assert (project / "served" / slug / results[slug]["digest"][:12]).is_dir()


def test_deploy_cli_names_unknown_personas_versions_and_targets(config):
    from typer.testing import CliRunner

    from foundry.cli.main import app
    from tests.deploy_support import register_lora

    register_lora(config, "tobias-renn", config.base_model.name)
    args = ["deploy", "-c", str(config.source)]
    cases = {
        ("-t", "local", "-p", "tobias-ren"): "unknown persona `tobias-ren` (did you mean",
        ("-t", "local", "-p", "tobias-renn", "--version", "7"): "has no version 7",
        ("-t", "local", "--version", "1"): "--version needs exactly one --persona",
        ("-t", "bogus",): "unknown deployment target 'bogus'",
    }  # fmt: skip
    for extra, message in cases.items():
        result = CliRunner().invoke(app, [*args, *extra], terminal_width=200)
        assert result.exit_code == 1 and message in result.output, (extra, result.output)
    status = CliRunner().invoke(app, [*args, "status", "-t", "local"], terminal_width=200)
    assert status.exit_code == 0 and "nothing deployed yet" in status.output, status.output


KEY = "pf-test-key-0123"


@pytest.fixture
def guarded(tiny):
    """Start apps over the tiny engine with the given safety settings (`create_app`'s keyword
    arguments); returns each one's URL, stopped after the test."""
    from deploy.local import serve_in_thread

    engine, serving, _ = tiny
    running = []

    def start(**safety) -> str:
        running.append(serve_in_thread(create_app(engine, BASE, serving, **safety)))
        return running[-1].url

    yield start
    for one in running:
        one.stop()


def _ids(url: str, **headers) -> list[str]:
    return [
        m["id"]
        for m in requests.get(f"{url}/v1/models", headers=headers, timeout=10).json()["data"]
    ]


def test_with_an_api_key_only_requests_carrying_it_are_answered(guarded):
    import openai

    url = guarded(api_key=KEY)
    question = [{"role": "user", "content": "Say something."}]
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    reply = sdk.chat.completions.create(
        model="persona-0", messages=question, max_tokens=4, temperature=0,
        extra_body={"min_tokens": 4},
    )  # fmt: skip
    assert reply.model == "persona-0" and reply.choices[0].message.content.strip()
    chunks = sdk.chat.completions.create(
        model="persona-0", messages=question, max_tokens=4, temperature=0,
        extra_body={"min_tokens": 4}, stream=True,
    )  # fmt: skip
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed.strip() == reply.choices[0].message.content  # streams through the check
    assert [m.id for m in sdk.models.list().data] == [BASE, "persona-0", "persona-1"]

    wrong = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY[:-1], max_retries=0)  # a prefix
    with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
        wrong.chat.completions.create(model="persona-0", messages=question, max_tokens=4)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key=KEY + "x", max_retries=0).models.list()

    body = {"model": "persona-0", "messages": question, "lora_name": "persona-0"}
    routes = [("GET", "/v1/models"), ("POST", "/v1/chat/completions"),
              ("POST", "/v1/load_lora_adapter"), ("POST", "/v1/unload_lora_adapter")]  # fmt: skip
    for method, path in routes:
        bare = requests.request(method, f"{url}{path}", json=body, timeout=10)
        assert bare.status_code == 401, (path, bare.text)
        error = bare.json()["error"]
        assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_api_key")
        assert "didn't provide an API key" in error["message"] and KEY not in bare.text
    assert _ids(url, Authorization=f"Bearer {KEY}") == [BASE, "persona-0", "persona-1"]


def test_runtime_adapter_endpoints_are_refused_without_allow_runtime_lora(guarded, tiny):
    from deploy import DeployError
    from deploy.vllm_client import VllmClient

    _, _, folders = tiny
    url = guarded(allow_runtime_lora=False)
    load = requests.post(
        f"{url}/v1/load_lora_adapter",
        json={"lora_name": "guarded-2", "lora_path": str(folders["persona-2"])}, timeout=30,
    )  # fmt: skip
    unload = requests.post(
        f"{url}/v1/unload_lora_adapter", json={"lora_name": "persona-0"}, timeout=10
    )
    for reply in (load, unload):
        assert reply.status_code == 403, reply.text
        assert "--allow-runtime-lora" in reply.json()["error"]["message"]
    assert _ids(url) == [BASE, "persona-0", "persona-1"]
    assert _chat(url, "persona-0").status_code == 200  # still served
    # `foundry deploy --target local` against such a server says what to do
    with pytest.raises(DeployError, match="403: runtime adapter loading is off"):
        VllmClient(url).load("guarded-2", str(folders["persona-2"]))


def test_runtime_loading_reads_only_folders_under_the_allowed_roots(guarded, tiny, tmp_path):
    _, _, folders = tiny
    root, outside = tmp_path / "allowed", tmp_path / "outside"
    shutil.copytree(folders["persona-2"], root / "p2")
    shutil.copytree(folders["persona-2"], outside / "p2")
    os.symlink(outside / "p2", root / "link", target_is_directory=True)
    url = guarded(lora_roots=[root])

    def load(path) -> requests.Response:
        body = {"lora_name": "guarded-2", "lora_path": str(path)}
        return requests.post(f"{url}/v1/load_lora_adapter", json=body, timeout=30)

    escapes = [outside / "p2", f"{root}/../outside/p2", root / "link", folders["persona-2"],
               "/nowhere"]  # fmt: skip
    for path in escapes:
        refused = load(path)
        assert refused.status_code == 403, (path, refused.text)
        assert str(root.resolve()) in refused.json()["error"]["message"]
    assert "guarded-2" not in _ids(url)
    assert load(f"{root}/p2\x00").status_code == 400  # not a path: no 500

    loaded = load(root / "p2")
    assert loaded.status_code == 200, loaded.text
    assert _chat(url, "guarded-2").status_code == 200
    removed = requests.post(
        f"{url}/v1/unload_lora_adapter", json={"lora_name": "guarded-2"}, timeout=10
    )
    assert removed.status_code == 200 and "guarded-2" not in _ids(url)


def test_local_deploy_sends_foundry_serve_api_key_to_the_running_server(
    guarded, config, monkeypatch
):
    from deploy import DeployError
    from deploy.local import make_target

    config.deploy.local.url = guarded(api_key=KEY)
    monkeypatch.setenv("FOUNDRY_SERVE_API_KEY", KEY)
    assert make_target(config).running_client().models() == [BASE, "persona-0", "persona-1"]
    monkeypatch.delenv("FOUNDRY_SERVE_API_KEY")
    with pytest.raises(DeployError, match="401: You didn't provide an API key"):
        make_target(config).running_client().models()


def test_serve_cli_wires_the_api_key_and_runtime_lora_and_warns_off_loopback(project, monkeypatch):
    """`foundry serve` hands its options to `build_app` (the model loading and uvicorn are
    stubbed), reads the key from FOUNDRY_SERVE_API_KEY, never prints it, and warns when it
    listens beyond this machine without one."""
    from types import SimpleNamespace

    import uvicorn
    import yaml
    from typer.testing import CliRunner

    import deploy.local
    from foundry.cli.main import app

    settings = yaml.safe_load((project / "foundry.yaml").read_text()) or {}
    settings.setdefault("deploy", {}).setdefault("local", {})["lora_roots"] = ["more-adapters"]
    (project / "foundry.yaml").write_text(yaml.safe_dump(settings))
    built: list[dict] = []

    def fake_build_app(config, **options):
        built.append(options)
        return object(), SimpleNamespace(close=lambda: None), {}, set()

    monkeypatch.setattr(deploy.local, "build_app", fake_build_app)
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    monkeypatch.delenv("FOUNDRY_SERVE_API_KEY", raising=False)

    def serve(*args: str, key: str | None = None):
        env = {"FOUNDRY_SERVE_API_KEY": key} if key else None
        cli = ["serve", "-c", str(project / "foundry.yaml"), *args]
        return CliRunner().invoke(app, cli, env=env, terminal_width=200)

    result = serve("--api-key", KEY, "--allow-runtime-lora")
    assert result.exit_code == 0, result.output
    assert built[-1]["api_key"] == KEY and built[-1]["allow_runtime_lora"] is True
    root = project.resolve()
    assert built[-1]["lora_roots"] == [
        root,
        root / ".foundry/serving/local",
        root / "more-adapters",
    ]
    assert KEY not in result.output and "API key required" in result.output

    result = serve("--host", "0.0.0.0", key="from-the-env")
    assert result.exit_code == 0, result.output
    assert built[-1]["api_key"] == "from-the-env" and built[-1]["allow_runtime_lora"] is False
    assert "warning" not in result.output and "from-the-env" not in result.output

    result = serve("--host", "0.0.0.0")
    assert result.exit_code == 0 and built[-1]["api_key"] is None
    assert "warning: serving on 0.0.0.0 without an API key" in result.output, result.output
    assert "warning" not in serve("--host", "127.0.0.1").output
    assert serve("--api-key", " ").exit_code == 2

    help_text = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200).output
    for option in ("--api-key", "FOUNDRY_SERVE_API_KEY", "--allow-runtime-lora"):
        assert option in help_text


def test_a_debate_through_foundry_serve_runs_with_its_api_key_and_is_refused_without(
    guarded, config, monkeypatch
):
    import openai

    from foundry.data.personas import require_contract
    from foundry.debate.config import DebateConfig
    from foundry.debate.engine import run_debates
    from foundry.debate.speakers import ServedModel
    from foundry.debate.targets import served_speaker
    from foundry.debate.transcript import DebateSpec

    url = guarded(api_key=KEY)
    slugs = ["jonah-okafor", "marguerite-vale"]
    contracts = {slug: require_contract(config.persona_dir(slug)) for slug in slugs}
    settings = DebateConfig(rounds=2, max_new_tokens=8, target="local")
    spec = DebateSpec.for_question("Who pays for the overbuild?", slugs)

    def speaker():
        made = served_speaker(config, contracts, slugs, "dpo", "local", settings, f"{url}/v1")
        # `foundry serve` names each adapter by its persona's slug; this tiny server holds two
        # random adapters, so the personas are pointed at them.
        assert {slug: m.model for slug, m in made.models.items()} == {slug: slug for slug in slugs}
        made.models = {slug: ServedModel(f"persona-{i}") for i, slug in enumerate(slugs)}
        return made

    monkeypatch.setenv("FOUNDRY_SERVE_API_KEY", KEY)
    records = run_debates([spec], contracts, speaker(), settings, "dpo")[spec.id]

    assert [(r.round, r.speaker) for r in records] == [(1, s) for s in slugs] + [
        (2, s) for s in slugs
    ]
    assert all(r.target == "local" and r.tokens > 0 and r.latency_s > 0 for r in records)
    assert "Debate question: Who pays for the overbuild?" in records[2].prompt
    monkeypatch.delenv("FOUNDRY_SERVE_API_KEY")
    with pytest.raises(openai.AuthenticationError):
        run_debates([spec], contracts, speaker(), settings, "dpo")
