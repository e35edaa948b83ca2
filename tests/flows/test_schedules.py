"""prefect.yaml and `foundry schedule`: loading and checking the deployments, registering them on
the session's Prefect test server, the `serve` build step, and the CLI."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from foundry.cli.schedule import schedule_app
from foundry.orchestration.prefect_file import LOCAL_POOL, load_deployments, select_deployments
from foundry.orchestration.schedule_specs import ScheduleError, ScheduleSpec, next_run
from foundry.orchestration.schedules import build_served_deployments, register, serve
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow
runner = CliRunner()

EXPECTED = {
    "nightly-retrain": ("retrain", {"cron": "0 3 * * *"}),
    "weekly-evaluation": ("evaluate", {"cron": "0 5 * * 1"}),
    "weekly-debate": ("debate", {"cron": "0 6 * * 1"}),
    "data-watch": ("watch-data", {"cron": "*/30 * * * *"}),
}


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Rich wraps table cells at the terminal width; a wide console keeps rows on one line."""
    import foundry.cli.common

    for console in (foundry.cli.common.console, foundry.cli.common.err_console):
        monkeypatch.setattr(console, "width", 400)


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(schedule_app, name="schedule")
    return app


def write_project(root: Path, deployments: str) -> Path:
    """A project with prefect.yaml and a stub flow package named uniquely (modules stay cached)."""
    package = f"stubflows_{uuid.uuid4().hex[:12]}"
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    (root / package / "jobs.py").write_text(
        textwrap.dedent(
            """
            from pathlib import Path

            from prefect import flow

            @flow(name="stub-probe")
            def probe(tag: str = "x") -> None:
                Path("probe.txt").write_text(f"{Path.cwd()} {tag}")

            @flow(name="stub-retrain")
            def retrain(config_path: str | None = None, force: bool = False) -> None:
                pass

            def not_a_flow() -> None:
                pass
            """
        )
    )
    (root / "foundry.yaml").write_text("")
    body = deployments.replace("PKG", package)
    (root / "prefect.yaml").write_text(f"name: stub\ndeployments:\n{textwrap.indent(body, '  ')}")
    return root


GOOD_DEPLOYMENT = """\
- name: stub-nightly
  entrypoint: PKG/jobs.py:retrain
  parameters: {force: true}
  schedules: [{cron: "0 3 * * *", timezone: UTC}]
"""


PROBE_DEPLOYMENT = """\
- name: stub-probe-hourly
  entrypoint: PKG/jobs.py:probe
  parameters: {tag: registered}
  schedules: [{interval: 3600, active: false}]
"""


# prefect.yaml as shipped


def test_prefect_yaml_entrypoints_resolve_to_the_named_flows_and_their_parameters():
    specs = load_deployments(REPO_ROOT)

    assert [s.name for s in specs] == list(EXPECTED)
    for spec in specs:
        flow_name, schedule = EXPECTED[spec.name]
        assert spec.flow_name == flow_name
        accepted = inspect.signature(spec.flow.fn).parameters
        assert set(spec.parameters) <= set(accepted)
        assert [s.cron for s in spec.schedules] == [schedule["cron"]]
        assert all(s.timezone == "UTC" for s in spec.schedules)
        assert (spec.work_pool, spec.work_queue) == (LOCAL_POOL, "default")
        assert spec.description and "foundry" in spec.tags


def test_the_weekly_debate_debates_the_champions_on_every_held_out_conflict():
    [spec] = select_deployments(load_deployments(REPO_ROOT), ["weekly-debate"])

    assert spec.parameters == {
        "conflicts": ["all"],
        "variants": ["prompt", "dpo"],
        "champions": True,
    }
    validated = spec.flow.validate_parameters(spec.parameters)
    assert {name: validated[name] for name in spec.parameters} == spec.parameters


def test_served_deployments_carry_schedules_parameters_and_no_work_pool():
    specs = load_deployments(REPO_ROOT)

    deployments = build_served_deployments(specs)

    for spec, deployment in zip(specs, deployments, strict=True):
        assert deployment.name == spec.name
        assert deployment.flow_name == spec.flow_name
        assert deployment.entrypoint == spec.entrypoint
        assert deployment.parameters == spec.parameters
        assert deployment.work_pool_name is None
        assert [s.schedule.cron for s in deployment.schedules] == [s.cron for s in spec.schedules]
        assert [s.schedule.timezone for s in deployment.schedules] == ["UTC"]


