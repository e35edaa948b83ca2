"""The project's `prefect.yaml`, read and checked: each deployment's entrypoint resolved to a flow.

`load_deployments(project_root)` reads the file: each entrypoint must import to a Prefect flow that
accepts the deployment's parameters, and each schedule must be a valid cron or interval (see
`schedule_specs`). `select_deployments(specs, names)` picks deployments by name. Errors name the
file, the deployment and the key.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foundry.orchestration.schedule_specs import ScheduleError, ScheduleSpec

if TYPE_CHECKING:
    from prefect import Flow

PREFECT_FILE = "prefect.yaml"
LOCAL_POOL = "foundry-local"


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
