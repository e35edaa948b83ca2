"""Config sections for serving champions (`deploy:`) and for the cost estimate (`costs:`).

Secrets (API keys) never live here: they come from the environment (`foundry.config.Settings`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LocalTargetConfig(_Section):
    url: str = Field(
        "",
        description="A running `foundry serve` (e.g. http://127.0.0.1:8000) to hot-swap adapters "
        "on; empty: the deploy starts a temporary server on a free port for the smoke test.",
    )
    lora_roots: list[str] = Field(
        [],
        description="Folders besides the project folder (relative to it, or absolute) from which "
        "`foundry serve --allow-runtime-lora` loads adapters named in `/v1/load_lora_adapter`.",
    )

    @field_validator("lora_roots")
    @classmethod
    def _named_roots(cls, roots: list[str]) -> list[str]:
        if any(not root.strip() for root in roots):
            raise ValueError(
                f"an empty folder in {roots}: list each folder adapters may be loaded from, or "
                "leave `deploy.local.lora_roots` out (the project folder is always allowed)"
            )
        return roots


class VllmTargetConfig(_Section):
    url: str = Field(
        "",
        description="A running vLLM server (http://host:8000, without /v1) started with "
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True; empty: only write the launch spec and copy files.",
    )
    adapter_root: str = Field(
        ".foundry/serving/vllm",
        description="Where adapters are copied: a folder or any fsspec URL (s3://, gs://, ...).",
    )
    served_root: str = Field(
        "",
        description="The same place as the server sees it (e.g. /adapters in its container); "
        "empty: adapter_root.",
    )
    base_model: str = Field(
        "", description="The model the server runs (a hub id); empty: `base_model.name`."
    )
    max_lora_rank: int = Field(
        0, ge=0, description="The running server's --max-lora-rank; 0: any rank vLLM accepts."
    )
    port: int = Field(8000, ge=1, le=65535, description="Port in the launch spec.")


class TogetherTargetConfig(_Section):
    base_model: str = Field(
        "", description="The Together base model the adapters were trained on (e.g. "
        "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference); empty: `base_model.name`.",
    )  # fmt: skip
    endpoint_id: str = Field(
        "", description="A dedicated endpoint to attach adapters to; empty: serverless."
    )
    project_id: str = Field("", description="Together project (or TOGETHER_PROJECT_ID).")
    poll_s: float = Field(5.0, gt=0, description="Seconds between upload-job polls.")
    timeout_s: float = Field(1800.0, gt=0, description="Longest wait for an upload or a job.")


class FireworksTargetConfig(_Section):
    account_id: str = Field("", description="Fireworks account (or FIREWORKS_ACCOUNT_ID).")
    base_model: str = Field(
        "", description="The Fireworks base model (accounts/fireworks/models/...); empty: "
        "`base_model.name`.",
    )  # fmt: skip
    deployment: str = Field(
        "", description="A deployment created with addons enabled; empty: serverless."
    )
    poll_s: float = Field(5.0, gt=0, description="Seconds between validation polls.")
    timeout_s: float = Field(1800.0, gt=0, description="Longest wait for a model to be ready.")


class DeployConfig(_Section):
    target: Literal["local", "vllm", "together", "fireworks"] = Field(
        "local", description="Where champions are served."
    )
    smoke_prompt: str = Field(
        "In one sentence: what is your position on this debate?",
        description="The chat message every smoke test sends to a freshly deployed adapter.",
    )
    smoke_max_tokens: int = Field(16, ge=1, description="Tokens the smoke test asks for.")
    max_adapter_mb: float = Field(
        1024.0, gt=0, description="Largest adapter (its allowed files) that may be uploaded."
    )
    local: LocalTargetConfig = Field(default_factory=LocalTargetConfig)
    vllm: VllmTargetConfig = Field(default_factory=VllmTargetConfig)
    together: TogetherTargetConfig = Field(default_factory=TogetherTargetConfig)
    fireworks: FireworksTargetConfig = Field(default_factory=FireworksTargetConfig)
