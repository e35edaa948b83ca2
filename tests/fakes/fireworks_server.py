"""A fake Fireworks API on 127.0.0.1, reached through the real `fireworks` SDK (`base_url=`).

`FakeFireworksServer` serves what `deploy.fireworks` calls, with the paths and JSON shapes of
`fireworks-ai` 1.2.30: `GET /v1/accounts/{a}/models/{id}` (base models live under account
`fireworks`), `POST /v1/accounts/{a}/models` (409 when it exists), `POST ...:getUploadEndpoint`
(signed URLs pointing back here, under `/signed-upload/`), `GET ...:validateUpload`,
`GET|POST /v1/accounts/{a}/deployedModels`, `DELETE .../deployedModels/{id}` and
`POST /v1/chat/completions`. API paths need `Authorization: Bearer <api_key>`; the signed URLs
refuse any Authorization header, a wrong signature, or a body whose length differs from
`X-Goog-Content-Length-Range` and the size announced.

Controls: `fail_next(status, path_prefix)`, `ready_after_polls` (model gets answered UPLOADING
after validation before READY; None: never), `validation_error` (validation fails with that
message), `chat_failure` ("empty" or an HTTP status), `require_deployment`. Records, guarded
by one lock: `seen` (every request), `creates`, `conflicts`, `files(model_id)`, `loaded()`,
`placements()`, `faults_served`.

    with FakeFireworksServer() as server:
        client = fireworks.Fireworks(api_key=server.api_key, account_id=server.account_id,
                                     base_url=server.base_url)
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from http.client import HTTPMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.http_fake import ApiError, FakeHttpServer, FaultScript, Reply

VALID_API_KEY = "fake-fireworks-test-key-0123456789"
ACCOUNT_ID = "persona-test-account"
BASE_MODEL = "accounts/fireworks/models/llama-v3p1-8b-instruct"
UPLOAD_PATH = "/signed-upload/"
MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 412: 9, 429: 8, 500: 13, 503: 14}
WORDS = "argue weigh doubt civic reason fair trade labor memory duty balance risk".split()


@dataclass
class _Model:
    account: str
    model_id: str
    kind: str
    state: str
    peft: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # announced by getUploadEndpoint
    files: dict[str, bytes] = field(default_factory=dict)
    token: str = ""
    validated: bool = False
    polls_left: int | None = 0
    error: str | None = None  # why validation failed; kept until the files are uploaded again

    def as_json(self) -> dict[str, Any]:
        error = self.error if self.state != "READY" else None
        status = {"code": "INVALID_ARGUMENT", "message": error} if error else {"code": "OK"}
        body: dict[str, Any] = {
            "name": f"accounts/{self.account}/models/{self.model_id}",
            "kind": self.kind,
            "state": self.state,
            "status": status,
            "supportsLora": self.kind == "HF_BASE_MODEL",
            "createTime": "2026-11-01T00:00:00Z",
        }
        if self.peft:
            body["peftDetails"] = self.peft
        return body


@dataclass(frozen=True)
class Seen:
    """One request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]


def reply_text(model: str, prompt: str, max_tokens: int) -> str:
    """The deterministic answer a loaded adapter gives (a few words chosen by a hash)."""
    digest = hashlib.sha256(f"{model}\0{prompt}".encode()).digest()
    return " ".join(WORDS[b % len(WORDS)] for b in digest[: max(1, min(max_tokens, 8))])


