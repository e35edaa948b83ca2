"""The model steps (train, vectors, evaluation) as Ray tasks, for `orchestration.executor: ray`.

Prefect stays the orchestrator: each Prefect task still runs in the flow's process, submits one
Ray task and waits for it, so task states, retries, caching and the live table are the same as
with the local pool. Ray places the work by the resources of `orchestration.ray.<step>`, retries
it on another node when its node or worker dies (`max_retries`; it resumes from its checkpoints),
and cancels it when the Prefect task gives up (time limit, flow failure or cancellation, or the
flow's process ending, which ends the Ray job that owns the task).

Inputs and outputs travel one of two ways. With `paths.shared_url` empty the project folder is on
a filesystem every node mounts at the same path, and the step reads and writes it there. With a
URL, the flow uploads the step's inputs (config, data, base, adapters) to it, the node unpacks them
into its scratch folder, works there, and uploads the folders the step writes; the flow fetches
them. Either way the flow checks the outputs against the checksums the node wrote and refuses
pickled weights before anything is registered. Log lines of the remote step reach the Prefect
task run's logs while it runs, through a small Ray actor (`LogLines`) the step sends them to
without waiting: a task blocked in `ray.get` hands its CPU back to Ray, which would then start
another step on the same cores.

Public entry points: `ray_session(config)` (connect or start Ray for a run) and `RaySession.run`;
what runs on the node is `foundry.orchestration.ray_node`.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import queue as queue_module
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from foundry.config import ENV_PREFIX, FoundryConfig
from foundry.errors import ConfigError
from foundry.evaluation.cache import CACHE_DIRNAME
from foundry.evaluation.run import JUDGE_DIRNAME
from foundry.logs import get_logger
from foundry.orchestration.config import StepResources
from foundry.orchestration.ray_node import LogLines, step_on_node
from foundry.orchestration.shared_store import SharedStore, verify_tree

logger = get_logger(__name__)

# Read when Ray is imported: off, Ray gives its nodes the loopback address (its setting for
# single-machine use on Windows and macOS, where it is off by default).
LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_job_ids = itertools.count(1)


def import_ray(local: bool = False) -> Any:
    """Ray, or an error that says how to install it. For a `local` Ray (started by the run) the
    node listens on loopback only, not on the machine's network address."""
    if local and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_SWITCH, "0")
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "orchestration.executor is `ray` but Ray is not installed; "
            "`pip install 'persona-foundry[ray]'` (or set orchestration.executor: local)"
        ) from None
    return ray


def step_options(resources: StepResources, max_retries: int) -> dict[str, Any]:
    """Ray task options for one step's resources."""
    options: dict[str, Any] = {
        "num_cpus": resources.num_cpus,
        "num_gpus": resources.num_gpus,
        "max_retries": max_retries,
        "retry_exceptions": False,  # a Python error repeats; only lost workers are retried
    }
    if resources.memory_gb:
        options["memory"] = int(resources.memory_gb * 1024**3)
    if resources.resources:
        options["resources"] = dict(resources.resources)
    return options


