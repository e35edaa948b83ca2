"""The local Prefect server and MLflow UI behind `foundry ui`: start both in the background, find
them again, stop them.

Public entry points: `start_servers(config, ...)`, `stop_servers(config)`,
`running_servers(config)`, `running_prefect_api(config)` and `is_port_free(host, port)`. What was
started is recorded in `<cache_dir>/ui.json`; each server writes its output to
`<cache_dir>/logs/<name>-server.log`. Each server runs in its own process group, so stopping it
also stops the workers it spawned.
"""

from __future__ import annotations

import errno
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from foundry.atomic import write_text_atomic
from foundry.config import FoundryConfig
from foundry.errors import FoundryError

logger = logging.getLogger(__name__)

SERVER_NAMES = ("prefect", "mlflow")
LABELS = {"prefect": "Prefect server", "mlflow": "MLflow server"}
PORT_OPTIONS = {"prefect": "--prefect-port", "mlflow": "--mlflow-port"}
HEALTH_PATHS = {"prefect": "/api/health", "mlflow": "/health"}
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.25
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


@dataclass(frozen=True)
class StartResult:
    """The pair of servers, whether they were already running, and seconds each took to answer."""

    servers: dict[str, ServerRecord]
    already_running: bool
    ready_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StopOutcome:
    """One recorded server after `stop_servers`: was it still running, did it need SIGKILL."""

    record: ServerRecord
    was_running: bool
    forced: bool = False


def state_path(config: FoundryConfig) -> Path:
    return config.cache_dir / "ui.json"


def log_path(config: FoundryConfig, name: str) -> Path:
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


def running_servers(config: FoundryConfig) -> dict[str, ServerRecord] | None:
    """The recorded pair when both processes are alive and both answer their health check."""
    records = read_state(config)
    if set(records) != set(SERVER_NAMES):
        return None
    if all(_owns_group(r) and is_healthy(r.health_url) for r in records.values()):
        return records
    return None


def running_prefect_api(config: FoundryConfig) -> str | None:
    """The API URL (`http://H:P/api`) of the Prefect server `foundry ui` started, if it answers.

    Lets other commands report to that server without PREFECT_API_URL being exported.
    """
    try:
        record = read_state(config).get("prefect")
    except UiError as exc:
        logger.warning("ignoring the recorded servers: %s", exc)
        return None
    if record is None or not _owns_group(record) or not is_healthy(record.health_url):
        return None
    return f"{record.url}/api"


def is_port_free(host: str, port: int) -> bool:
    """Whether a server could listen on (host, port) now.

    Raises:
        UiError: `host` is not an address of this machine.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As the servers do: connections in TIME_WAIT from an earlier run don't block the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise UiError(
                f"cannot listen on --host {host} ({exc.strerror}); pass an address of this "
                "machine, e.g. --host 127.0.0.1"
            ) from None
    return True


def is_healthy(url: str, timeout_s: float = HEALTH_TIMEOUT_S) -> bool:
    """Whether GET `url` answers 200 (proxies bypassed: the servers are local)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as answer:
            return answer.status == 200
    except (OSError, http.client.HTTPException):
        return False


