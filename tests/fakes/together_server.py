"""A fake Together API on 127.0.0.1, reached through the real `together` SDK.

`FakeTogetherServer` serves exactly what `deploy.together` uses, with the SDK's paths and JSON
shapes: fine-tuning limits (`GET /v1/fine-tunes/models/limits`), supported models
(`GET /v2/supported-models`), the project's model registry (`POST|GET /v2/projects/{p}/models`,
`GET .../models/{id}`, `GET .../models/{id}/revisions`), file uploads (`POST .../models/upload/
create`, a PUT per part to a "signed" URL `/_signed/...` that must NOT carry the API key,
`POST .../models/upload/complete`, which starts a validation job), dedicated endpoints
(`GET .../endpoints/{e}`, adapters create/list/delete per deployment) and
`POST /v1/chat/completions`, which answers for a validated adapter (attached, when endpoints
exist) and 404s an unknown model. Every other route needs `Authorization: Bearer <api_key>`.

Controls: `fail_next(status, path_prefix)`, `polls_before_valid`, `fail_validation`,
`chat_mode` ("ok" | "empty" | "error"), `add_model` (an upload left unfinished), `add_endpoint`.
Records, guarded by one lock: `calls` (method, path), `received` (model id -> path -> bytes),
`model_creates`, `part_puts`, `puts_with_auth`.

    with FakeTogetherServer() as server:
        client = together.Together(api_key=server.api_key, base_url=server.base_url, ...)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.client import HTTPMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http_fake import ApiError, FakeHttpServer, FaultScript, Reply

VALID_API_KEY = "fake-together-test-key-0123456789"
BASE_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
BASE_MODEL_ID = "ml_base_llama31_8b"
PROJECT_ID = "proj_fake_foundry"
PROJECT_SLUG = "foundry-test"
MAX_RANK = 64
VALID = "REVISION_VALIDATION_STATUS_SUCCESS"
CREATED = "2026-01-01T00:00:00Z"
VALIDATION_ERROR = {
    "message": "adapter_config.json: unsupported target module",
    "rule": "lora",
    "severity": "error",
}


@dataclass
class _Revision:
    id: str
    created_at: str
    polls: int = 0
    status: str = "REVISION_VALIDATION_STATUS_PENDING"
    errors: list[dict[str, str]] = field(default_factory=list)


@dataclass
class _Model:
    id: str
    name: str  # bare
    base_model_id: str
    description: str = ""
    revisions: list[_Revision] = field(default_factory=list)

    @property
    def is_valid(self) -> bool:
        return bool(self.revisions) and self.revisions[-1].status == VALID


def reply_text(model: str, prompt: str, max_tokens: int) -> str:
    """The fake's deterministic answer for `model` and the last user message."""
    digest = hashlib.sha256(f"{model}\0{prompt}".encode()).hexdigest()[:8]
    words = f"As {model.rsplit('/', 1)[-1]} I hold position {digest} firmly.".split()
    return " ".join(words[: max(1, max_tokens)])