def config_overrides(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The `FOUNDRY_A__B` config overrides of this process, which a node must apply too (its own
    environment may lack them); setting variables without `__` (secrets) are not passed."""
    environ = dict(os.environ if environ is None else environ)
    return {k: v for k, v in environ.items() if k.startswith(ENV_PREFIX) and "__" in k}


class RaySession:
    """One run's connection to Ray: the log relay, the shared store and in-flight tasks."""

    def __init__(self, config: FoundryConfig, ray: Any, log_lines: Any) -> None:
        self.config, self.ray, self.log_lines = config, ray, log_lines
        url = config.paths.shared_url
        self.store = SharedStore(url) if url else None
        self.inboxes: dict[int, queue_module.Queue] = {}
        self.in_flight: dict[int, Any] = {}
        self.closing = threading.Event()
        self.pulling = threading.Lock()

    def run(
        self,
        step: str,
        fn: Callable[..., Any],
        config_path: str | None,
        *args: Any,
        log: Any = None,
        timeout: float | None = None,
        outputs: Sequence[Path] = (),
        checkpoints: Path | None = None,
    ) -> Any:
        """`fn(config_path, *args)` as a Ray task with `step`'s resources; its return value.

        `outputs` are the folders the step writes (checked, and fetched with a shared URL);
        `checkpoints` the folder where it checkpoints (mirrored to the shared URL)."""
        log = log or logger
        root = self.config.root
        ray_config = self.config.orchestration.ray
        job = next(_job_ids)
        spec = {
            "job": job,
            "step": step,
            "fn": fn,
            "args": args,
            "config_path": config_path,
            "config_name": self._config_name(config_path),
            "root": str(root),
            "env": config_overrides(),
            "threads": max(1, int(getattr(ray_config, step).num_cpus)),
            "outputs": [_relative(root, folder) for folder in outputs],
            "checkpoints": _relative(root, checkpoints) if checkpoints else "",
            "url": self.config.paths.shared_url,
            "scratch": ray_config.scratch_dir,
            "inputs": self._publish_inputs() if self.store else None,
            "log_lines": self.log_lines,
        }
        options = step_options(getattr(ray_config, step), ray_config.max_retries)
        inbox: queue_module.Queue = queue_module.Queue()
        self.inboxes[job] = inbox
        ref = _remote_step(self.ray).options(name=f"{step}-{job}", **options).remote(spec)
        self.in_flight[job] = ref
        deadline = time.monotonic() + timeout if timeout else None
        try:
            while True:
                done, _ = self.ray.wait([ref], timeout=0.5)
                _drain(inbox, log)
                if done:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{step} ran past {timeout:.0f} s; its Ray task is cancelled (raise the "
                        "limit in `orchestration` if the work needs longer)"
                    )
            result = self.ray.get(ref)
        finally:
            with contextlib.suppress(Exception):  # the step flushed its lines before it ended
                self.pull()
            _drain(inbox, log)
            self.in_flight.pop(job, None)
            self.inboxes.pop(job, None)
            if not self.ray.wait([ref], timeout=0)[0]:
                self.ray.cancel(ref, force=True)
        self._take_outputs(step, result)
        log.info("%s ran on Ray node %s", step, result["node"][:12])
        return _relocated(result["value"], result["root"], str(root))

    def _config_name(self, config_path: str | None) -> str:
        source = Path(config_path) if config_path else self.config.source
        if source is None:
            return ""
        return _relative(self.config.root, source.resolve())

    def _publish_inputs(self) -> dict[str, Any]:
        """Upload what a model step reads (once per content) and return its manifest."""
        config, root = self.config, self.config.root
        cache = config.cache_dir
        parts = [config.data_dir, cache / "base", config.adapters_dir]
        parts += [cache / CACHE_DIRNAME, cache / JUDGE_DIRNAME]  # the evaluation's caches
        if config.source is not None:
            parts.append(config.source)
        assert self.store is not None
        return self.store.put_tree(root, [_relative(root, part) for part in parts])

    def _take_outputs(self, step: str, result: dict[str, Any]) -> None:
        """Check (and with a shared URL fetch) what the step wrote, before anyone uses it."""
        where = f"the {step} step on Ray node {result['node'][:12]}"
        if self.store is None:
            verify_tree(self.config.root, result["outputs"], where)
            return
        self.store.fetch_tree(result["outputs"], self.config.root, result["folders"], where)

    def pull(self) -> None:
        """Hand each remote log line sent so far to the inbox of the job that wrote it."""
        with self.pulling:
            for job, level, message in self.ray.get(self.log_lines.take.remote()):
                inbox = self.inboxes.get(job)
                if inbox is not None:
                    inbox.put((level, message))

    def relay(self) -> None:
        """`pull` every 0.2 s until the session closes (a thread)."""
        while not self.closing.wait(0.2):
            try:
                self.pull()
            except Exception:  # noqa: BLE001 - the actor is gone: the session is ending
                return

    def cancel_all(self) -> None:
        for ref in list(self.in_flight.values()):
            self.ray.cancel(ref, force=True)


@contextmanager
def ray_session(config: FoundryConfig) -> Iterator[RaySession]:
    """Connect to `orchestration.ray.address` (or start a local Ray) for the length of a run."""
    ray_config = config.orchestration.ray
    ray = import_ray(local=not ray_config.address)
    started_here = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False}
        if ray_config.address:
            kwargs["address"] = ray_config.address
        else:  # `local`: a new instance, never a cluster some other process left running
            kwargs |= {"address": "local", "num_cpus": ray_config.local_cpus or os.cpu_count()}
        _check_reachable(ray_config.address)
        try:
            ray.init(**kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = ray_config.address or "a local Ray"
            raise ConfigError(
                f"could not start or reach {where} (orchestration.ray.address): {exc}"
            ) from None
        started_here = True
    resources = ray.cluster_resources()
    logger.info(
        "Ray: %s, %g CPU(s), %g GPU(s)%s",
        ray_config.address or ("local" if started_here else "connected"),
        resources.get("CPU", 0), resources.get("GPU", 0),
        f"; artifacts through {config.paths.shared_url}" if config.paths.shared_url else
        "; project folder shared",
    )  # fmt: skip
    session = RaySession(config, ray, ray.remote(num_cpus=0)(LogLines).remote())
    relay = threading.Thread(target=session.relay, name="ray-log-relay", daemon=True)
    relay.start()
    try:
        yield session
    finally:
        session.closing.set()
        session.cancel_all()
        relay.join(timeout=5)
        ray.kill(session.log_lines)
        if started_here:
            ray.shutdown()


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast on a `host:port` nobody answers at (Ray itself keeps retrying for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # `auto`, empty, or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(
            f"no Ray cluster answers at {address} (orchestration.ray.address): {exc}; check the "
            "head is up (`ray status` on it) and the port is reachable from here"
        ) from None


def _drain(inbox: queue_module.Queue, log: Any) -> None:
    while True:
        try:
            level, message = inbox.get_nowait()
        except queue_module.Empty:
            return
        log.log(level, "%s", message)


def _relative(root: Path, path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise ConfigError(
            f"{path} is outside the project folder {root}; with orchestration.executor: ray every "
            "path a model step uses must be inside it (check `paths:` in foundry.yaml)"
        ) from None


def _relocated(value: Any, old: str, new: str) -> Any:
    """`value` with paths under the node's copy of the project moved to the project's."""
    if old == new:
        return value
    if isinstance(value, str):
        return new + value[len(old) :] if value.startswith(old) else value
    if isinstance(value, dict):
        return {key: _relocated(item, old, new) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_relocated(item, old, new) for item in value)
    return value


@functools.cache
def _remote_step(ray: Any) -> Any:
    """`step_on_node` as a Ray remote function (made once per process)."""
    return ray.remote(step_on_node)