def start_servers(
    config: FoundryConfig,
    host: str = "127.0.0.1",
    prefect_port: int = 4200,
    mlflow_port: int = 5000,
    timeout_s: float = STARTUP_TIMEOUT_S,
) -> StartResult:
    """Start the Prefect server and the MLflow UI in the background and wait until both answer.

    When the recorded pair is already running, nothing is started. Stale records are cleaned up.

    Raises:
        UiError: a port is taken (nothing is started), the ports are equal, the tracking store
            is a remote server, or a recorded server is alive but not answering (it is left
            alone: it may still be starting).
        ServerStartError: a server exited or did not answer in `timeout_s` (both are stopped).
    """
    running = running_servers(config)
    if running:
        return StartResult(running, already_running=True)
    _forget_dead_servers(config)
    ports = {"prefect": prefect_port, "mlflow": mlflow_port}
    _check_ports(host, ports)
    commands = {
        "prefect": _prefect_command(host, prefect_port),
        "mlflow": _mlflow_command(config, host, mlflow_port),
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    records: dict[str, ServerRecord] = {}
    try:
        for name in SERVER_NAMES:
            process, record = _launch(config, name, commands[name], host, ports[name])
            processes[name], records[name] = process, record
            _write_state(config, records)
        ready_s = _wait_until_healthy(processes, records, timeout_s)
    except BaseException:
        # Includes Ctrl-C while waiting: never leave half a pair running.
        _stop_records(records)
        state_path(config).unlink(missing_ok=True)
        raise
    return StartResult(records, already_running=False, ready_s=ready_s)


def stop_servers(config: FoundryConfig, timeout_s: float = STOP_TIMEOUT_S) -> list[StopOutcome]:
    """Stop the recorded servers (SIGTERM, then SIGKILL after `timeout_s`) and remove ui.json.

    Raises:
        UiError: a process group survived SIGKILL (ui.json is kept so a retry finds it).
    """
    outcomes = _stop_records(read_state(config), timeout_s)
    state_path(config).unlink(missing_ok=True)
    return outcomes


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file (empty when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _forget_dead_servers(config: FoundryConfig) -> None:
    alive = [r for r in read_state(config).values() if _owns_group(r)]
    if alive:
        what = " and ".join(f"the {LABELS[r.name]} (pid {r.pid}, {r.url})" for r in alive)
        raise UiError(
            f"{what} from an earlier `foundry ui` is running but the pair is not answering (still "
            "starting, or half of it died); wait and retry, or run `foundry ui --stop` first"
        )
    if state_path(config).exists():
        logger.info("removing %s: its servers are no longer running", state_path(config))
        state_path(config).unlink()


def _check_ports(host: str, ports: dict[str, int]) -> None:
    if ports["prefect"] == ports["mlflow"]:
        raise UiError(
            f"--prefect-port and --mlflow-port are both {ports['prefect']}; give each server "
            "its own port"
        )
    taken = [name for name in SERVER_NAMES if not is_port_free(host, ports[name])]
    if taken:
        what = " and ".join(f"port {ports[n]} ({LABELS[n]})" for n in taken)
        fixes = " / ".join(f"`{PORT_OPTIONS[n]}`" for n in taken)
        raise UiError(
            f"{what} on {host} already in use by another program; stop that program or pass "
            f"{fixes} with a free port. Nothing was started."
        )


def _tool(name: str) -> list[str]:
    """The console script installed next to this Python, else `python -m name`."""
    script = Path(sys.executable).parent / name
    return [str(script)] if script.exists() else [sys.executable, "-m", name]


def _prefect_command(host: str, port: int) -> list[str]:
    return [*_tool("prefect"), "server", "start", "--host", host, "--port", str(port)]


def _mlflow_command(config: FoundryConfig, host: str, port: int) -> list[str]:
    from registry.tracking import tracking_uri

    uri = tracking_uri(config)
    if uri.startswith(("http://", "https://")):
        raise UiError(
            f"the MLflow tracking store is already a server ({uri}); open it in a browser, or "
            "unset `registry.tracking_uri` / MLFLOW_TRACKING_URI to serve the project's mlflow.db"
        )
    # One worker is plenty for one person's browser; the default (4) costs ~4 imports of mlflow.
    return [
        *_tool("mlflow"), "server", "--backend-store-uri", uri,
        "--host", host, "--port", str(port), "--workers", "1",
    ]  # fmt: skip


def _child_env(name: str, url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if name == "prefect":
        # The UI would otherwise call PREFECT_API_URL, which may point at an older server.
        env.pop("PREFECT_API_URL", None)
        env["PREFECT_UI_API_URL"] = f"{url}/api"
    return env


def _launch(
    config: FoundryConfig, name: str, command: list[str], host: str, port: int
) -> tuple[subprocess.Popen[bytes], ServerRecord]:
    url = f"http://{_url_host(host)}:{port}"
    log = log_path(config, name)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as handle:
        # cwd is the project root so MLflow's ./mlartifacts is the project's artifact folder.
        process = subprocess.Popen(
            command, cwd=config.root, env=_child_env(name, url), stdin=subprocess.DEVNULL,
            stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    return process, ServerRecord(name, process.pid, host, port, url, log, started_at)


def _url_host(host: str) -> str:
    """The address a local browser uses to reach a server listening on `host`."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _write_state(config: FoundryConfig, records: dict[str, ServerRecord]) -> None:
    payload = {name: record.to_json() for name, record in records.items()}
    write_text_atomic(state_path(config), json.dumps(payload, indent=2) + "\n")


def _wait_until_healthy(
    processes: dict[str, subprocess.Popen[bytes]],
    records: dict[str, ServerRecord],
    timeout_s: float,
) -> dict[str, float]:
    start = time.monotonic()
    ready_s: dict[str, float] = {}
    while len(ready_s) < len(records):
        for name, record in records.items():
            if name in ready_s:
                continue
            code = processes[name].poll()
            if code is not None:
                raise _start_error(record, f"exited with status {code} before answering")
            if is_healthy(record.health_url):
                ready_s[name] = time.monotonic() - start
        if len(ready_s) < len(records) and time.monotonic() - start > timeout_s:
            late = next(records[n] for n in records if n not in ready_s)
            raise _start_error(late, f"did not answer {late.health_url} within {timeout_s:g} s")
        time.sleep(POLL_INTERVAL_S)
    return ready_s


def _start_error(record: ServerRecord, what: str) -> ServerStartError:
    return ServerStartError(
        f"the {LABELS[record.name]} {what}; both servers were stopped. Its log: {record.log_path}",
        record.log_path,
        log_tail(record.log_path),
    )


def _stop_records(
    records: dict[str, ServerRecord], timeout_s: float = STOP_TIMEOUT_S
) -> list[StopOutcome]:
    live = [r for r in records.values() if _owns_group(r)]
    for record in live:
        _signal_group(record.pid, signal.SIGTERM)
    remaining = _wait_for_exit(live, timeout_s)
    for record in remaining:
        logger.warning("%s (pid %d) ignored SIGTERM; sending SIGKILL", record.name, record.pid)
        _signal_group(record.pid, signal.SIGKILL)
    survivors = _wait_for_exit(remaining, 5.0)
    if survivors:
        pids = ", ".join(str(r.pid) for r in survivors)
        raise UiError(f"process group(s) {pids} survived SIGKILL; check them with `ps -g {pids}`")
    return [StopOutcome(r, was_running=r in live, forced=r in remaining) for r in records.values()]


def _wait_for_exit(records: list[ServerRecord], timeout_s: float) -> list[ServerRecord]:
    deadline = time.monotonic() + timeout_s
    alive = [r for r in records if _owns_group(r)]
    while alive and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)
        alive = [r for r in alive if _owns_group(r)]
    return alive


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _owns_group(record: ServerRecord) -> bool:
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
