"""Prefect schedules for the foundry flows, declared in the project's `prefect.yaml`.

`load_deployments(project_root)` reads and checks the file: each entrypoint must import to a Prefect
flow that accepts the deployment's parameters, and each schedule must be a valid cron or interval.
`serve(project_root)` runs the schedules in this process (until Ctrl-C); `register(project_root)`
records them on the Prefect server for a worker (`prefect worker start --pool foundry-local`).
`build_served_deployments(specs)` is the step `serve` hands to Prefect, and `next_run(schedule)`
says when a schedule fires next.

Both commands need a lasting Prefect server: without `PREFECT_API_URL` Prefect would start a
temporary one that vanishes with this process, and the schedules with it.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from foundry.errors import FoundryError

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment
    from prefect.schedules import Schedule

PREFECT_FILE = "prefect.yaml"
LOCAL_POOL = "foundry-local"
WORKER_HINT = f"prefect worker start --pool {LOCAL_POOL}"


class ScheduleError(FoundryError):
    """`prefect.yaml` is invalid, or its deployments cannot be served or registered."""


class ScheduleSpec(BaseModel):
    """One entry of a deployment's `schedules:` list (Prefect's prefect.yaml format)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: str | None = Field(default=None, description="Cron expression, e.g. '0 3 * * *'.")
    interval: PositiveInt | None = Field(default=None, description="Seconds between runs.")
    timezone: str = Field(default="UTC", description="IANA time zone the cron is read in.")
    active: bool = Field(default=True, description="False registers the schedule paused.")

    @model_validator(mode="after")
    def _check_kind(self) -> ScheduleSpec:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("set exactly one of `cron` (e.g. '0 3 * * *') or `interval` (seconds)")
        # Prefect's own schedule models check the cron string and the time zone.
        try:
            self._prefect_schedule()
        except ValidationError as exc:
            reasons = (e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise ValueError("; ".join(reasons)) from None
        return self

    def _prefect_schedule(self) -> Any:
        from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

        if self.cron is not None:
            return CronSchedule(cron=self.cron, timezone=self.timezone)
        return IntervalSchedule(
            interval=timedelta(seconds=self.interval or 0), timezone=self.timezone
        )

    def describe(self) -> str:
        """Short human form: `cron 0 3 * * * (UTC)` or `every 30 min`."""
        paused = "" if self.active else " [paused]"
        if self.cron is not None:
            return f"cron {self.cron} ({self.timezone}){paused}"
        seconds = self.interval or 0
        if seconds % 3600 == 0:
            return f"every {seconds // 3600} h{paused}"
        if seconds % 60 == 0:
            return f"every {seconds // 60} min{paused}"
        return f"every {seconds} s{paused}"

    def to_prefect(self) -> Schedule:
        """The `prefect.schedules` object that `to_deployment(schedules=...)` takes."""
        from prefect.schedules import Cron, Interval

        if self.cron is not None:
            return Cron(self.cron, timezone=self.timezone, active=self.active)
        return Interval(self.interval or 0, timezone=self.timezone, active=self.active)


class _WorkPoolEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = LOCAL_POOL
    work_queue_name: str | None = "default"
    job_variables: dict[str, Any] = Field(default_factory=dict)


class _DeploymentEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    entrypoint: str = Field(pattern=r"^[^:]+\.py:[A-Za-z_][A-Za-z0-9_]*$")
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    schedules: list[ScheduleSpec] = Field(default_factory=list)
    work_pool: _WorkPoolEntry = Field(default_factory=_WorkPoolEntry)


class _PrefectFile(BaseModel):
    """The keys of prefect.yaml that foundry reads; build/push/pull are for `prefect deploy`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = ""
    prefect_version: str | None = Field(default=None, alias="prefect-version")
    build: Any = None
    push: Any = None
    pull: Any = None
    definitions: Any = None  # a place for YAML anchors
    deployments: list[_DeploymentEntry]


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment from prefect.yaml with its entrypoint resolved to the flow object."""

    name: str
    entrypoint: str  # relative to the project root: `flows/retrain.py:retrain`
    flow: Flow
    description: str = ""
    tags: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: tuple[ScheduleSpec, ...] = ()
    work_pool: str = LOCAL_POOL
    work_queue: str | None = "default"
    job_variables: dict[str, Any] = field(default_factory=dict)

    @property
    def flow_name(self) -> str:
        return self.flow.name


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


def load_deployments(project_root: Path) -> list[DeploymentSpec]:
    """Read `<project_root>/prefect.yaml` and resolve every deployment's flow.

    Raises:
        ScheduleError: the file is missing or malformed, an entrypoint does not import to a flow,
            a flow does not accept a parameter, or a schedule is invalid; the message names the
            file, the deployment and the key.
    """
    path = project_root / PREFECT_FILE
    raw = _read_yaml(path)
    try:
        project = _PrefectFile.model_validate(raw)
    except ValidationError as exc:
        raise ScheduleError(_describe_validation(path, raw, exc)) from None
    names = [entry.name for entry in project.deployments]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ScheduleError(f"{path}: deployment name(s) used twice: {', '.join(duplicates)}")
    return [_resolve(project_root, path, entry) for entry in project.deployments]


def select_deployments(
    specs: list[DeploymentSpec], names: list[str] | None
) -> list[DeploymentSpec]:
    """The deployments called `names`, in that order (all of them when `names` is empty).

    Raises:
        ScheduleError: a name is not in prefect.yaml; the message lists the known names.
    """
    if not names:
        return specs
    known = {spec.name: spec for spec in specs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ScheduleError(
            f"no deployment named {', '.join(map(repr, unknown))} in {PREFECT_FILE}; "
            f"choose from: {', '.join(known)}"
        )
    return [known[n] for n in names]


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


def next_run(schedule: ScheduleSpec, after: datetime | None = None) -> datetime:
    """When `schedule` fires next after `after` (default: now); intervals count from `after`."""
    from prefect.server.schemas.schedules import CronSchedule
    from prefect.utilities.asyncutils import run_coro_as_sync

    start = after or datetime.now(UTC)
    if schedule.interval is not None:
        return start + timedelta(seconds=schedule.interval)
    cron = CronSchedule(cron=schedule.cron or "", timezone=schedule.timezone)
    dates = run_coro_as_sync(cron.get_dates(n=1, start=start)) or []
    return dates[0]


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


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ScheduleError(
            f"{path} not found; the project root is the folder holding foundry.yaml and "
            f"{PREFECT_FILE} (pass --config path/to/foundry.yaml)"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScheduleError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ScheduleError(f"{path}: expected a mapping with a `deployments:` list")
    return data


def _describe_validation(path: Path, raw: dict[str, Any], exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        if len(loc) >= 2 and loc[0] == "deployments" and isinstance(loc[1], int):
            entries = raw.get("deployments") or []
            entry = entries[loc[1]] if loc[1] < len(entries) else {}
            name = entry.get("name") if isinstance(entry, dict) else None
            where = f"deployment {name!r} ({where})" if name else where
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key; check its spelling (foundry reads the Prefect 3 format)"
        if error["type"] == "string_pattern_mismatch":
            message = f"expected `path/to/file.py:function`, got {error['input']!r}"
        lines.append(f"  - {where}: {message}")
    return f"{path}: {len(lines)} error(s)\n" + "\n".join(lines)


def _resolve(project_root: Path, path: Path, entry: _DeploymentEntry) -> DeploymentSpec:
    where = f"{path}: deployment {entry.name!r}"
    flow = _load_flow(project_root, entry.entrypoint, where)
    _check_parameters(flow, entry.parameters, entry.entrypoint, where)
    return DeploymentSpec(
        name=entry.name,
        entrypoint=entry.entrypoint,
        flow=flow,
        description=entry.description,
        tags=tuple(entry.tags),
        parameters=dict(entry.parameters),
        schedules=tuple(entry.schedules),
        work_pool=entry.work_pool.name,
        work_queue=entry.work_pool.work_queue_name,
        job_variables=dict(entry.work_pool.job_variables),
    )


def _load_flow(project_root: Path, entrypoint: str, where: str) -> Flow:
    """Import `flows/x.py:fn` as module `flows.x` from the project root and return the flow."""
    from prefect import Flow

    file_part, function = entrypoint.rsplit(":", 1)
    file = (project_root / file_part).resolve()
    if not file.is_file():
        raise ScheduleError(
            f"{where}: entrypoint {entrypoint!r}: no file {file}; entrypoints are relative to "
            "the folder holding prefect.yaml"
        )
    module_name = ".".join(Path(file_part).with_suffix("").parts)
    root = str(project_root.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        module = importlib.import_module(module_name)
    except (ImportError, SyntaxError) as exc:
        raise ScheduleError(f"{where}: importing {file_part} failed: {exc}") from exc
    loaded_from = Path(getattr(module, "__file__", "") or "").resolve()
    if loaded_from != file:
        raise ScheduleError(
            f"{where}: module {module_name!r} is already imported from {loaded_from}, not {file}; "
            "run from the project that holds this prefect.yaml"
        )
    flow = getattr(module, function, None)
    if flow is None:
        raise ScheduleError(f"{where}: entrypoint {entrypoint!r}: no {function!r} in {file_part}")
    if not isinstance(flow, Flow):
        raise ScheduleError(
            f"{where}: entrypoint {entrypoint!r}: {function!r} is not a Prefect flow "
            "(decorate it with @flow)"
        )
    return flow


def _check_parameters(flow: Flow, parameters: dict[str, Any], entrypoint: str, where: str) -> None:
    from prefect.exceptions import ParameterTypeError

    accepted = list(inspect.signature(flow.fn).parameters)
    unknown = [name for name in parameters if name not in accepted]
    if unknown:
        raise ScheduleError(
            f"{where}: parameters {', '.join(unknown)} are not accepted by flow {flow.name!r} "
            f"({entrypoint}); it accepts {', '.join(accepted)}; fix `parameters` of that deployment"
        )
    try:
        flow.validate_parameters(parameters)
    except ParameterTypeError as exc:
        raise ScheduleError(f"{where}: parameters do not fit flow {flow.name!r}: {exc}") from None


@contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)
