"""An OpenAI-compatible HTTP server over one base model and many persona adapters.

`create_app(engine, base_name, adapters)` answers:
- `GET /v1/models`: the base and every loaded adapter (clients pick one with `model`);
- `POST /v1/chat/completions`: one answer per request, batched with concurrent requests across
  adapters (`deploy.batching`); `stream: true` sends it as server-sent events (the chunks come
  when the row's batch is done: rows are decoded together, not token by token);
  `persona_vector: SLUG` steers the answer by that persona's vector at its chosen strength;
- `POST /v1/load_lora_adapter` / `POST /v1/unload_lora_adapter` with vLLM's semantics: a
  duplicate name is a 400, an unknown one a 404; when runtime loading is off they answer 403, and
  `lora_roots` limits which folders load (403 for any other).
With `api_key`, every `/v1/*` request must carry `Authorization: Bearer KEY` (else 401), as with
vLLM's `--api-key`. Errors use OpenAI's shape: `{"error": {"message", "type", "code"}}`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from deploy.batching import BatchingEngine
from foundry.data.framing import BASE_ADAPTER
from foundry.training.adapters import AdapterError, attach_adapters
from foundry.training.generation import GenerationParams, GenerationRequest, prompt_tokens


def create_app(
    engine: BatchingEngine,
    base_name: str,
    adapters: dict[str, Path],
    vectors: set[str] | None = None,
    *,
    api_key: str | None = None,
    allow_runtime_lora: bool = True,
    lora_roots: Sequence[Path] | None = None,
) -> Any:
    """The FastAPI app.

    Args:
        engine: The batching engine that owns the model.
        base_name: The name the base is served under.
        adapters: Adapter name -> folder, already attached to `engine.model` under those names.
        vectors: The registered steering vectors (`<slug>@steer`, `<slug>@dpo+steer`).
        api_key: When set, every `/v1/*` request needs `Authorization: Bearer <api_key>`; a
            missing or wrong key is a 401. None: anyone who reaches the port may call it.
        allow_runtime_lora: Whether `/v1/load_lora_adapter` and `/v1/unload_lora_adapter` work;
            off, they answer 403.
        lora_roots: The folders runtime loading may read adapters from (a folder under one of
            them, after resolving symlinks and `..`); None: any folder.

    Returns:
        The FastAPI app.

    Raises:
        ValueError: `api_key` is an empty string.
    """
    if api_key is not None and not api_key:
        raise ValueError("the API key is empty: give a non-empty key, or None for no key")
    app = FastAPI(title="Persona Foundry local server")
    served: dict[str, Path | None] = {base_name: None, **adapters}
    steering = set(vectors or ())
    roots = None if lora_roots is None else [Path(root).resolve() for root in lora_roots]
    created = int(time.time())

    if api_key is not None:
        _require_key(app, api_key)

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "persona-foundry",
                    "root": base_name if name != base_name else name,
                }
                for name in served
            ],  # fmt: skip
        }

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Any:
        import asyncio

        body = await request.json()
        model = body.get("model")
        if model not in served:
            return _error(
                404, f"The model `{model}` does not exist; served: {', '.join(served)}",
                "NotFoundError",
            )  # fmt: skip
        try:
            job, params = _job(body, model, base_name, steering)
        except ValueError as exc:
            return _error(400, str(exc))
        answer_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if body.get("stream"):
            return StreamingResponse(
                _stream(engine, job, params, answer_id, model), media_type="text/event-stream"
            )
        future = engine.submit(job, params)
        try:
            text = await asyncio.wrap_future(future)
        except Exception as exc:  # noqa: BLE001 - the client gets the reason
            return _error(500, f"generation failed: {exc}", "InternalServerError")
        completion = len(engine.tokenizer(text, add_special_tokens=False)["input_ids"])
        finish = "length" if completion >= params.max_new_tokens else "stop"
        prompt = prompt_tokens(engine.tokenizer, job)
        return {
            "id": answer_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],  # fmt: skip
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    @app.post("/v1/load_lora_adapter", response_model=None)
    async def load(request: Request) -> Any:
        if not allow_runtime_lora:
            return _refused_runtime_lora()
        body = await request.json()
        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path:
            return _error(400, "both `lora_name` and `lora_path` must be provided")
        # Resolved once and loaded from there: symlinks and `..` cannot lead outside the roots.
        try:
            folder = Path(str(path)).resolve()
        except (OSError, ValueError) as exc:  # a NUL byte, a name too long
            return _error(400, f"`lora_path` {path!r} is not a usable path: {exc}")
        if roots is not None and not any(folder.is_relative_to(root) for root in roots):
            return _error(
                403, f"`lora_path` {path} is outside the folders adapters may be loaded from: "
                f"{', '.join(map(str, roots))}; copy the adapter under one of them, or add its "
                "folder to `deploy.local.lora_roots`", "PermissionDeniedError",
            )  # fmt: skip
        if name in served:
            return _error(400, f"The lora adapter '{name}' has already been loaded.")
        try:
            with engine.lock:
                engine.model = attach_adapters(engine.model, {name: folder})
        except AdapterError as exc:
            return _error(400, str(exc))
        served[name] = folder
        return f"Success: LoRA adapter '{name}' added successfully."

    @app.post("/v1/unload_lora_adapter", response_model=None)
    async def unload(request: Request) -> Any:
        if not allow_runtime_lora:
            return _refused_runtime_lora()
        body = await request.json()
        name = body.get("lora_name")
        if name not in served or name == base_name:
            return _error(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
        with engine.lock, warnings.catch_warnings():
            # requests name their adapter; PEFT's "active adapter" is irrelevant here
            warnings.filterwarnings("ignore", message="Adapter .* was active")
            engine.model.delete_adapter(name)
        del served[name]
        return f"Success: LoRA adapter '{name}' removed successfully."

    return app


def _error(
    status: int, message: str, kind: str = "invalid_request_error", code: str | None = None
) -> JSONResponse:
    """An error in OpenAI's shape; `code` defaults to the status, as vLLM sends it."""
    body = {"error": {"message": message, "type": kind, "code": code or status}}
    return JSONResponse(body, status)


