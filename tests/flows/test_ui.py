"""`foundry ui`: real Prefect and MLflow servers on free loopback ports, started, found, stopped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from foundry.cli import ui as cli_ui
from foundry.config import FoundryConfig, load_config
from foundry.orchestration import ui_records, ui_servers
from tests.conftest import make_project

pytestmark = pytest.mark.slow
runner = CliRunner()
app = typer.Typer()
app.command()(cli_ui.ui)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    import foundry.cli.common

    for console in (foundry.cli.common.console, foundry.cli.common.err_console):
        monkeypatch.setattr(console, "width", 400)


@pytest.fixture
def project_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FoundryConfig]:
    """A fresh project on its own sqlite store; whatever a test started is stopped afterwards."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    root = make_project(tmp_path / "p")
    config = load_config(root / "foundry.yaml")
    try:
        yield config
    finally:
        ui_servers.stop_servers(config)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ports() -> list[str]:
    prefect_port = free_port()
    mlflow_port = free_port()
    while mlflow_port == prefect_port:
        mlflow_port = free_port()
    return ["--prefect-port", str(prefect_port), "--mlflow-port", str(mlflow_port)]


def invoke(config: FoundryConfig, *args: str):
    return runner.invoke(app, ["--config", str(config.source), *args])


def answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as answer:
        return answer.status == 200


def child_pids() -> set[int]:
    """Live (non-zombie) processes whose parent is this test process."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) == os.getpid():
            found.add(int(stat.parent.name))
    return found


def is_alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def recorded_pids(config: FoundryConfig) -> dict[str, int]:
    state = json.loads(ui_records.state_path(config).read_text())
    return {name: state[name]["pid"] for name in ("prefect", "mlflow")}


def test_ui_starts_both_servers_reports_them_once_and_stops_them(project_config):
    args = ports()
    prefect_url, mlflow_url = (f"http://127.0.0.1:{args[i]}" for i in (1, 3))

    started = invoke(project_config, *args)
    assert started.exit_code == 0, started.output
    assert prefect_url in started.output and mlflow_url in started.output
    assert f"export PREFECT_API_URL={prefect_url}/api" in started.output
    assert "foundry ui --stop" in started.output
    assert answers(f"{prefect_url}/api/health") and answers(f"{mlflow_url}/health")
    pids = recorded_pids(project_config)
    assert all(is_alive(pid) for pid in pids.values())
    assert ui_servers.running_prefect_api(project_config) == f"{prefect_url}/api"
    log_dir = project_config.cache_dir / "logs"
    assert (log_dir / "prefect-server.log").stat().st_size > 0
    assert (log_dir / "mlflow-server.log").stat().st_size > 0

    children = child_pids()
    again = invoke(project_config, *args)
    assert again.exit_code == 0, again.output
    assert "already running" in again.output and prefect_url in again.output
    assert recorded_pids(project_config) == pids
    assert child_pids() == children

    stopped = invoke(project_config, "--stop")
    assert stopped.exit_code == 0, stopped.output
    assert "stopped the Prefect server" in stopped.output
    assert "stopped the MLflow server" in stopped.output
    assert not any(is_alive(pid) for pid in pids.values())
    assert not ui_records.state_path(project_config).exists()
    assert ui_servers.running_prefect_api(project_config) is None
    assert all(ui_servers.is_port_free("127.0.0.1", int(args[i])) for i in (1, 3))

    nothing = invoke(project_config, "--stop")
    assert nothing.exit_code == 0 and "nothing to stop" in nothing.output


def test_port_held_by_another_program_starts_nothing(project_config):
    args = ports()
    children = child_pids()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(args[3])))
        holder.listen()
        result = invoke(project_config, *args)
    assert result.exit_code == 1
    assert f"port {args[3]} (MLflow server)" in result.output
    assert "--mlflow-port" in result.output and "Nothing was started" in result.output
    assert not ui_records.state_path(project_config).exists()
    assert child_pids() == children


def test_server_that_exits_stops_the_other_and_shows_its_log(project_config, monkeypatch):
    def crashing_mlflow(config, host, port):
        return [sys.executable, "-c", "import sys; print('backend store is broken'); sys.exit(3)"]

    monkeypatch.setattr(ui_servers, "_mlflow_command", crashing_mlflow)
    children = child_pids()
    result = invoke(project_config, *ports())
    assert result.exit_code == 1
    assert "MLflow server exited with status 3" in result.output
    assert "mlflow-server.log" in result.output and "backend store is broken" in result.output
    assert not ui_records.state_path(project_config).exists()
    assert child_pids() == children


def test_stop_cleans_up_a_record_of_dead_servers(project_config):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = {"pid": dead.pid, "host": "127.0.0.1", "port": 1, "url": "http://127.0.0.1:1",
              "log_path": "x.log", "started_at": "2025-01-01T00:00:00+00:00"}  # fmt: skip
    state = ui_records.state_path(project_config)
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"prefect": record, "mlflow": record}))
    assert ui_servers.running_prefect_api(project_config) is None

    result = invoke(project_config, "--stop")
    assert result.exit_code == 0, result.output
    assert "was no longer running" in result.output
    assert not state.exists()


def test_recorded_server_that_does_not_answer_is_left_alone_until_stop(project_config):
    # A stand-in whose command line names prefect, so it passes the pid-reuse check.
    hung = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "prefect"], start_new_session=True
    )
    record = {"pid": hung.pid, "host": "127.0.0.1", "port": free_port(),
              "log_path": "x.log", "started_at": "2025-01-01T00:00:00+00:00"}  # fmt: skip
    record["url"] = f"http://127.0.0.1:{record['port']}"
    state = ui_records.state_path(project_config)
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"prefect": record}))
    try:
        started = invoke(project_config, *ports())
        assert started.exit_code == 1
        assert f"pid {hung.pid}" in started.output and "foundry ui --stop" in started.output
        assert hung.poll() is None and state.exists()

        stopped = invoke(project_config, "--stop")
        assert stopped.exit_code == 0, stopped.output
        assert f"stopped the Prefect server (pid {hung.pid}" in stopped.output
        assert not is_alive(hung.pid)
    finally:
        hung.kill()


def test_servers_that_do_not_answer_in_time_are_both_stopped(project_config):
    args = ports()
    children = child_pids()
    with pytest.raises(ui_records.ServerStartError, match="did not answer .* within 0.5 s"):
        ui_servers.start_servers(
            project_config, prefect_port=int(args[1]), mlflow_port=int(args[3]), timeout_s=0.5
        )
    assert not ui_records.state_path(project_config).exists()
    assert child_pids() == children