class FakeFireworksServer(FakeHttpServer):
    """A fake Fireworks API in a background thread; use it as a context manager."""

    def __init__(
        self,
        *,
        api_key: str = VALID_API_KEY,
        account_id: str = ACCOUNT_ID,
        base_models: tuple[str, ...] = (BASE_MODEL,),
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.account_id = account_id
        self.ready_after_polls: int | None = 0
        self.validation_error: str | None = None
        self.chat_failure: str | int | None = None
        self.require_deployment = False  # refuse LoRA loads without one, as the SDK docs warn
        self.seen: list[Seen] = []
        self.faults_served = 0
        self.creates = 0  # model create requests that reached the handler (409s included)
        self.conflicts = 0
        self._faults = FaultScript()  # targets are path prefixes
        self._models: dict[tuple[str, str], _Model] = {}
        for name in base_models:
            _, account, _, model_id = name.split("/")
            self._models[account, model_id] = _Model(account, model_id, "HF_BASE_MODEL", "READY")
        self._deployed: dict[str, dict[str, Any]] = {}  # deployed model id -> DeployedModel
        self._ids = 0

    # Controls and records

    def fail_next(self, status: int, path_prefix: str, count: int = 1) -> None:
        """Answer the next `count` requests whose path starts with `path_prefix` with `status`."""
        self._faults.add(path_prefix, status, count)

    def count(self, method: str, path_prefix: str) -> int:
        with self._lock:
            return sum(
                1 for s in self.seen if s.method == method and s.path.startswith(path_prefix)
            )

    def files(self, model_id: str) -> dict[str, bytes]:
        """The files uploaded to this account's `model_id`."""
        with self._lock:
            model = self._models.get((self.account_id, model_id))
            return dict(model.files) if model else {}

    def loaded(self) -> set[str]:
        """Served names of every loaded LoRA."""
        with self._lock:
            return {d["model"] for d in self._deployed.values()}

    def placements(self) -> set[tuple[str, str]]:
        """(served name, deployment) of every loaded LoRA; deployment "" means serverless."""
        with self._lock:
            return {(d["model"], d["deployment"]) for d in self._deployed.values()}

    def unload_all(self) -> None:
        """Unload everything behind the client's back (as a console user could)."""
        with self._lock:
            self._deployed.clear()

    # Requests

    def respond(self, method: str, target: str, headers: HTTPMessage, body: bytes) -> Reply:
        parts = urlsplit(target)
        path = unquote(parts.path)
        with self._lock:
            self.seen.append(Seen(method, path, {k.lower(): v for k, v in headers.items()}))
        try:
            self._take_fault(path)
            if path.startswith(UPLOAD_PATH):
                self._signed_put(method, path, parse_qs(parts.query), headers, body)
                return Reply(200)
            if headers.get("authorization") != f"Bearer {self.api_key}":
                raise ApiError(401, "invalid API key")
            payload = json.loads(body) if body else {}
            return Reply.json(self._route(method, path, payload))
        except ApiError as exc:
            return Reply(exc.status, self._error_body(path, exc))

    def _take_fault(self, path: str) -> None:
        fault = self._faults.take_prefix(path)
        if fault is not None:
            with self._lock:
                self.faults_served += 1
            raise ApiError(fault.status, "the service is temporarily unavailable")

    @staticmethod
    def _error_body(path: str, exc: ApiError) -> bytes:
        if path.startswith("/v1/chat"):  # inference errors are OpenAI-shaped
            error = {"object": "error", "type": "invalid_request_error", "message": exc.message}
            return json.dumps({"error": error}).encode()
        code = GRPC_CODES.get(exc.status, 2)
        return json.dumps({"code": code, "message": exc.message, "details": []}).encode()

    def _route(self, method: str, path: str, payload: dict[str, Any]) -> Any:
        if method == "POST" and path == "/v1/chat/completions":
            return self._chat(payload)
        match = re.fullmatch(
            r"/v1/accounts/([^/]+)/(models|deployedModels)(?:/([^/:]+))?(:\w+)?", path
        )
        if not match:
            raise ApiError(404, f"no route for {method} {path}")
        account, kind, item, verb = match.groups()
        if account != self.account_id and not (account == "fireworks" and method == "GET"):
            raise ApiError(403, f"permission denied on account {account}")
        with self._lock:
            if kind == "deployedModels":
                return self._deployed_route(method, item, payload)
            if method == "POST" and item is None:
                return self._create(payload)
            model = self._models.get((account, item or ""))
            if model is None:
                raise ApiError(404, f"model accounts/{account}/models/{item} not found")
            if method == "GET" and verb is None:
                return self._poll(model)
            if method == "POST" and verb == ":getUploadEndpoint":
                return self._upload_endpoint(model, payload)
            if method == "GET" and verb == ":validateUpload":
                return self._validate(model)
        raise ApiError(404, f"no route for {method} {path}")

    # Models (the lock is held)

    def _create(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.creates += 1
        model_id, model = payload.get("modelId", ""), payload.get("model") or {}
        peft = model.get("peftDetails") or {}
        if not MODEL_ID.match(model_id):
            raise ApiError(400, f"modelId {model_id!r} must match {MODEL_ID.pattern}")
        if model.get("kind") != "HF_PEFT_ADDON" or not 4 <= int(peft.get("r", 0)) <= 64:
            raise ApiError(400, "a HF_PEFT_ADDON needs peftDetails with r in 4..64")
        _, account, _, base_id = (peft.get("baseModel") or "///").split("/")[:4]
        if (account, base_id) not in self._models:
            raise ApiError(400, f"base model {peft.get('baseModel')} not found")
        if (self.account_id, model_id) in self._models:
            self.conflicts += 1
            raise ApiError(
                409, f"model accounts/{self.account_id}/models/{model_id} already exists"
            )
        created = _Model(self.account_id, model_id, "HF_PEFT_ADDON", "UPLOADING", peft)
        self._models[self.account_id, model_id] = created
        return created.as_json()

    def _upload_endpoint(self, model: _Model, payload: dict[str, Any]) -> dict[str, Any]:
        sizes = payload.get("filenameToSize") or {}
        if model.state == "READY" or not sizes:
            raise ApiError(400, "the model is READY or no files were named")
        model.sizes = {name: int(size) for name, size in sizes.items()}
        model.files, model.token, model.validated = {}, secrets.token_hex(8), False
        model.error = None
        prefix = f"{self.base_url}{UPLOAD_PATH}{model.account}/{model.model_id}"
        urls = {name: f"{prefix}/{name}?X-Goog-Signature={model.token}" for name in sizes}
        return {"filenameToSignedUrls": urls}

    def _validate(self, model: _Model) -> dict[str, Any]:
        got = {name: len(data) for name, data in model.files.items()}
        if not model.sizes or got != model.sizes:
            raise ApiError(400, f"uploaded files {got} differ from those announced {model.sizes}")
        config = json.loads(model.files.get("adapter_config.json", b"{}"))
        if config.get("r") != model.peft.get("r"):
            raise ApiError(400, "adapter_config.json r differs from peftDetails.r")
        model.validated, model.polls_left = True, self.ready_after_polls
        model.error = self.validation_error
        return {"warnings": []}

    def _poll(self, model: _Model) -> dict[str, Any]:
        if model.validated and model.state != "READY" and not model.error:
            if model.polls_left == 0:
                model.state = "READY"
            elif model.polls_left is not None:
                model.polls_left -= 1
        return model.as_json()

    def _signed_put(self, method: str, path: str, query: Any, headers: Any, body: bytes) -> None:
        if method != "PUT":
            raise ApiError(405, "signed URLs take PUT")
        if headers.get("authorization"):
            raise ApiError(400, "a signed URL request may not carry an Authorization header")
        account, model_id, name = path.removeprefix(UPLOAD_PATH).split("/")
        with self._lock:
            model = self._models.get((account, model_id))
            if model is None or query.get("X-Goog-Signature") != [model.token]:
                raise ApiError(403, "SignatureDoesNotMatch")
            if headers.get("content-type") != "application/octet-stream":
                raise ApiError(403, "SignatureDoesNotMatch: content-type was signed")
            size = model.sizes.get(name, -1)
            if headers.get("x-goog-content-length-range") != f"{size},{size}" or len(body) != size:
                raise ApiError(400, "EntityTooLarge or EntityTooSmall: length out of range")
            model.files[name] = body

    # Deployed models (the lock is held)

    def _deployed_route(self, method: str, item: str | None, payload: dict[str, Any]) -> Any:
        if method == "GET" and item is None:
            return {
                "deployedModels": list(self._deployed.values()),
                "totalSize": len(self._deployed),
            }
        if method == "POST" and item is None:
            return self._load(payload)
        if method == "DELETE" and item is not None:
            if self._deployed.pop(item, None) is None:
                raise ApiError(404, f"deployed model {item} not found")
            return {}
        raise ApiError(404, f"no route for {method} deployedModels/{item}")

    def _load(self, payload: dict[str, Any]) -> dict[str, Any]:
        served, deployment = payload.get("model", ""), payload.get("deployment", "")
        _, account, _, model_id = (served + "///").split("/")[:4]
        model = self._models.get((account, model_id))
        if model is None or model.state != "READY":
            raise ApiError(400, f"model {served} does not exist or is not READY")
        if self.require_deployment and not deployment:
            raise ApiError(400, "LoRA models require a dedicated deployment")
        if any(d["model"] == served and d.get("deployment", "") == deployment
               for d in self._deployed.values()):  # fmt: skip
            raise ApiError(409, f"{served} is already deployed")
        self._ids += 1
        deployed_id = f"{model_id[:40]}-{self._ids:04d}"
        record = {
            "name": f"accounts/{self.account_id}/deployedModels/{deployed_id}",
            "model": served,
            "deployment": deployment,
            "state": "DEPLOYED",
            "serverless": False,
        }
        self._deployed[deployed_id] = record
        return {**record, "state": "DEPLOYING"}

    def _chat(self, payload: dict[str, Any]) -> dict[str, Any]:
        model, messages = payload.get("model", ""), payload.get("messages") or []
        if not messages or not isinstance(payload.get("max_tokens"), int):
            raise ApiError(400, "messages and max_tokens are required")
        if model not in self.loaded():
            raise ApiError(404, "Model not found, inaccessible, and/or not deployed")
        if isinstance(self.chat_failure, int):
            raise ApiError(self.chat_failure, "inference failed")
        text = (
            ""
            if self.chat_failure == "empty"
            else reply_text(model, str(messages[-1].get("content", "")), payload["max_tokens"])
        )
        choice = {"index": 0, "message": {"role": "assistant", "content": text},
                  "finish_reason": "stop"}  # fmt: skip
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1,
                "model": model, "choices": [choice]}  # fmt: skip
