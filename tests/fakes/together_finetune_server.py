"""A fake Together fine-tuning API on 127.0.0.1, reached through the real `together` SDK.

`FakeTogetherFinetuneServer` serves what `client.files.upload` and `client.fine_tuning.*` call:
`POST /v1/files` (answered 302 with `Location` and `X-Together-File-Id`), the presigned
`PUT /_storage/{file_id}` (no API key expected there), `POST /v1/files/{id}/preprocess`,
`GET /v1/fine-tunes/models/limits`, `POST /v1/fine-tunes/estimate-price`, `POST /v1/fine-tunes`,
`GET /v1/fine-tunes/{id}` (pending -> running -> completed after `polls_before_done` polls, or
`error` with a `job_error` event), `GET /v1/fine-tunes/{id}/metrics` and
`GET /v1/finetune/download?ft_id=...&checkpoint=adapter` (a tar of `adapter_files`, gzip by
default, zstd or plain with `archive_format`).

Controls: `fail_next(status, count, route)` (scripted error answers), `fail_next_job(message)`
(the next job created ends in `error`), `adapter_files`. Records, guarded by one lock:
`creates` (request bodies), `job_ids`, `file_ids`, `retrieves`, `downloads`,
`storage_auth_headers` (what reached the presigned PUT), `uploaded_rows(file_id)`.

    with FakeTogetherFinetuneServer() as server:
        client = together.Together(api_key=server.api_key, base_url=server.base_url)
"""

from __future__ import annotations

import email.parser
import email.policy
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.client import HTTPMessage
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http_fake import ApiError, FakeHttpServer, FaultScript, Reply

VALID_API_KEY = "fake-together-test-key-0123456789"
FAKE_BASE_MODEL = "fake-org/Fake-Llama-3-8B-Instruct-Reference"
Route = Literal["files", "limits", "estimate", "create", "retrieve", "metrics", "download"]
ArchiveFormat = Literal["gzip", "zstd", "tar"]
SFT_KEYS = {"messages"}
DPO_KEYS = {"input", "preferred_output", "non_preferred_output"}


@dataclass
class _File:
    id: str
    filename: str
    checksum: str
    content: bytes | None = None


@dataclass
class _Job:
    id: str
    request: dict[str, Any]
    model: str
    created_at: datetime
    fails_with: str | None = None
    polls: int = 0
    status: str = "pending"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _limits(model: str) -> dict[str, Any]:
    lora = {
        "default_rank": 16, "max_rank": 64, "min_batch_size": 8, "max_batch_size": 32,
        "max_batch_size_dpo": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    }  # fmt: skip
    return {
        "model_name": model, "lora_training": lora, "full_training": None,
        "default_gradient_accumulation_steps": 1, "max_learning_rate": 1.0,
        "min_learning_rate": 0.0, "max_num_checkpoints": 10, "max_num_epochs": 20,
        "max_num_evals": 100, "max_seq_length_sft": 8192, "max_seq_length_dpo": 4096,
        "min_max_seq_length": 512, "merge_output_lora": False, "supports_full_training": False,
        "supports_reasoning": False, "supports_tools": True, "supports_vision": False,
    }  # fmt: skip