def test_prefect_yaml_registers_with_its_schedules_pool_and_parameters(prefect_harness):
    from prefect.client.orchestration import get_client

    registered = register(REPO_ROOT)

    assert [r.name for r in registered] == list(EXPECTED)
    with get_client(sync_client=True) as client:
        assert client.read_work_pool(LOCAL_POOL).type == "process"
        for spec, row in zip(load_deployments(REPO_ROOT), registered, strict=True):
            deployment = client.read_deployment_by_name(f"{spec.flow_name}/{spec.name}")
            assert deployment.id == row.deployment_id
            assert deployment.work_pool_name == LOCAL_POOL
            assert deployment.work_queue_name == "default"
            assert deployment.parameters == spec.parameters
            assert deployment.entrypoint == spec.entrypoint
            assert deployment.pull_steps == [
                {
                    "prefect.deployments.steps.set_working_directory": {
                        "directory": str(REPO_ROOT.resolve())
                    }
                }
            ]
            schedules = [s.schedule for s in deployment.schedules]
            assert [(s.cron, s.timezone) for s in schedules] == [
                (EXPECTED[spec.name][1]["cron"], "UTC")
            ]
            assert row.next_run is not None and row.next_run > datetime.now(UTC)


# Broken prefect.yaml files: the error names the file, the deployment and the key


@pytest.mark.parametrize(
    ("deployment", "expected"),
    [
        (
            GOOD_DEPLOYMENT.replace("PKG/jobs.py", "PKG/missing.py"),
            ["'stub-nightly'", "missing.py", "no file"],
        ),
        (
            GOOD_DEPLOYMENT.replace(":retrain", ":nope"),
            ["'stub-nightly'", "no 'nope'"],
        ),
        (
            GOOD_DEPLOYMENT.replace(":retrain", ":not_a_flow"),
            ["'stub-nightly'", "not a Prefect flow"],
        ),
        (
            GOOD_DEPLOYMENT.replace("{force: true}", "{force: true, bogus: 1}"),
            [
                "'stub-nightly'",
                "bogus",
                "not accepted by flow 'stub-retrain'",
                "config_path, force",
            ],
        ),
        (
            GOOD_DEPLOYMENT.replace("{force: true}", "{force: [1, 2]}"),
            ["'stub-nightly'", "parameters do not fit"],
        ),
        (
            GOOD_DEPLOYMENT.replace("0 3 * * *", "61 * * * *"),
            ["'stub-nightly' (deployments[0].schedules[0])", "Invalid cron string"],
        ),
        (
            GOOD_DEPLOYMENT.replace("timezone: UTC", "timezone: Mars/Olympus"),
            ["'stub-nightly' (deployments[0].schedules[0])"],
        ),
        (
            GOOD_DEPLOYMENT.replace("schedules:", "schedule:"),
            ["'stub-nightly' (deployments[0].schedule)", "unknown key"],
        ),
        (
            GOOD_DEPLOYMENT.replace("PKG/jobs.py:retrain", "PKG.jobs.retrain"),
            ["'stub-nightly' (deployments[0].entrypoint)", "path/to/file.py:function"],
        ),
        (
            GOOD_DEPLOYMENT + GOOD_DEPLOYMENT,
            ["used twice: stub-nightly"],
        ),
    ],
    ids=[
        "missing-file",
        "missing-function",
        "not-a-flow",
        "unknown-parameter",
        "wrong-parameter-type",
        "bad-cron",
        "bad-timezone",
        "unknown-key",
        "module-style-entrypoint",
        "duplicate-name",
    ],
)
def test_broken_prefect_yaml_names_file_deployment_and_key(tmp_path, deployment, expected):
    root = write_project(tmp_path / "broken", deployment)

    with pytest.raises(ScheduleError) as info:
        load_deployments(root)

    message = str(info.value)
    assert str(root / "prefect.yaml") in message
    for part in expected:
        assert part in message


def test_missing_prefect_yaml_says_where_it_looked(tmp_path):
    with pytest.raises(ScheduleError, match="prefect.yaml not found"):
        load_deployments(tmp_path)


# Registration and serving details


def test_register_writes_code_dir_and_updates_on_rerun(tmp_path, prefect_harness):
    from prefect.client.orchestration import get_client

    root = write_project(tmp_path / "code-dir", GOOD_DEPLOYMENT)

    first = register(root, code_dir="/opt/foundry")
    second = register(root, names=["stub-nightly"], code_dir="/opt/foundry")

    assert first[0].deployment_id == second[0].deployment_id
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(first[0].deployment_id)
    assert deployment.parameters == {"force": True}
    assert deployment.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/foundry"}}
    ]


