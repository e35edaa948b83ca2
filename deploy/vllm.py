"""The `vllm` target: a launch spec for the champions, and hot-swapping adapters on a live server.

`launch_spec(base_model, adapters, adapter_root)` writes what starts vLLM with every persona
adapter: the `vllm serve` command (`--enable-lora`, `--lora-modules`, `--max-loras`, and
`--max-lora-rank` rounded up to a size vLLM accepts), a compose service and a Kubernetes
container snippet. `copy_adapters` puts the adapter files (and only those) where the server reads
them: a folder or any fsspec URL. `VllmClient` talks to a server started with
`VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`: list, load, unload and smoke-test adapters;
`hot_swap` replaces one persona's adapter and puts the previous one back when the smoke test
fails. The client is tested against `foundry serve`, which implements the same endpoints.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy import DeployError

LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the --max-lora-rank values vLLM accepts
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")  # all that leaves the machine


def adapter_rank(folder: Path) -> int:
    """The LoRA rank `r` in an adapter's config."""
    return int(json.loads((folder / "adapter_config.json").read_text())["r"])


def max_lora_rank(adapters: Mapping[str, Path]) -> int:
    """The smallest rank vLLM accepts that holds every adapter."""
    needed = max((adapter_rank(p) for p in adapters.values()), default=8)
    for rank in LORA_RANKS:
        if rank >= needed:
            return rank
    raise DeployError(f"an adapter has rank {needed}, above vLLM's largest ({LORA_RANKS[-1]})")


def launch_spec(
    base_model: str, adapters: Mapping[str, Path], adapter_root: str, port: int = 8000
) -> dict[str, Any]:
    """The `vllm serve` command, a compose service and a Kubernetes container for `adapters`
    (persona slug -> local adapter folder), read from `adapter_root/<slug>` by the server."""
    if not adapters:
        raise DeployError("no adapters to serve: train or promote a persona first")
    modules = [f"{slug}={adapter_root.rstrip('/')}/{slug}" for slug in adapters]
    command = [
        "vllm", "serve", base_model, "--enable-lora", "--lora-modules", *modules,
        "--max-loras", str(len(adapters)), "--max-lora-rank", str(max_lora_rank(adapters)),
        "--port", str(port),
    ]  # fmt: skip
    env = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    compose = {
        "services": {
            "vllm": {
                "image": "vllm/vllm-openai:latest",
                "command": command[2:],  # the image's entrypoint is `vllm serve`
                "environment": env,
                "ports": [f"{port}:{port}"],
                "volumes": [f"./adapters:{adapter_root}"],
                "deploy": {"resources": {"reservations": {"devices": [
                    {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
                ]}}},
            }
        }
    }  # fmt: skip
    container = {
        "name": "vllm",
        "image": "vllm/vllm-openai:latest",
        "args": command[2:],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "ports": [{"containerPort": port}],
        "resources": {"limits": {"nvidia.com/gpu": 1}},
        "volumeMounts": [{"name": "adapters", "mountPath": adapter_root}],
    }
    return {"command": command, "env": env, "compose": compose, "kubernetes_container": container}


def copy_adapters(adapters: Mapping[str, Path], target: str) -> dict[str, str]:
    """Copy each adapter's allowed files to `target/<slug>/` (a folder or an fsspec URL).

    Returns:
        slug -> where the server finds it.
    """
    import fsspec

    fs, root = fsspec.core.url_to_fs(target)
    placed = {}
    for slug, folder in adapters.items():
        destination = f"{root.rstrip('/')}/{slug}"
        fs.makedirs(destination, exist_ok=True)
        for name in ADAPTER_FILES:
            if not (folder / name).is_file():
                raise DeployError(f"{folder} has no {name}; it is not a trained adapter")
            fs.put_file(str(folder / name), f"{destination}/{name}")
        placed[slug] = destination
    return placed


@dataclass
class VllmClient:
    """A running vLLM (or `foundry serve`) server's OpenAI and LoRA endpoints."""

    base_url: str  # e.g. http://host:8000 (without /v1)
    api_key: str | None = None
    timeout_s: float = 60.0

    def models(self) -> list[str]:
        return [m["id"] for m in self._call("GET", "/v1/models").json()["data"]]

    def load(self, name: str, path: str) -> None:
        self._call("POST", "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path})

    def unload(self, name: str) -> None:
        self._call("POST", "/v1/unload_lora_adapter", {"lora_name": name})

    def smoke_test(self, model: str, prompt: str = "Give your view on the debate.") -> dict:
        """One chat completion addressed to `model`; its text and latency."""
        started = time.perf_counter()
        reply = self._call(
            "POST",
            "/v1/chat/completions",
            {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 16},
        ).json()
        text = reply["choices"][0]["message"]["content"]
        if not text.strip():
            raise DeployError(f"smoke test: {model} at {self.base_url} answered with empty text")
        return {"model": model, "text": text, "latency_s": round(time.perf_counter() - started, 3)}

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        import requests

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            reply = requests.request(
                method, self.base_url.rstrip("/") + path, json=body, headers=headers,
                timeout=self.timeout_s,
            )  # fmt: skip
        except requests.ConnectionError as exc:
            raise DeployError(
                f"vLLM server at {self.base_url} is unreachable ({type(exc).__name__}); start it "
                "(the launch spec's command) or fix `--url`"
            ) from None
        if reply.status_code >= 400:
            raise DeployError(
                f"vLLM {method} {path} answered {reply.status_code}: {_message(reply)}"
            )
        return reply


def hot_swap(client: VllmClient, name: str, path: str, previous: str | None = None) -> dict:
    """Serve the adapter at `path` as `name`, replacing what was there; when the smoke test
    fails, the previous adapter (`previous`, its path) is loaded back and the error raised."""
    if name in client.models():
        client.unload(name)  # vLLM refuses a duplicate name: unload first
    try:
        client.load(name, path)
        return client.smoke_test(name)
    except DeployError as exc:
        if name in client.models():
            client.unload(name)
        if previous:
            client.load(name, previous)
        raise DeployError(
            f"{name}: the new adapter failed ({exc}); "
            + ("the previous adapter is served again" if previous else "nothing is served as it")
        ) from None


def _message(reply: Any) -> str:
    try:
        body = reply.json()
    except ValueError:
        return reply.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("message") if isinstance(error, dict) else body)[:300]