def _require_key(app: FastAPI, api_key: str) -> None:
    """Answer 401 to every `/v1/*` request without `Authorization: Bearer <api_key>`."""
    expected = _digest(f"Bearer {api_key}".encode())

    @app.middleware("http")
    async def check_key(request: Request, call_next: Any) -> Any:
        if not request.url.path.startswith("/v1"):
            return await call_next(request)
        given = request.headers.get("authorization")
        if given is None:
            message = (
                "You didn't provide an API key: send `Authorization: Bearer KEY` with the key "
                "this server was started with (--api-key or FOUNDRY_SERVE_API_KEY)."
            )
        # Digests compared in constant time: the time taken tells nothing about the key.
        # Starlette decodes headers as latin-1; encoding back gives the bytes sent.
        elif not hmac.compare_digest(_digest(given.encode("latin-1")), expected):
            message = "Incorrect API key provided."
        else:
            return await call_next(request)
        refused = _error(401, message, code="invalid_api_key")
        refused.headers["WWW-Authenticate"] = "Bearer"
        return refused


def _refused_runtime_lora() -> JSONResponse:
    return _error(
        403, "runtime adapter loading is off: start `foundry serve --allow-runtime-lora` to load "
        "and unload adapters while the server runs", "PermissionDeniedError",
    )  # fmt: skip


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _job(
    body: dict[str, Any], model: str, base_name: str, steering: set[str]
) -> tuple[GenerationRequest, GenerationParams]:
    """The generation request and settings of a chat completion body."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("`messages` must be a non-empty list of {role, content}")
    system = "\n\n".join(m.get("content", "") for m in messages if m.get("role") == "system")
    turns = [m for m in messages if m.get("role") != "system"]
    if not turns or turns[-1].get("role") != "user":
        raise ValueError("the last message must come from the `user`")
    # Earlier turns are quoted into the prompt: the chat template here has one user turn.
    earlier = "".join(f"{m['role']}: {m.get('content', '')}\n" for m in turns[:-1])
    prompt = (earlier + "\n" if earlier else "") + str(turns[-1].get("content", ""))
    adapter = BASE_ADAPTER if model == base_name else model
    steer: tuple[str, ...] = ()
    if body.get("persona_vector"):
        name = f"{body['persona_vector']}@{'steer' if adapter == BASE_ADAPTER else 'dpo+steer'}"
        if name not in steering:
            raise ValueError(
                f"no persona vector {body['persona_vector']!r} is loaded; loaded: "
                f"{', '.join(sorted({n.split('@')[0] for n in steering})) or 'none'}"
            )
        steer = (name,)
    temperature = float(body.get("temperature", 0.7))
    tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 120
    params = GenerationParams(
        max_new_tokens=int(tokens),
        min_new_tokens=min(int(body.get("min_tokens", 0)), int(tokens)),  # vLLM's extra field
        temperature=temperature if temperature > 0 else 1.0,
        top_p=float(body.get("top_p", 0.95)),
        do_sample=temperature > 0,
        seed=int(body.get("seed", 0)),
    )
    request = GenerationRequest(prompt=prompt, adapter=adapter, system=system or None, steer=steer)
    return request, params


async def _stream(
    engine: BatchingEngine,
    job: GenerationRequest,
    params: GenerationParams,
    answer_id: str,
    model: str,
) -> AsyncIterator[str]:
    """Server-sent events as the batch decodes: the role, each new piece of text, then the
    finish reason (or an error event) and `[DONE]`."""
    import asyncio

    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[str | None] = asyncio.Queue()
    future = engine.submit(
        job, params, lambda text: loop.call_soon_threadsafe(pieces.put_nowait, text)
    )
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(pieces.put_nowait, None))
    created = int(time.time())

    def chunk(delta: dict[str, str], reason: str | None = None) -> str:
        payload = {
            "id": answer_id, "object": "chat.completion.chunk", "created": created,
            "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
        }  # fmt: skip
        return f"data: {json.dumps(payload)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    while (piece := await pieces.get()) is not None:
        yield chunk({"content": piece})
    if future.exception() is not None:
        failure = {
            "message": f"generation failed: {future.exception()}",
            "type": "InternalServerError",
        }
        yield f"data: {json.dumps({'error': failure})}\n\n"
    else:
        completion = len(engine.tokenizer(future.result(), add_special_tokens=False)["input_ids"])
        yield chunk({}, "length" if completion >= params.max_new_tokens else "stop")
    yield "data: [DONE]\n\n"