def test_a_worker_runs_a_registered_deployment_in_the_project_folder(tmp_path, prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL
    from prefect.workers.process import ProcessWorker

    root = write_project(tmp_path / "worker", PROBE_DEPLOYMENT)
    pool = f"probe-{uuid.uuid4().hex[:8]}"  # its own pool: no other test's runs are due there
    with get_client(sync_client=True) as client:
        template = ProcessWorker.get_default_base_job_template()
        client.create_work_pool(
            WorkPoolCreate(name=pool, type="process", base_job_template=template)
        )
    [row] = register(root, work_pool=pool)
    assert row.schedules == ("every 1 h [paused]",) and row.next_run is None
    run_deployment("stub-probe/stub-probe-hourly", timeout=0)

    worker = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--run-once"]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    done = subprocess.run(
        worker, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert (root / "probe.txt").read_text() == f"{root.resolve()} registered"


def test_register_refuses_a_work_pool_that_does_not_exist(tmp_path, prefect_harness):
    root = write_project(tmp_path / "no-pool", GOOD_DEPLOYMENT)

    with pytest.raises(ScheduleError, match="prefect work-pool create gpu-k8s --type kubernetes"):
        register(root, work_pool="gpu-k8s")


def test_unknown_deployment_name_lists_the_known_ones(tmp_path):
    specs = load_deployments(write_project(tmp_path / "names", GOOD_DEPLOYMENT))

    with pytest.raises(ScheduleError, match="choose from: stub-nightly"):
        select_deployments(specs, ["nightly"])


def test_serve_and_register_refuse_a_temporary_server(tmp_path):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root = write_project(tmp_path / "no-api", GOOD_DEPLOYMENT)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        for command in (serve, register):
            with pytest.raises(ScheduleError, match="PREFECT_API_URL is not set.*foundry ui"):
                command(root)


def test_next_run_of_cron_and_interval_schedules():
    after = datetime(2026, 1, 1, 4, 0, tzinfo=UTC)

    assert next_run(ScheduleSpec(cron="0 3 * * *"), after) == datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
    assert next_run(ScheduleSpec(interval=1800), after) == after + timedelta(minutes=30)
    assert ScheduleSpec(interval=1800).describe() == "every 30 min"
    assert ScheduleSpec(cron="0 5 * * 1").describe() == "cron 0 5 * * 1 (UTC)"


# CLI


def test_schedule_list_shows_deployments_flows_schedules_pools_and_parameters(cli):
    result = runner.invoke(cli, ["schedule", "list", "--config", str(REPO_ROOT / "foundry.yaml")])

    assert result.exit_code == 0, result.output
    for name, (flow_name, schedule) in EXPECTED.items():
        assert name in result.output
        assert flow_name in result.output
        assert f"cron {schedule['cron']} (UTC)" in result.output
    assert f"{LOCAL_POOL} / default" in result.output
    assert '"deploy": false' in result.output


def test_schedule_list_on_a_broken_file_exits_1_with_the_reason(cli, tmp_path):
    root = write_project(tmp_path / "cli-broken", GOOD_DEPLOYMENT.replace(":retrain", ":nope"))

    result = runner.invoke(cli, ["schedule", "list", "--config", str(root / "foundry.yaml")])

    assert result.exit_code == 1
    assert "stub-nightly" in result.output and "no 'nope'" in result.output


def test_schedule_deploy_prints_next_run_and_worker_command(cli, tmp_path, prefect_harness):
    root = write_project(tmp_path / "cli-deploy", GOOD_DEPLOYMENT)

    result = runner.invoke(cli, ["schedule", "deploy", "--config", str(root / "foundry.yaml")])

    assert result.exit_code == 0, result.output
    assert "stub-nightly" in result.output and "cron 0 3 * * * (UTC)" in result.output
    assert "03:00 UTC" in result.output
    assert f"prefect worker start --pool {LOCAL_POOL}" in result.output


def test_every_schedule_command_has_an_example(cli):
    for command in ("list", "serve", "deploy"):
        result = runner.invoke(cli, ["schedule", command, "--help"])
        assert result.exit_code == 0
        assert "Example: foundry schedule" in result.output
