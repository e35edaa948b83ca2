"""The HTTP plumbing every fake API server in `tests/fakes/` shares.

`FakeHttpServer` is the base class: it serves on a free port of 127.0.0.1 from a background
`ThreadingHTTPServer` while used as a context manager, gives `base_url` for the SDK under test,
and holds the lock that guards each fake's records. A subclass implements one method,
`respond(method, target, headers, body)`, and returns a `Reply` (or None to hang up without an
answer). `ApiError` carries an error status to the subclass's own error JSON, and `FaultScript`
holds the scripted errors that each fake's `fail_next` control adds.

    class FakeThingServer(FakeHttpServer):
        def respond(self, method, target, headers, body):
            return Reply.json({"ok": True})
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Reply:
    """One HTTP answer: status, body bytes, content type and any extra headers."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        """`payload` as JSON; None gives an empty body (still labelled JSON)."""
        body = b"" if payload is None else json.dumps(payload).encode()
        return cls(status, body, headers=headers or {})


class ApiError(Exception):
    """An error answer: `status` and a message the fake puts into its own error JSON."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Fault:
    """One scripted error: what it matches (a route name or a path prefix) and its status."""

    target: str
    status: int
    retry_after: float | None = None


class FaultScript:
    """Scripted error answers; each matching request takes the oldest one that matches it."""

    def __init__(self) -> None:
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()

    def add(
        self, target: str, status: int, count: int = 1, retry_after: float | None = None
    ) -> None:
        """Fail the next `count` requests matching `target` with `status`."""
        with self._lock:
            self._faults.extend([Fault(target, status, retry_after)] * count)

    def take(self, name: str) -> Fault | None:
        """Remove and return the first fault whose target is `name`, or None."""
        return self._take(lambda target: target == name)

    def take_prefix(self, path: str) -> Fault | None:
        """Remove and return the first fault whose target is a prefix of `path`, or None."""
        return self._take(path.startswith)

    def _take(self, matches: Callable[[str], bool]) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if matches(fault.target):
                    self._faults.remove(fault)
                    return fault
        return None


class FakeHttpServer:
    """A fake API in a background thread; use it as a context manager.

    Subclasses call `super().__init__()` and implement `respond`, which runs on the handler
    threads, so shared state goes under `self._lock` (reentrant: helpers may take it again).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._httpd: _Server | None = None

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`, for the SDK's `base_url`."""
        if self._httpd is None:
            raise RuntimeError("the fake server is not running; use it as a context manager")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._httpd = _Server(self)
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def respond(self, method: str, target: str, headers: HTTPMessage, body: bytes) -> Reply | None:
        """Answer one request (`target` is the path with its query); None hangs up."""
        raise NotImplementedError


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 refuses bursts of new connections

    def __init__(self, fake: FakeHttpServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect
    timeout = 30  # idle keep-alive connections close after this many seconds
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every answer.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.server.fake.respond(method, self.path, self.headers, body)
        if reply is None:
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("content-type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Stay quiet: tests read the fakes' records, not access logs."""
