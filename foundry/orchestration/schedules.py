"""Prefect schedules for the foundry flows, declared in the project's `prefect.yaml`.

`serve(project_root)` runs the schedules in this process (until Ctrl-C); `register(project_root)`
records them on the Prefect server for a worker (`prefect worker start --pool foundry-local`).
`build_served_deployments(specs)` is the step `serve` hands to Prefect. Reading and checking the
file lives in `prefect_file` (`load_deployments`), one schedule in `schedule_specs` (`next_run`).

Both commands need a lasting Prefect server: without `PREFECT_API_URL` Prefect would start a
temporary one that vanishes with this process, and the schedules with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from foundry.orchestration.prefect_file import (
    LOCAL_POOL,
    DeploymentSpec,
    load_deployments,
    select_deployments,
)
from foundry.orchestration.schedule_specs import ScheduleError, next_run

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

WORKER_HINT = f"prefect worker start --pool {LOCAL_POOL}"


@dataclass(frozen=True)
class RegisteredDeployment:
    """What `register` recorded on the Prefect server for one deployment."""

    name: str
    flow_name: str
    deployment_id: UUID
    work_pool: str
    schedules: tuple[str, ...]
    next_run: datetime | None
    pool_created: bool = False


def build_served_deployments(specs: list[DeploymentSpec]) -> list[RunnerDeployment]:
    """The `RunnerDeployment`s that `serve` hands to `prefect.serve` (no work pool: this process
    runs them); entrypoints stay relative to the project root, where `serve` runs."""
    deployments = []
    for spec in specs:
        deployment = spec.flow.to_deployment(
            name=spec.name,
            schedules=[s.to_prefect() for s in spec.schedules],
            parameters=spec.parameters,
            description=spec.description or None,
            tags=list(spec.tags),
        )
        deployment.entrypoint = spec.entrypoint
        deployments.append(deployment)
    return deployments


def serve(project_root: Path, names: list[str] | None = None) -> None:
    """Run the schedules in this process until Ctrl-C, in the project folder.

    Raises:
        ScheduleError: no lasting Prefect API is configured, or prefect.yaml is invalid.
    """
    from prefect import serve as prefect_serve

    require_api_url()
    specs = select_deployments(load_deployments(project_root), names)
    with _working_directory(project_root):
        prefect_serve(*build_served_deployments(specs))


def register(
    project_root: Path,
    names: list[str] | None = None,
    work_pool: str | None = None,
    code_dir: str | None = None,
) -> list[RegisteredDeployment]:
    """Record the deployments on the Prefect server so a worker runs them on schedule.

    Args:
        project_root: the folder holding prefect.yaml and foundry.yaml.
        names: deployment names (default: all in prefect.yaml).
        work_pool: pool for every selected deployment (default: each one's `work_pool.name`).
            `foundry-local` is created as a process pool when missing; other pools must exist.
        code_dir: folder the worker runs flows in (default: `project_root`); set it to where a
            container image holds the project when the pool runs containers.

    Raises:
        ScheduleError: no lasting Prefect API, prefect.yaml invalid, or a work pool missing.
    """
    from prefect.runner.storage import LocalStorage

    require_api_url()
    specs = select_deployments(load_deployments(project_root), names)
    created = {pool: ensure_work_pool(pool) for pool in {work_pool or s.work_pool for s in specs}}
    storage_dir = code_dir or str(project_root.resolve())
    registered = []
    for spec in specs:
        pool = work_pool or spec.work_pool
        deployment = spec.flow.to_deployment(
            name=spec.name,
            schedules=[s.to_prefect() for s in spec.schedules],
            parameters=spec.parameters,
            description=spec.description or None,
            tags=list(spec.tags),
            work_pool_name=pool,
            work_queue_name=spec.work_queue,
            job_variables=spec.job_variables,
        )
        # The worker's pull step: set_working_directory(storage_dir), as in prefect.yaml.
        deployment.entrypoint = spec.entrypoint
        deployment.storage = LocalStorage(storage_dir)
        deployment_id = deployment.apply()
        runs = [next_run(s) for s in spec.schedules if s.active]
        registered.append(
            RegisteredDeployment(
                name=spec.name,
                flow_name=spec.flow_name,
                deployment_id=deployment_id,
                work_pool=pool,
                schedules=tuple(s.describe() for s in spec.schedules),
                next_run=min(runs) if runs else None,
                pool_created=created[pool],
            )
        )
    return registered


def ensure_work_pool(name: str) -> bool:
    """Create `foundry-local` as a process pool if missing; True when it was created.

    Raises:
        ScheduleError: any other pool is missing (its type and template are for you to choose).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            if name != LOCAL_POOL:
                raise ScheduleError(
                    f"work pool {name!r} does not exist on {require_api_url()}; create it first, "
                    f"e.g. `prefect work-pool create {name} --type kubernetes` "
                    "(see docs/work-pools.md)"
                ) from None
        template = ProcessWorker.get_default_base_job_template()
        client.create_work_pool(
            WorkPoolCreate(name=name, type="process", base_job_template=template)
        )
    return True


def require_api_url() -> str:
    """The configured Prefect API URL (environment or Prefect profile).

    Raises:
        ScheduleError: none is set; the message says how to start a lasting server.
    """
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise ScheduleError(
            "PREFECT_API_URL is not set, so Prefect would start a temporary server that vanishes "
            "with this command (and the schedules with it); run `foundry ui` in another terminal "
            "and export the PREFECT_API_URL it prints (e.g. "
            "export PREFECT_API_URL=http://127.0.0.1:4200/api), then run this again"
        )
    return url


@contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)
