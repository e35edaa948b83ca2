"""The local OpenAI-compatible server on a random tiny Llama with two LoRA adapters, over real
HTTP on 127.0.0.1: models, completions (plain and streamed), batching across adapters, and
vLLM's runtime adapter loading semantics."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from deploy.batching import BatchingEngine
from deploy.openai_server import create_app
from foundry.steering import SteerVector, register_vectors

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
def server(tmp_path_factory):
    import torch
    import uvicorn

    from foundry.adapter_loading import attach_adapters
    from foundry.base_model import PretrainDoc, new_tiny_model, train_tokenizer
    from foundry.model_config import TinyModelConfig

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
    app = create_app(engine, BASE, serving, {"persona-0@steer"})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", engine, folders
    uv.should_exit = True
    thread.join(timeout=10)
    engine.close()


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
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == plain and chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


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


def test_vllm_launch_spec_covers_every_adapter_and_rounds_the_rank(server, tmp_path):
    from deploy.vllm import copy_adapters, launch_spec

    _, _, folders = server
    spec = launch_spec("meta-llama/Llama-3.1-8B-Instruct", folders, "/adapters")
    command = spec["command"]
    assert command[:3] == ["vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct"]
    assert "--enable-lora" in command and "persona-2=/adapters/persona-2" in command
    assert command[command.index("--max-loras") + 1] == "3"
    assert command[command.index("--max-lora-rank") + 1] == "8"  # r=4 rounds up to 8
    assert spec["compose"]["services"]["vllm"]["command"] == command[2:]
    assert spec["kubernetes_container"]["args"] == command[2:]
    placed = copy_adapters(folders, str(tmp_path / "remote"))
    for slug in folders:
        files = sorted(p.name for p in (tmp_path / "remote" / slug).iterdir())
        assert files == ["adapter_config.json", "adapter_model.safetensors"], placed[slug]
    copy_adapters({"persona-0": folders["persona-0"]}, "memory://served")  # any fsspec URL


def test_vllm_client_against_the_local_server(server):
    from deploy import DeployError
    from deploy.vllm import VllmClient, hot_swap

    url, _, folders = server
    client = VllmClient(url)
    assert client.models()[:3] == [BASE, "persona-0", "persona-1"]
    with pytest.raises(DeployError, match="400: The lora adapter 'persona-0' has already"):
        client.load("persona-0", str(folders["persona-0"]))
    with pytest.raises(DeployError, match="404"):
        client.unload("nobody")
    swapped = hot_swap(client, "persona-1", str(folders["persona-2"]), str(folders["persona-1"]))
    assert swapped["model"] == "persona-1" and swapped["latency_s"] >= 0
    with pytest.raises(DeployError, match="previous adapter is served again"):
        hot_swap(client, "persona-1", "/nowhere", str(folders["persona-2"]))
    assert "persona-1" in client.models()
    assert client.smoke_test("persona-1")["text"]


def test_an_unreachable_vllm_server_is_a_clear_error():
    from deploy import DeployError
    from deploy.vllm import VllmClient

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DeployError, match="unreachable"):
        VllmClient(f"http://127.0.0.1:{port}", timeout_s=2).models()