class FakeTogetherFinetuneServer(FakeHttpServer):
    """A fake Together fine-tuning API in a background thread; use it as a context manager.

    Args:
        api_key: The only key accepted on `/v1/...`; any other gets 401.
        models: Base models open to fine-tuning (others get 404 from the limits endpoint).
        polls_before_done: Job retrievals answered `pending`/`running` before the end state.
    """

    def __init__(
        self,
        *,
        api_key: str = VALID_API_KEY,
        models: tuple[str, ...] = (FAKE_BASE_MODEL,),
        polls_before_done: int = 3,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = models
        self.polls_before_done = polls_before_done
        self.adapter_files: dict[str, bytes] = {}
        self.archive_format: ArchiveFormat = "gzip"
        self.creates: list[dict[str, Any]] = []
        self.job_ids: list[str] = []
        self.file_ids: list[str] = []
        self.retrieves = 0
        self.downloads = 0
        self.storage_auth_headers: list[str] = []
        self._files: dict[str, _File] = {}
        self._jobs: dict[str, _Job] = {}
        self._faults = FaultScript()  # targets are route names
        self._job_failures: deque[str] = deque()
        self._ids = 0  # `_next_id` is called with the (reentrant) lock held

    # Controls and records

    def fail_next(self, status: int, count: int = 1, route: Route = "create") -> None:
        """Answer the next `count` calls to `route` with `status` and Together's error JSON."""
        self._faults.add(route, status, count)

    def fail_next_job(self, message: str) -> None:
        """The next job created runs, then ends `error` with a `job_error` event `message`."""
        with self._lock:
            self._job_failures.append(message)

    def uploaded_rows(self, file_id: str) -> list[dict[str, Any]]:
        """The JSON lines of an uploaded file."""
        with self._lock:
            content = self._files[file_id].content or b""
        return [json.loads(line) for line in content.decode().splitlines() if line.strip()]

    # Requests

    def respond(self, method: str, target: str, headers: HTTPMessage, body: bytes) -> Reply:
        """Answer one HTTP request (called from the handler threads)."""
        parts = urlsplit(target)
        path, query = parts.path.rstrip("/"), parse_qs(parts.query)
        try:
            if method == "PUT" and path.startswith("/_storage/"):
                return self._store(path.removeprefix("/_storage/"), headers, body)
            if headers.get("authorization") != f"Bearer {self.api_key}":
                raise ApiError(401, "Invalid API key provided")
            route, handler = self._route(method, path)
            self._take_fault(route)
            return handler(path, query, headers, body)
        except ApiError as exc:
            error = {"message": exc.message, "type": "invalid_request_error", "code": None}
            return Reply.json({"error": error}, exc.status)

    def _route(self, method: str, path: str) -> tuple[Route, Any]:
        table: dict[tuple[str, str], tuple[Route, Any]] = {
            ("POST", "/v1/files"): ("files", self._new_file),
            ("GET", "/v1/fine-tunes/models/limits"): ("limits", self._model_limits),
            ("POST", "/v1/fine-tunes/estimate-price"): ("estimate", self._estimate),
            ("POST", "/v1/fine-tunes"): ("create", self._create),
            ("GET", "/v1/finetune/download"): ("download", self._download),
        }
        if (method, path) in table:
            return table[(method, path)]
        if method == "POST" and path.startswith("/v1/files/") and path.endswith("/preprocess"):
            return "files", self._preprocess
        if method == "GET" and path.startswith("/v1/fine-tunes/") and path.endswith("/metrics"):
            return "metrics", self._metrics
        if method == "GET" and path.startswith("/v1/fine-tunes/") and path.count("/") == 3:
            return "retrieve", self._retrieve
        raise ApiError(404, f"no route for {method} {path}")

    def _take_fault(self, route: Route) -> None:
        fault = self._faults.take(route)
        if fault is not None:
            raise ApiError(fault.status, f"scripted {fault.status} on {route}")

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._ids += 1
            return f"{prefix}{self._ids:08x}-0000-4000-8000-{self._ids:012x}"

    # Files: POST /v1/files -> 302 to storage -> PUT -> preprocess

    def _new_file(self, path: str, query: Any, headers: Any, body: bytes) -> Reply:
        raw = f"content-type: {headers.get('content-type')}\r\n\r\n".encode() + body
        message = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
        form = {p.get_param("name", header="content-disposition"): p.get_content().strip()
                for p in message.iter_parts()}  # fmt: skip
        if form.get("purpose") != "fine-tune" or form.get("file_type") != "jsonl":
            raise ApiError(400, f"unsupported purpose/file_type {form}")
        file = _File(self._next_id("file-"), form["file_name"], form["checksum"])
        with self._lock:
            self._files[file.id] = file
            self.file_ids.append(file.id)
        location = f"{self.base_url}/_storage/{file.id}?X-Amz-Signature=fake"
        return Reply(302, headers={"location": location, "x-together-file-id": file.id})

    def _store(self, file_id: str, headers: Any, body: bytes) -> Reply:
        with self._lock:
            self.storage_auth_headers.append(headers.get("authorization") or "")
            file = self._files.get(file_id)
            if file is None or hashlib.sha256(body).hexdigest() != file.checksum:
                return Reply(400, b"<Error>BadDigest</Error>", "text/xml")
            file.content = body
        return Reply(200)

    def _preprocess(self, path: str, query: Any, headers: Any, body: bytes) -> Reply:
        file_id = path.split("/")[3]
        with self._lock:
            file = self._files.get(file_id)
        if file is None or file.content is None:
            raise ApiError(404, f"file {file_id} not found or not uploaded")
        lines = len(self.uploaded_rows(file_id))
        reply = {
            "id": file.id, "object": "file", "bytes": len(file.content), "created_at": 1,
            "filename": file.filename, "FileType": "jsonl", "purpose": "fine-tune",
            "processing_status": "COMPLETED",
            "validation_report": {"valid": True, "file_id": file.id, "nlines": lines},
        }  # fmt: skip
        return Reply.json(reply)

    # Fine-tunes

    def _model_limits(self, path: str, query: Any, headers: Any, body: bytes) -> Reply:
        name = query.get("model_name", [""])[0]
        with self._lock:
            job = self._jobs.get(name.split(":")[0])
        if name in self.models or job is not None:
            return Reply.json(_limits(job.model if job else name))
        raise ApiError(404, f"model {name} is not available for fine-tuning")

    def _estimate(self, path: str, query: Any, headers: Any, body: bytes) -> Reply:
        request = json.loads(body)
        rows = self._training_rows(request.get("training_file", ""))
        return Reply.json({
            "estimation_available": True, "allowed_to_proceed": True, "user_limit": 100.0,
            "estimated_total_price": 0.01 * len(rows),
            "estimated_train_token_count": 50.0 * len(rows),
        })  # fmt: skip

    def _create(self, path: str, query: Any, headers: Any, body: bytes) -> Reply:
        request = json.loads(body)
        rows = self._training_rows(request.get("training_file", ""))
        method = (request.get("training_method") or {}).get("method", "sft")
        wanted = SFT_KEYS if method == "sft" else DPO_KEYS
        if any(not wanted <= row.keys() for row in rows):
            raise ApiError(400, f"training file is not in the {method} format {sorted(wanted)}")
        model = self._start_model(request)
        with self._lock:
            failure = self._job_failures.popleft() if self._job_failures else None
            job = _Job(self._next_id("ft-"), request, model, datetime.now(UTC), failure)
            self._jobs[job.id] = job
            self.creates.append(request)
            self.job_ids.append(job.id)
        return Reply.json(self._job_json(job))

    def _start_model(self, request: dict[str, Any]) -> str:
        """The base of a new job: `model`, or that of the completed job in `from_checkpoint`."""
        if bool(request.get("model")) == bool(request.get("from_checkpoint")):
            raise ApiError(400, "give exactly one of model and from_checkpoint")
        if request.get("model"):
            if request["model"] not in self.models:
                raise ApiError(400, f"model {request['model']} is not available")
            return request["model"]
        with self._lock:
            parent = self._jobs.get(request["from_checkpoint"].split(":")[0])
        if parent is None or parent.status != "completed":
            raise ApiError(400, f"checkpoint {request['from_checkpoint']} is not available")
        return parent.model

    def _training_rows(self, file_id: str) -> list[dict[str, Any]]:
        with self._lock:
            file = self._files.get(file_id)
        if file is None or file.content is None:
            raise ApiError(400, f"training_file {file_id!r} was not uploaded")
        return self.uploaded_rows(file_id)

    def _retrieve(self, path: str, query: Any, headers: Any, body: bytes) -> Reply:
        job = self._job(path.split("/")[3])
        with self._lock:
            self.retrieves += 1
            job.polls += 1
            if job.polls > self.polls_before_done:
                job.status = "error" if job.fails_with else "completed"
            elif job.polls > 1:
                job.status = "running"
        return Reply.json(self._job_json(job))

    def _job(self, job_id: str) -> _Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"fine-tune job {job_id} not found")
        return job

    def _job_json(self, job: _Job) -> dict[str, Any]:
        request = job.request
        started = job.created_at + timedelta(seconds=5)
        name = f"fake-user/{job.model.split('/')[-1]}-{request.get('suffix', '')}-{job.id[3:11]}"
        events = [_event("job_pending", "Fine-tune job created", job.created_at)]
        if job.status != "pending":
            events.append(_event("training_start", "Training started", started, step=0))
        if job.status == "completed":
            events.append(_event("job_complete", "Job finished", started, step=4))
        if job.status == "error":
            events.append(_event("job_error", job.fails_with or "", started, level="error"))
        return {
            "id": job.id, "status": job.status, "user_id": "fake-user", "model": job.model,
            "created_at": _iso(job.created_at), "updated_at": _iso(started + timedelta(minutes=3)),
            "started_at": _iso(started) if job.status != "pending" else None,
            "model_output_name": name, "adapter_output_name": f"{name}-adapter",
            "training_file": request["training_file"], "n_epochs": request.get("n_epochs"),
            "learning_rate": request.get("learning_rate"), "suffix": request.get("suffix"),
            "training_method": request.get("training_method"),
            "training_type": request.get("training_type"),
            "from_checkpoint": request.get("from_checkpoint"),
            "token_count": 1234 if job.status == "completed" else None, "events": events,
        }  # fmt: skip

    def _metrics(self, path: str, query: Any, headers: Any, body: bytes) -> Reply:
        job = self._job(path.split("/")[3])
        if job.status != "completed":
            return Reply.json({"metrics": []})
        rows = [{"train/global_step": s, "train/loss": round(2.0 / s, 4)} for s in range(1, 5)]
        return Reply.json({"metrics": rows})

    def _download(self, path: str, query: Any, headers: Any, body: bytes) -> Reply:
        job = self._job(query.get("ft_id", [""])[0])
        if query.get("checkpoint", [""])[0] != "adapter":
            raise ApiError(400, "this fake serves only checkpoint=adapter")
        if job.status != "completed":
            raise ApiError(400, f"job {job.id} is {job.status}, not completed")
        with self._lock:
            self.downloads += 1
            files = dict(self.adapter_files)
        data, content_type = _archive(files, self.archive_format)
        return Reply(200, data, content_type)


def _event(kind: str, message: str, at: datetime, **extra: Any) -> dict[str, Any]:
    if "step" in extra:
        extra["total_steps"] = 4
    return {
        "object": "fine-tune-event", "type": kind, "message": message,
        "created_at": _iso(at), "level": extra.pop("level", "info"), **extra,
    }  # fmt: skip


def _archive(files: dict[str, bytes], kind: ArchiveFormat) -> tuple[bytes, str]:
    """`files` (name -> bytes) as a tar, compressed like Together's downloads."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    if kind == "gzip":
        return gzip.compress(raw), "application/x-tar"
    if kind == "zstd":
        zstd = shutil.which("zstd")
        if zstd is None:
            raise RuntimeError("archive_format zstd needs the `zstd` program")
        out = subprocess.run([zstd, "-q", "-c"], input=raw, capture_output=True, check=True)
        return out.stdout, "application/octet-stream"
    return raw, "application/octet-stream"
