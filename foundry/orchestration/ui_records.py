"""What `foundry ui` records about the servers it started, and how to tell they are still there.

Owns `<cache_dir>/ui.json` (`read_state`, `write_state`, `state_path`), each server's log
(`log_path`, `log_tail`), the health check (`is_healthy`) and whether a recorded process group is
still that server (`owns_group`). `UiError` and `ServerStartError` are what the UI servers raise.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundry.atomic import write_text_atomic
from foundry.config import FoundryConfig
from foundry.errors import FoundryError

SERVER_NAMES = ("prefect", "mlflow")
LABELS = {"prefect": "Prefect server", "mlflow": "MLflow server"}
HEALTH_PATHS = {"prefect": "/api/health", "mlflow": "/health"}
HEALTH_TIMEOUT_S = 2.0
LOG_TAIL_LINES = 25


class UiError(FoundryError):
    """The local Prefect/MLflow servers cannot be started, found or stopped."""


class ServerStartError(UiError):
    """A server exited or did not answer its health check; `log_tail` holds its last lines."""

    def __init__(self, message: str, log_path: Path, log_tail: str) -> None:
        super().__init__(message)
        self.log_path = log_path
        self.log_tail = log_tail


@dataclass(frozen=True)
class ServerRecord:
    """One started server, as recorded in ui.json."""

    name: str
    pid: int
    host: str
    port: int
    url: str
    log_path: Path
    started_at: str

    @property
    def health_url(self) -> str:
        return self.url + HEALTH_PATHS[self.name]

    def to_json(self) -> dict[str, object]:
        return {
            "pid": self.pid, "host": self.host, "port": self.port, "url": self.url,
            "log_path": str(self.log_path), "started_at": self.started_at,
        }  # fmt: skip

    @classmethod
    def from_json(cls, name: str, item: dict[str, Any]) -> ServerRecord:
        return cls(
            name, int(item["pid"]), str(item["host"]), int(item["port"]), str(item["url"]),
            Path(str(item["log_path"])), str(item["started_at"]),
        )  # fmt: skip


def state_path(config: FoundryConfig) -> Path:
    """Where the started servers are recorded."""
    return config.cache_dir / "ui.json"


def log_path(config: FoundryConfig, name: str) -> Path:
    """The log file server `name` writes to."""
    return config.cache_dir / "logs" / f"{name}-server.log"


def read_state(config: FoundryConfig) -> dict[str, ServerRecord]:
    """The servers recorded in ui.json (empty when there is none).

    Raises:
        UiError: ui.json exists but cannot be read.
    """
    path = state_path(config)
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {n: ServerRecord.from_json(n, item) for n, item in raw.items() if n in SERVER_NAMES}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UiError(
            f"{path} is not a valid server record ({exc}); stop any leftover `prefect server` / "
            "`mlflow server` processes yourself, then delete the file"
        ) from None


def write_state(config: FoundryConfig, records: dict[str, ServerRecord]) -> None:
    """Record the started servers in ui.json."""
    payload = {name: record.to_json() for name, record in records.items()}
    write_text_atomic(state_path(config), json.dumps(payload, indent=2) + "\n")


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file (empty when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def is_healthy(url: str, timeout_s: float = HEALTH_TIMEOUT_S) -> bool:
    """Whether GET `url` answers 200 (proxies bypassed: the servers are local)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as answer:
            return answer.status == 200
    except (OSError, http.client.HTTPException):
        return False


def owns_group(record: ServerRecord) -> bool:
    """Whether the recorded process group still exists and is still that server (pids recycle)."""
    try:
        # Reap the leader if it is our child (start and stop in one process), or it stays a zombie.
        os.waitpid(record.pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.killpg(record.pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes()
    except OSError:
        # No /proc (macOS), or the leader is gone while its workers live on: a pgid is not
        # reused while its group exists, so the group is still ours.
        return True
    return not cmdline or record.name.encode() in cmdline
