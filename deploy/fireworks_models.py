"""Persona adapters as Fireworks models: their names, their upload, and the wait for READY.

Kept apart from `deploy.fireworks` (the target: checks, serving, chat) because getting an addon's
bytes to Fireworks is its own procedure: the addon model is created, its two adapter files are
PUT to the signed URLs Fireworks hands out (with a plain HTTP client: the API key never goes
there), the upload is validated, and the model is polled until READY. Every SDK call goes through
the caller's `call` (retried, failures as `DeployError`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fireworks
import httpx

from deploy import DeployError
from deploy.bundle import AdapterBundle

MODEL_PREFIX = "persona-"


def fireworks_base_name(name: str) -> str:
    """`accounts/<account>/models/<id>` for a base (a bare id is a Fireworks-provided model)."""
    hint = (
        "set `deploy.fireworks.base_model` to the Fireworks model your adapters were trained "
        "on (e.g. accounts/fireworks/models/llama-v3p1-8b-instruct)"
    )
    if name == "tiny":
        raise DeployError(
            f"the `tiny` base is trained locally and Fireworks cannot serve it; {hint}"
        )
    if "/" not in name:
        return f"accounts/fireworks/models/{name}"
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "accounts" or parts[2] != "models":
        raise DeployError(f"{name!r} is not a Fireworks model name; {hint}")
    return name


def model_id_for(bundle: AdapterBundle) -> str:
    """The upload's model id, named by content (Fireworks ids: at most 63 characters)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", bundle.slug.lower())[: 63 - len(MODEL_PREFIX) - 13]
    slug = slug.strip("-")
    return f"{MODEL_PREFIX}{slug}-{bundle.short_digest}"


def create_addon(
    call: Callable[..., Any],
    client: fireworks.Fireworks,
    model_id: str,
    base_model: str,
    bundle: AdapterBundle,
) -> bool:
    """Create model `model_id` as a PEFT addon of `base_model`; False: it exists already (409)."""
    peft = {
        "base_model": base_model,
        "r": bundle.rank,
        "target_modules": list(bundle.target_modules),
    }
    created = call(
        f"creating model {model_id}",
        lambda: client.models.create(
            model_id=model_id, model={"kind": "HF_PEFT_ADDON", "peft_details": peft}
        ),
        ok=(409,),
    )
    return created is not None


def send_files(
    call: Callable[..., Any],
    client: fireworks.Fireworks,
    http: httpx.Client,
    model_id: str,
    files: dict[str, Path],
) -> None:
    """PUT each file to the signed URL Fireworks gives for it, then ask Fireworks to validate."""
    sizes = {name: str(path.stat().st_size) for name, path in files.items()}
    answer = call(
        f"upload URLs for {model_id}",
        lambda: client.models.get_upload_endpoint(model_id, filename_to_size=sizes),
    )
    urls = (answer and answer.filename_to_signed_urls) or {}
    missing = sorted(set(sizes) - set(urls))
    if missing:
        raise DeployError(f"Fireworks gave no upload URL for {missing} of model {model_id}")
    for name, path in files.items():
        data = path.read_bytes()
        call(f"uploading {name} of {model_id}", lambda u=urls[name], d=data: put(http, u, d))
    call(f"validating model {model_id}", lambda: client.models.validate_upload(model_id))


def put(http: httpx.Client, url: str, data: bytes) -> None:
    """PUT to a signed URL: no API key, the exact length the URL was signed for."""
    headers = {
        "Content-Type": "application/octet-stream",
        "X-Goog-Content-Length-Range": f"{len(data)},{len(data)}",
    }
    http.put(url, content=data, headers=headers).raise_for_status()


def wait_ready(
    get_model: Callable[[str], Any],
    model_id: str,
    who: str,
    *,
    base_model: str,
    timeout_s: float,
    poll_s: float,
) -> None:
    """Poll until the model is READY; a failed validation or the timeout is an error."""
    deadline = time.monotonic() + timeout_s
    while True:
        model = get_model(model_id)
        if model is None:
            raise DeployError(f"{who}: Fireworks model {model_id} vanished during validation")
        if model.state == "READY":
            return
        code = model.status.code if model.status else None
        if code not in (None, "OK"):
            message = model.status.message if model.status else ""
            raise DeployError(
                f"{who}: Fireworks did not accept model {model_id}: state {model.state}, "
                f"{code}: {message}; check the adapter matches base {base_model}"
            )
        if time.monotonic() >= deadline:
            raise DeployError(
                f"{who}: Fireworks model {model_id} is still {model.state} after "
                f"{timeout_s:.0f}s; raise `deploy.fireworks.timeout_s` or deploy again"
            )
        time.sleep(poll_s)
