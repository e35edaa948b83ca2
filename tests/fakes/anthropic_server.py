"""A fake Anthropic Messages API on 127.0.0.1, reached through the real `anthropic` SDK.

`FakeAnthropicServer` serves `POST /v1/messages` and the Message Batches endpoints
(`POST /v1/messages/batches`, `GET /v1/messages/batches/{id}`, `GET .../{id}/results`) from a
background `ThreadingHTTPServer` on a free port. Answers are deterministic: the text is built from
a hash of the system and user prompts out of a fixed word list, and usage follows simple rules
(input = len(user) // 4, output = round(words * 1.3), prompt caching emulated per system text).

Controls: `latency_s`, `fail_next(status, ...)` (a script of error answers, `DROP_CONNECTION` to
hang up), `batch_polls_before_end`, `batch_outcomes` (per custom_id errors). Counters, all
guarded by one lock: `requests`, `max_in_flight`, `served`, `served_usage`, `batch_creates`,
`batch_retrieves`, `results_fetches`.

    with FakeAnthropicServer(latency_s=0.2) as server:
        client = anthropic.Anthropic(api_key=server.api_key, base_url=server.base_url)
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.client import HTTPMessage
from typing import Any, Literal
from urllib.parse import urlsplit

from foundry.synthesis.jobs import Usage
from tests.fakes.http_fake import ApiError, FakeHttpServer, Fault, FaultScript, Reply

VALID_API_KEY = "fake-anthropic-test-key-0123456789"
DROP_CONNECTION = 0  # a `fail_next` status that closes the connection without an answer
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
Endpoint = Literal["messages", "batches"]
Kind = Literal["online", "batch"]

_OPENERS = ["", "Still, ", "In short, ", "Yet ", "Of course, ", "Put simply, ", "Even so, "]
_SUBJECTS = [
    "the argument", "this view", "every tradition", "a careful reader", "the evidence",
    "our community", "the market", "a good teacher", "the old rule", "that proposal",
    "the city", "each citizen", "the scientist", "a fair critic", "the law", "history",
]  # fmt: skip
_VERBS = [
    "suggests", "requires", "ignores", "reveals", "protects", "weakens", "rewards",
    "questions", "explains", "shapes", "demands", "supports", "forgets", "honours",
]  # fmt: skip
_OBJECTS = [
    "a deeper question", "the common good", "honest doubt", "the cost of change",
    "shared responsibility", "our own habits", "the limits of power", "practical wisdom",
    "the weight of history", "a simpler answer", "the needs of strangers", "quiet courage",
    "the people it claims to serve", "what we owe each other", "a slower kind of progress",
]  # fmt: skip
_TAILS = [
    "", " in the long run", " when it matters most", " more than we admit",
    " for better or worse", " at every turn", " without much fanfare", " if we are honest",
]  # fmt: skip


@dataclass(frozen=True)
class ServedMessage:
    """One message the server generated (and so would have billed)."""

    kind: Kind
    prompt_hash: str
    custom_id: str | None
    usage: Usage


@dataclass
class _Batch:
    id: str
    results: list[dict[str, Any]]
    created_at: datetime
    retrieves: int = 0
    ended_at: datetime | None = None


def prompt_hash(system: str, user: str) -> str:
    """The id the server records for a prompt pair (first 16 hex digits of a SHA-256)."""
    return hashlib.sha256(f"{system}\x00{user}".encode()).hexdigest()[:16]


def compose_reply(system: str, user: str, max_tokens: int) -> tuple[str, str]:
    """The deterministic answer text and stop reason for a prompt pair.

    40-80 English-like words in several sentences, opening with the first line of `user`, cut
    to `max_tokens / 1.3` words (stop reason `max_tokens`) when that is shorter.
    """
    rng = random.Random(prompt_hash(system, user))
    first_line = re.sub(r"[^\w\s'-]", " ", user.strip().split("\n", 1)[0]).split()[:12]
    topic = " ".join(first_line).lower() or "this question"
    opening = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
    sentences = [f"Regarding {topic}, {opening}."]
    target = rng.randint(40, 68)
    while sum(len(s.split()) for s in sentences) < target:
        opener = rng.choice(_OPENERS)
        body = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
        sentence = f"{opener}{body}{rng.choice(_TAILS)}."
        sentences.append(sentence[0].upper() + sentence[1:])
    words = " ".join(sentences).split()
    max_words = max(1, int(max_tokens / 1.3))
    if len(words) > max_words:
        return " ".join(words[:max_words]), "max_tokens"
    return " ".join(words), "end_turn"


def _error_body(status: int, message: str, request_id: str) -> bytes:
    error = {"type": ERROR_TYPES.get(status, "api_error"), "message": message}
    return json.dumps({"type": "error", "error": error, "request_id": request_id}).encode()


def _error_reply(exc: ApiError, request_id: str) -> Reply:
    body = _error_body(exc.status, exc.message, request_id)
    return Reply(exc.status, body, headers={"request-id": request_id})


def _system_text(system: Any) -> tuple[str, bool]:
    """The system prompt's text and whether any of its blocks asks for caching."""
    if system is None or isinstance(system, str):
        return system or "", False
    text = "".join(block.get("text", "") for block in system)
    return text, any("cache_control" in block for block in system)


