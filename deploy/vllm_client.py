"""A client for vLLM's OpenAI and runtime-LoRA endpoints (also served by `foundry serve`).

The server must run with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` for `load`/`unload`; vLLM answers
a duplicate name with 400 and an unknown one with 404, which become `DeployError`s with its message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deploy import DeployError

LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the --max-lora-rank values vLLM accepts


@dataclass
class VllmClient:
    """A running vLLM (or `foundry serve`) server's OpenAI and LoRA endpoints."""

    base_url: str  # e.g. http://host:8000 (without /v1)
    api_key: str | None = None
    timeout_s: float = 60.0
    setting: str = "its URL"  # the config key naming the server, for error messages

    def models(self) -> list[str]:
        return [m["id"] for m in self._call("GET", "/v1/models").json()["data"]]

    def load(self, name: str, path: str) -> None:
        self._call("POST", "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path})

    def unload(self, name: str) -> None:
        self._call("POST", "/v1/unload_lora_adapter", {"lora_name": name})

    def chat(self, model: str, messages: list[dict[str, str]], max_tokens: int) -> str:
        body = {"model": model, "messages": messages, "max_tokens": max_tokens}
        return self._call("POST", "/v1/chat/completions", body).json()["choices"][0]["message"][
            "content"
        ]

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
                f"the server at {self.base_url} is unreachable ({type(exc).__name__}); start it "
                f"or fix {self.setting}"
            ) from None
        if reply.status_code >= 400:
            raise DeployError(
                f"vLLM {method} {path} answered {reply.status_code}: {_message(reply)}"
            )
        return reply


def _message(reply: Any) -> str:
    try:
        body = reply.json()
    except ValueError:
        return reply.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("message") if isinstance(error, dict) else body)[:300]
