"""Starting and stopping the `foundry ui` server processes.

`launch_server` starts one server in its own process group (so stopping it also stops the workers
it spawned), writing its output to its log; `wait_until_healthy` waits for a started pair to
answer; `stop_records` ends recorded servers with SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from foundry.config import FoundryConfig
from foundry.orchestration.ui_records import (
    LABELS,
    ServerRecord,
    ServerStartError,
    UiError,
    is_healthy,
    log_path,
    log_tail,
    owns_group,
)

STOP_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.25

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StopOutcome:
    """One recorded server after `stop_servers`: was it still running, did it need SIGKILL."""

    record: ServerRecord
    was_running: bool
    forced: bool = False


def _child_env(name: str, url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if name == "prefect":
        # The UI would otherwise call PREFECT_API_URL, which may point at an older server.
        env.pop("PREFECT_API_URL", None)
        env["PREFECT_UI_API_URL"] = f"{url}/api"
    return env


def launch_server(
    config: FoundryConfig, name: str, command: list[str], host: str, port: int
) -> tuple[subprocess.Popen[bytes], ServerRecord]:
    """Start server `name` with `command` in its own process group, its output in its log."""
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


def wait_until_healthy(
    processes: dict[str, subprocess.Popen[bytes]],
    records: dict[str, ServerRecord],
    timeout_s: float,
) -> dict[str, float]:
    """Seconds each server took to answer; `ServerStartError` when one exits or is late."""
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


def stop_records(
    records: dict[str, ServerRecord], timeout_s: float = STOP_TIMEOUT_S
) -> list[StopOutcome]:
    """SIGTERM each live recorded server, SIGKILL what outlives `timeout_s`."""
    live = [r for r in records.values() if owns_group(r)]
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
    alive = [r for r in records if owns_group(r)]
    while alive and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)
        alive = [r for r in alive if owns_group(r)]
    return alive


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