def _user_text(messages: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for message in messages:
        content = message.get("content", "")
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(block.get("text", "") for block in content)
    return "\n".join(parts)


def _check_params(params: Any) -> None:
    if not isinstance(params, dict):
        raise ApiError(400, "body: expected an object")
    for name in ("model", "max_tokens", "messages"):
        if name not in params:
            raise ApiError(400, f"{name}: Field required")
    for name in ("temperature", "top_p", "top_k"):  # API version 2026-10-21 removed them
        if name in params:
            raise ApiError(400, f"{name}: Extra inputs are not permitted")
    if not isinstance(params["max_tokens"], int) or params["max_tokens"] < 1:
        raise ApiError(400, "max_tokens: must be a positive integer")
    if not isinstance(params["messages"], list) or not params["messages"]:
        raise ApiError(400, "messages: at least one message is required")


class FakeAnthropicServer(FakeHttpServer):
    """A fake Anthropic API in a background thread; use it as a context manager.

    Args:
        api_key: The only key accepted; any other gets 401 `authentication_error`.
        latency_s: Seconds each `POST /v1/messages` waits before answering.
        batch_polls_before_end: Batch retrievals answered `in_progress` before `ended`.
    """

    def __init__(
        self,
        *,
        api_key: str = VALID_API_KEY,
        latency_s: float = 0.0,
        batch_polls_before_end: int = 1,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.latency_s = latency_s
        self.batch_polls_before_end = batch_polls_before_end
        self.batch_outcomes: dict[str, str] = {}  # custom_id -> errored | canceled | expired
        # Answers the fake cannot make up (a judge's verdict): (system, user) -> text, or None.
        self.reply_with: Callable[[str, str], str | None] | None = None
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.batch_creates = 0
        self.batch_retrieves = 0
        self.results_fetches = 0
        self.served: list[ServedMessage] = []
        self.served_usage: dict[Kind, Usage] = {"online": Usage(), "batch": Usage()}
        self._faults = FaultScript()
        self._cached_systems: set[str] = set()
        self._batches: dict[str, _Batch] = {}
        self._ids = 0

    # Controls

    def fail_next(
        self,
        status: int,
        count: int = 1,
        retry_after: float | None = None,
        endpoint: Endpoint = "messages",
    ) -> None:
        """Answer the next `count` calls to `endpoint` with `status` (Anthropic's error JSON).

        Args:
            status: HTTP status (429, 500, 529, 400, ...) or `DROP_CONNECTION` to hang up.
            count: How many calls fail.
            retry_after: Seconds sent in a `retry-after` header, when given.
            endpoint: `messages` (`POST /v1/messages`) or `batches` (every batch call).
        """
        self._faults.add(endpoint, status, count, retry_after)

    def served_hashes(self) -> list[str]:
        """Prompt hashes of every message generated, online and batch, in order."""
        with self._lock:
            return [message.prompt_hash for message in self.served]

    # Requests

    def respond(self, method: str, target: str, headers: HTTPMessage, body: bytes) -> Reply | None:
        """Answer one HTTP request (called from the handler threads); None hangs up."""
        path = urlsplit(target).path.rstrip("/")
        request_id = f"req_{self._next_id():024x}"
        is_messages = method == "POST" and path == "/v1/messages"
        if is_messages:
            return self._handle_messages(headers, body, request_id)
        try:
            self._check_key(headers)
            fault = self._faults.take("batches") if path.startswith("/v1/messages/b") else None
            if fault is not None:
                return self._fault_reply(fault, request_id)
            payload = self._route_batches(method, path, body)
        except ApiError as exc:
            return _error_reply(exc, request_id)
        if isinstance(payload, bytes):
            return Reply(200, payload, "application/x-jsonl", {"request-id": request_id})
        return Reply.json(payload, headers={"request-id": request_id})

    def _handle_messages(self, headers: Any, body: bytes, request_id: str) -> Reply | None:
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.latency_s)
            self._check_key(headers)
            fault = self._faults.take("messages")
            if fault is not None:
                return self._fault_reply(fault, request_id)
            params = self._parse(body)
            _check_params(params)
            message = self._answer(params, "online", None)
            return Reply.json(message, headers={"request-id": request_id})
        except ApiError as exc:
            return _error_reply(exc, request_id)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _check_key(self, headers: Any) -> None:
        # anthropic 2.x sends the key as `Authorization: Bearer ...`; older SDKs as `x-api-key`.
        bearer = (headers.get("authorization") or "").removeprefix("Bearer ")
        if self.api_key not in (headers.get("x-api-key"), bearer):
            raise ApiError(401, "invalid x-api-key")

    @staticmethod
    def _fault_reply(fault: Fault, request_id: str) -> Reply | None:
        status = fault.status
        if status == DROP_CONNECTION:
            return None
        headers = {"request-id": request_id}
        if fault.retry_after is not None:
            headers["retry-after"] = str(fault.retry_after)
        messages = {429: "Number of requests has exceeded your rate limit", 529: "Overloaded"}
        text = messages.get(status, "Internal server error" if status >= 500 else "Bad request")
        return Reply(status, _error_body(status, text, request_id), headers=headers)

    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    @staticmethod
    def _parse(body: bytes) -> Any:
        try:
            return json.loads(body or b"null")
        except json.JSONDecodeError as exc:
            raise ApiError(400, f"body: invalid JSON ({exc.msg})") from None

    # Messages

    def _answer(self, params: dict[str, Any], kind: Kind, custom_id: str | None) -> dict[str, Any]:
        """Generate a Message for `params` and record what it would bill."""
        system, use_cache = _system_text(params.get("system"))
        user = _user_text(params["messages"])
        text, stop_reason = compose_reply(system, user, params["max_tokens"])
        scripted = self.reply_with(system, user) if self.reply_with else None
        if scripted is not None:
            text, stop_reason = scripted, "end_turn"
        digest = prompt_hash(system, user)
        with self._lock:
            usage = self._usage(system, user, use_cache, len(text.split()))
            self.served.append(ServedMessage(kind, digest, custom_id, usage))
            self.served_usage[kind] = self.served_usage[kind] + usage
        return {
            "id": f"msg_{digest}{self._next_id():08x}",
            "type": "message",
            "role": "assistant",
            "model": params["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                "cache_read_input_tokens": usage.cache_read_input_tokens,
            },
        }

    def _usage(self, system: str, user: str, use_cache: bool, words: int) -> Usage:
        """Token counts; caller holds the lock (the cache is shared state)."""
        output_tokens = round(words * 1.3)
        system_tokens = len(system) // 4
        if not use_cache:
            return Usage(len(user) // 4 + system_tokens, output_tokens)
        if system in self._cached_systems:
            return Usage(len(user) // 4, output_tokens, cache_read_input_tokens=system_tokens)
        self._cached_systems.add(system)
        return Usage(len(user) // 4, output_tokens, cache_creation_input_tokens=system_tokens)

    # Batches

    def _route_batches(self, method: str, path: str, body: bytes) -> dict[str, Any] | bytes:
        parts = path.split("/")  # ['', 'v1', 'messages', 'batches', id, 'results']
        if method == "POST" and path == "/v1/messages/batches":
            return self._create_batch(self._parse(body))
        if method == "GET" and len(parts) == 5 and parts[3] == "batches":
            return self._retrieve_batch(parts[4])
        if method == "GET" and len(parts) == 6 and parts[5] == "results":
            return self._batch_results(parts[4])
        raise ApiError(404, f"no route for {method} {path}")

    def _create_batch(self, payload: Any) -> dict[str, Any]:
        requests = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(requests, list) or not requests:
            raise ApiError(400, "requests: at least one request is required")
        ids = [request.get("custom_id", "") for request in requests]
        bad = [custom_id for custom_id in ids if not CUSTOM_ID.match(str(custom_id))]
        if bad or len(set(ids)) != len(ids):
            raise ApiError(400, f"requests: custom_id must be unique and match {CUSTOM_ID.pattern}")
        results = [self._batch_result(r["custom_id"], r.get("params")) for r in requests]
        batch = _Batch(f"msgbatch_{self._next_id():024x}", results, datetime.now(UTC))
        with self._lock:
            self.batch_creates += 1
            self._batches[batch.id] = batch
        return self._batch_json(batch)

    def _batch_result(self, custom_id: str, params: Any) -> dict[str, Any]:
        outcome = self.batch_outcomes.get(custom_id, "succeeded")
        if outcome in ("canceled", "expired"):
            return {"custom_id": custom_id, "result": {"type": outcome}}
        try:
            if outcome == "errored":
                raise ApiError(500, "Internal server error")
            _check_params(params)
            message = self._answer(params, "batch", custom_id)
        except ApiError as exc:
            error = json.loads(_error_body(exc.status, exc.message, f"req_{custom_id}"))
            return {"custom_id": custom_id, "result": {"type": "errored", "error": error}}
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}

    def _retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                raise ApiError(404, f"batch {batch_id} not found")
            self.batch_retrieves += 1
            batch.retrieves += 1
            if batch.ended_at is None and batch.retrieves > self.batch_polls_before_end:
                batch.ended_at = datetime.now(UTC)
        return self._batch_json(batch)

    def _batch_results(self, batch_id: str) -> bytes:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                raise ApiError(404, f"batch {batch_id} not found")
            if batch.ended_at is None:
                raise ApiError(400, f"batch {batch_id} is still in progress")
            self.results_fetches += 1
        return b"".join(json.dumps(line).encode() + b"\n" for line in batch.results)

    def _batch_json(self, batch: _Batch) -> dict[str, Any]:
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if batch.ended_at is None:
            counts["processing"] = len(batch.results)
        else:
            for line in batch.results:
                counts[line["result"]["type"]] += 1
        ended = batch.ended_at is not None
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts,
            "created_at": batch.created_at.isoformat(),
            "expires_at": (batch.created_at + timedelta(hours=24)).isoformat(),
            "ended_at": batch.ended_at.isoformat() if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.base_url}/v1/messages/batches/{batch.id}/results"
            if ended
            else None,
        }