class FakeTogetherServer(FakeHttpServer):
    """A fake Together API in a background thread; use it as a context manager."""

    def __init__(self, *, api_key: str = VALID_API_KEY, max_rank: int = MAX_RANK) -> None:
        super().__init__()
        self.api_key = api_key
        self.max_rank = max_rank
        self.polls_before_valid = 0  # revision polls answered PENDING before the job ends
        self.fail_validation = False  # the validation job ends FAILED
        self.chat_mode = "ok"  # "empty": empty text; "error": 500
        self.calls: list[tuple[str, str]] = []
        self.received: dict[str, dict[str, bytes]] = {}
        self.model_creates = 0
        self.part_puts = 0
        self.puts_with_auth = 0
        self._models: dict[str, _Model] = {}
        self._endpoints: dict[str, list[str]] = {}  # endpoint -> deployments
        self._attached: dict[str, dict[str, dict[str, str]]] = {}  # deployment -> id -> row
        self._uploads: dict[str, dict[str, Any]] = {}  # upload id -> {model, path, parts}
        self._faults = FaultScript()  # targets are path prefixes
        self._ids = 0

    # Controls

    def fail_next(self, status: int, path_prefix: str, count: int = 1) -> None:
        """Answer the next `count` requests whose path starts with `path_prefix` with `status`."""
        self._faults.add(path_prefix, status, count)

    def add_model(self, name: str) -> str:
        """An adapter model registered without files (an upload that never finished); its id."""
        model = _Model(self._next_id("ml"), name, BASE_MODEL_ID)
        with self._lock:
            self._models[model.id] = model
        return model.id

    def add_endpoint(self, endpoint_id: str, deployments: tuple[str, ...] = ("dep_1",)) -> None:
        with self._lock:
            self._endpoints[endpoint_id] = list(deployments)
            for deployment in deployments:
                self._attached.setdefault(deployment, {})

    def served_name(self, model_id: str) -> str:
        return f"{PROJECT_SLUG}/{self._models[model_id].name}"

    def model_ids(self, name: str) -> list[str]:
        """Ids of the models with bare name `name` (Together keeps names unique)."""
        with self._lock:
            return [m.id for m in self._models.values() if m.name == name]

    def attached(self, deployment: str = "dep_1") -> set[str]:
        """Adapter model ids attached to `deployment`."""
        with self._lock:
            return {row["adapterModelId"] for row in self._attached.get(deployment, {}).values()}

    def upload_calls(self) -> list[tuple[str, str]]:
        """Requests that create models or move files."""
        with self._lock:
            return [
                (m, p) for m, p in self.calls if "/upload" in p or p.startswith("/_signed") or (
                    m == "POST" and p.endswith("/models"))
            ]  # fmt: skip

    # Requests

    def respond(self, method: str, target: str, headers: HTTPMessage, body: bytes) -> Reply:
        """Answer one HTTP request (called from the handler threads)."""
        url = urlsplit(target)
        path, query = url.path.rstrip("/"), parse_qs(url.query)
        with self._lock:
            self.calls.append((method, path))
        try:
            if path.startswith("/_signed/"):
                return self._put_part(method, path, headers, body)
            bearer = (headers.get("authorization") or "").removeprefix("Bearer ")
            if bearer != self.api_key:
                raise ApiError(
                    401, f"Invalid API key provided: {bearer}"
                )  # echoed, as some APIs do
            self._take_fault(path)
            payload = self._route(method, path, query, json.loads(body) if body else None)
            return Reply.json(payload)
        except ApiError as exc:
            error = {"message": exc.message, "type": "invalid_request_error", "code": exc.status}
            return Reply.json({"error": error}, exc.status)

    def _take_fault(self, path: str) -> None:
        fault = self._faults.take_prefix(path)
        if fault is not None:
            raise ApiError(fault.status, "The server is temporarily unavailable (scripted)")

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._ids += 1
            return f"{prefix}_{self._ids:06d}"

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Any:
        parts = path.strip("/").split("/")
        if path == "/v1/fine-tunes/models/limits" and method == "GET":
            return self._limits(query.get("model_name", [""])[0])
        if path == "/v2/supported-models" and method == "GET":
            return self._supported(query.get("search", [""])[0])
        if path == "/v1/chat/completions" and method == "POST":
            return self._chat(body)
        if parts[:2] == ["v2", "projects"] and len(parts) >= 4:
            if parts[2] != PROJECT_ID:
                raise ApiError(404, f"project {parts[2]} not found")
            if parts[3] == "models":
                return self._route_models(method, parts[4:], body)
            if parts[3] == "endpoints":
                return self._route_endpoints(method, parts[4:], query, body)
        raise ApiError(404, f"no route for {method} {path}")

    def _limits(self, model_name: str) -> dict[str, Any]:
        if model_name != BASE_MODEL:
            raise ApiError(404, f"Model {model_name} is not available for fine-tuning")
        lora = {
            "default_rank": 8, "max_rank": self.max_rank, "min_batch_size": 8,
            "max_batch_size": 32, "max_batch_size_dpo": 16,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        }  # fmt: skip
        return {
            "model_name": BASE_MODEL, "lora_training": lora, "full_training": None,
            "default_gradient_accumulation_steps": 1, "max_learning_rate": 1.0,
            "min_learning_rate": 0.0, "max_num_checkpoints": 10, "max_num_epochs": 20,
            "max_num_evals": 100, "max_seq_length_sft": 8192, "max_seq_length_dpo": 8192,
            "min_max_seq_length": 512, "merge_output_lora": False,
            "supports_full_training": True, "supports_reasoning": False,
            "supports_tools": True, "supports_vision": False,
        }  # fmt: skip

    def _supported(self, search: str) -> dict[str, Any]:
        profile = {
            "model": f"projects/proj_public/models/{BASE_MODEL_ID}", "modelName": BASE_MODEL,
            "profileId": "cfg_1", "config": "projects/proj_public/configs/cfg_1",
            "certifiedConfigRevisionId": "cfg_1", "certifiedModelRevisionId": "rev_base",
            "gpuType": "h100-80gb", "gpuCount": 1, "parallelism": "TP1",
            "performanceBenchmarks": {},
        }  # fmt: skip
        model = {
            "id": BASE_MODEL_ID, "name": BASE_MODEL, "displayName": "Llama 3.1 8B Instruct",
            "baseModel": "", "baseModelId": "", "capabilities": ["CAPABILITY_CHAT"],
            "createdAt": CREATED, "updatedAt": CREATED,
            "deploymentProfiles": [profile], "displayType": "chat", "publisher": "meta-llama",
            "inputModalities": ["MODALITY_TEXT"], "outputModalities": ["MODALITY_TEXT"],
            "products": ["PRODUCT_DEDICATED", "PRODUCT_FINE_TUNING"],
            "status": "SUPPORTED_MODEL_STATUS_SUPPORTED",
        }  # fmt: skip
        found = search.lower() in BASE_MODEL.lower()
        return {"data": [model] if found else [], "next_cursor": None, "object": "list"}

    # Models and uploads

    def _route_models(self, method: str, rest: list[str], body: Any) -> Any:
        if not rest:
            if method == "POST":
                return self._create_model(body or {})
            with self._lock:
                models = [self._model_json(m) for m in self._models.values()]
            return {"data": models, "next_cursor": None, "object": "list"}
        if rest[0] == "upload" and method == "POST" and rest[1:] in (["create"], ["complete"]):
            return self._upload_create(body) if rest[1] == "create" else self._complete(body)
        model = self._models.get(rest[0])
        if model is None:
            raise ApiError(404, f"model {rest[0]} not found")
        if rest[1:] == ["revisions"] and method == "GET":
            return {"data": self._poll_revisions(model), "next_cursor": None, "object": "list"}
        if not rest[1:] and method == "GET":
            return self._model_json(model)
        raise ApiError(404, f"no route for {method} models/{'/'.join(rest)}")

    def _model_json(self, model: _Model) -> dict[str, Any]:
        return {
            "id": model.id, "name": f"{PROJECT_SLUG}/{model.name}", "organizationId": "org_fake",
            "projectId": PROJECT_ID, "visibility": "VISIBILITY_PRIVATE",
            "weights": {"type": "WEIGHTS_TYPE_ADAPTER"}, "description": model.description,
            "baseModel": f"projects/proj_public/models/{model.base_model_id}",
            "baseModelId": model.base_model_id,
        }  # fmt: skip

    def _create_model(self, body: dict[str, Any]) -> dict[str, Any]:
        name = str(body.get("name", "")).removeprefix(f"{PROJECT_SLUG}/")
        if not name or body.get("type") not in ("adapter", "adapters"):
            raise ApiError(400, "name and type (model or adapter) are required")
        if body.get("baseModelId") != BASE_MODEL_ID:
            raise ApiError(400, f"base model {body.get('baseModelId')} is not supported")
        with self._lock:
            self.model_creates += 1
            if any(m.name == name for m in self._models.values()):
                raise ApiError(409, f"model {PROJECT_SLUG}/{name} already exists")
        model = _Model(self._next_id("ml"), name, BASE_MODEL_ID, body.get("description", ""))
        with self._lock:
            self._models[model.id] = model
        return self._model_json(model)

    def _upload_create(self, body: dict[str, Any]) -> dict[str, Any]:
        model_id = body.get("objectId", "")
        if model_id not in self._models:
            raise ApiError(404, f"model {model_id} not found")
        plan = []
        for offered in body.get("files") or []:
            upload_id = self._next_id("up")
            count = int(offered["numParts"])
            with self._lock:
                self._uploads[upload_id] = {"model": model_id, "path": offered["path"], "parts": {}}
            parts = [
                {"partNumber": n, "url": f"{self.base_url}/_signed/{upload_id}/{n}?sig=abc",
                 "headers": {"Content-Type": "application/octet-stream"}}
                for n in range(1, count + 1)
            ]  # fmt: skip
            plan.append({"path": offered["path"], "uploadId": upload_id, "parts": parts})
        return {"files": plan}

    def _put_part(self, method: str, path: str, headers: Any, body: bytes) -> Reply:
        with self._lock:
            self.part_puts += 1
            if headers.get("authorization"):
                self.puts_with_auth += 1
                return Reply.json({"error": {"message": "only the URL signature is accepted"}}, 400)
        try:
            self._take_fault(path)
        except ApiError as exc:
            return Reply.json({"error": {"message": exc.message}}, exc.status)
        _, _, upload_id, number = path.split("/")
        upload = self._uploads.get(upload_id)
        if method != "PUT" or upload is None:
            return Reply.json({"error": {"message": "no such upload"}}, 404)
        with self._lock:
            upload["parts"][int(number)] = body
        return Reply.json(None, headers={"ETag": f'"{hashlib.md5(body).hexdigest()}"'})  # noqa: S324

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        model = self._models.get(body.get("objectId", ""))
        if model is None:
            raise ApiError(404, f"model {body.get('objectId')} not found")
        files = {}
        for done in body.get("files") or []:
            upload = self._uploads.get(done["uploadDetails"]["uploadId"], {})
            parts = upload.get("parts", {})
            numbers = [int(p["partNumber"]) for p in done["uploadDetails"]["parts"]]
            if sorted(parts) != sorted(numbers):
                raise ApiError(400, f"{done['path']}: parts {numbers} were not all uploaded")
            files[done["path"]] = b"".join(parts[n] for n in sorted(parts))
        revision = _Revision(self._next_id("rev"), datetime.now(UTC).isoformat())
        with self._lock:
            self.received[model.id] = files
            model.revisions.append(revision)
        return {"revisionId": revision.id}

    def _poll_revisions(self, model: _Model) -> list[dict[str, Any]]:
        """Revision list; each poll moves a pending validation job towards its end."""
        with self._lock:
            for revision in model.revisions:
                revision.polls += 1
                if revision.status.endswith("PENDING") and revision.polls > self.polls_before_valid:
                    revision.status = "REVISION_VALIDATION_STATUS_" + (
                        "FAILED" if self.fail_validation else "SUCCESS")  # fmt: skip
                    if self.fail_validation:
                        revision.errors = [dict(VALIDATION_ERROR)]
            return [
                {"revisionId": r.id, "createdAt": r.created_at, "validationStatus": r.status,
                 "validationErrors": r.errors}
                for r in model.revisions
            ]  # fmt: skip

    # Endpoints and chat

    def _route_endpoints(
        self, method: str, rest: list[str], query: dict[str, list[str]], body: Any
    ) -> Any:
        deployments = self._endpoints.get(rest[0])
        if deployments is None:
            raise ApiError(404, f"endpoint {rest[0]} not found")
        if not rest[1:] and method == "GET":
            return self._endpoint_json(rest[0], deployments)
        if len(rest) >= 4 and rest[1] == "deployments" and rest[3] == "adapters":
            if rest[2] not in deployments:
                raise ApiError(404, f"deployment {rest[2]} not found")
            return self._route_adapters(method, rest[2], rest[4:], query, body)
        raise ApiError(404, f"no route for {method} endpoints/{'/'.join(rest)}")

    def _endpoint_json(self, endpoint_id: str, deployments: list[str]) -> dict[str, Any]:
        summaries = [
            {"id": d, "name": f"{PROJECT_SLUG}/{endpoint_id}/{d}", "createdAt": CREATED,
             "state": "DEPLOYMENT_STATE_READY", "estimatedEffectiveTrafficShare": 1.0,
             "model": f"projects/proj_public/models/{BASE_MODEL_ID}", "modelId": BASE_MODEL_ID,
             "autoscaling": {}}
            for d in deployments
        ]  # fmt: skip
        return {
            "id": endpoint_id, "name": f"{PROJECT_SLUG}/{endpoint_id}", "projectId": PROJECT_ID,
            "deployments": summaries, "endpointType": "ENDPOINT_TYPE_DEDICATED", "etag": "e1",
            "trafficSplit": [], "visibility": "VISIBILITY_PRIVATE",
            "createdAt": CREATED, "updatedAt": CREATED,
        }  # fmt: skip

    def _route_adapters(
        self, method: str, deployment: str, rest: list[str], query: dict[str, list[str]], body: Any
    ) -> Any:
        rows = self._attached[deployment]
        if not rest and method == "GET":
            with self._lock:
                return {"data": list(rows.values()), "next_cursor": None, "object": "list"}
        if not rest and method == "POST":
            model_id = (body or {}).get("adapterModelId", "")
            model = self._models.get(model_id)
            if model is None or not model.is_valid:
                raise ApiError(400, f"adapter model {model_id} has no validated revision")
            with self._lock:
                if any(r["adapterModelId"] == model_id for r in rows.values()):
                    raise ApiError(409, f"adapter {model_id} is already attached")
            row_id = self._next_id("dad")
            cluster = {
                "adapterModelId": model_id, "clusterId": "c1", "failedPodCount": 0,
                "readyPodCount": 1, "totalPodCount": 1, "state": "ADAPTER_LOAD_STATE_READY",
            }  # fmt: skip
            row = {
                "id": row_id, "adapterModelId": model_id, "etag": f"etag-{row_id}",
                "desiredRevisionId": model.revisions[-1].id, "perCluster": [cluster],
            }  # fmt: skip
            with self._lock:
                rows[row_id] = row
            return row
        if len(rest) == 1 and method == "DELETE":
            with self._lock:
                row = rows.get(rest[0])
                if row is None:
                    raise ApiError(404, f"adapter {rest[0]} not found")
                if query.get("etag", [""])[0] != row["etag"]:
                    raise ApiError(409, "etag mismatch")
                del rows[rest[0]]
            return {}
        raise ApiError(404, f"no route for {method} adapters/{'/'.join(rest)}")

    def _chat(self, body: Any) -> dict[str, Any]:
        name = str((body or {}).get("model", ""))
        with self._lock:
            model = next(
                (m for m in self._models.values() if f"{PROJECT_SLUG}/{m.name}" == name), None
            )
            rows = [r for table in self._attached.values() for r in table.values()]
            attached = {r["adapterModelId"] for r in rows}
            servable = model is not None and model.is_valid
            if servable and self._endpoints:
                servable = model.id in attached
        if not servable:
            raise ApiError(404, f"Unable to access model {name}. Please visit the models page.")
        if self.chat_mode == "error":
            raise ApiError(500, "Internal server error (scripted)")
        prompt = body["messages"][-1]["content"]
        text = "" if self.chat_mode == "empty" else reply_text(name, prompt, body["max_tokens"])
        return {
            "id": self._next_id("chat"), "object": "chat.completion", "created": 1767225600,
            "model": name, "prompt": [],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": len(text.split()),
                      "total_tokens": 12 + len(text.split())},
        }  # fmt: skip
