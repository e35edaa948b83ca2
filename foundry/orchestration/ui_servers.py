"""The local Prefect server and MLflow UI behind `foundry ui`: start both in the background, find
them again, stop them.

Public entry points: `start_servers(config, ...)`, `stop_servers(config)`,
`running_servers(config)`, `running_prefect_api(config)` and `is_port_free(host, port)`. What was
started is recorded in `<cache_dir>/ui.json`; each server writes its output to
`<cache_dir>/logs/<name>-server.log` (`ui_records`). Each server runs in its own process group,
so stopping it also stops the workers it spawned (`ui_processes`).
"""

from __future__ import annotations

import errno
import logging
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from foundry.config import FoundryConfig
from foundry.orchestration.ui_processes import (
    STOP_TIMEOUT_S,
    StopOutcome,
    launch_server,
    stop_records,
    wait_until_healthy,
)
from foundry.orchestration.ui_records import (
    LABELS,
    SERVER_NAMES,
    ServerRecord,
    UiError,
    is_healthy,
    owns_group,
    read_state,
    state_path,
    write_state,
)

logger = logging.getLogger(__name__)

PORT_OPTIONS = {"prefect": "--prefect-port", "mlflow": "--mlflow-port"}
STARTUP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class StartResult:
    """The pair of servers, whether they were already running, and seconds each took to answer."""

    servers: dict[str, ServerRecord]
    already_running: bool
    ready_s: dict[str, float] = field(default_factory=dict)


def running_servers(config: FoundryConfig) -> dict[str, ServerRecord] | None:
    """The recorded pair when both processes are alive and both answer their health check."""
    records = read_state(config)
    if set(records) != set(SERVER_NAMES):
        return None
    if all(owns_group(r) and is_healthy(r.health_url) for r in records.values()):
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
    if record is None or not owns_group(record) or not is_healthy(record.health_url):
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
            process, record = launch_server(config, name, commands[name], host, ports[name])
            processes[name], records[name] = process, record
            write_state(config, records)
        ready_s = wait_until_healthy(processes, records, timeout_s)
    except BaseException:
        # Includes Ctrl-C while waiting: never leave half a pair running.
        stop_records(records)
        state_path(config).unlink(missing_ok=True)
        raise
    return StartResult(records, already_running=False, ready_s=ready_s)


def stop_servers(config: FoundryConfig, timeout_s: float = STOP_TIMEOUT_S) -> list[StopOutcome]:
    """Stop the recorded servers (SIGTERM, then SIGKILL after `timeout_s`) and remove ui.json.

    Raises:
        UiError: a process group survived SIGKILL (ui.json is kept so a retry finds it).
    """
    outcomes = stop_records(read_state(config), timeout_s)
    state_path(config).unlink(missing_ok=True)
    return outcomes


def _forget_dead_servers(config: FoundryConfig) -> None:
    alive = [r for r in read_state(config).values() if owns_group(r)]
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
