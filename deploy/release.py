"""One deploy procedure for all targets: check, upload once, switch, smoke-test, record or undo.

A target module provides `make_target(config) -> Target`; `deploy_version` does the rest the same
way everywhere:

1. the registered version's adapter becomes a bundle (`deploy.bundle`), checked against the
   target's limits before anything leaves the machine;
2. an upload of the same bytes (named by content hash) is reused, else the bundle is uploaded;
3. the target serves it (`activate`) and the shared smoke test asks it one question;
4. on success the version is tagged with the target, remote id, served name, digest and latency,
   and the registered model's `deploy.<target>.version` tag moves to it; an earlier version served
   under another name is retired;
5. on failure the new upload stops being served and the version served before is put back, so a
   target never stays half switched.

The registry is the record of what is deployed where (`deployment_status`); `live()` asks the
target itself, so `foundry deploy status` shows both.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from deploy import DeployError
from deploy.bundle import AdapterBundle, TargetLimits, bundle_from_registry, check_bundle
from deploy.smoke import NotServing, SmokeResult, smoke_test
from foundry.config import FoundryConfig
from foundry.logs import get_logger
from registry.models import CHAMPION, get_alias_version, model_name
from registry.tracking import open_client

logger = get_logger(__name__)


class NoChampion(DeployError):
    """The persona has no champion (and no version was asked for): nothing to deploy."""


@dataclass(frozen=True)
class Remote:
    """An upload on a target: its id there, and the `model` name clients send to reach it."""

    remote_id: str
    served_name: str


class Target(Protocol):
    """What a serving target implements; every method raises `DeployError` on failure."""

    name: str

    def limits(self, bundle: AdapterBundle) -> TargetLimits:
        """Rank, size and base-model limits for this bundle (may ask the remote)."""

    def find(self, bundle: AdapterBundle) -> Remote | None:
        """The upload of exactly these bytes, if the target has it ready."""

    def upload(self, bundle: AdapterBundle) -> Remote:
        """Upload the bundle (an upload that exists already is reused, not an error)."""

    def activate(self, remote: Remote) -> None:
        """Serve `remote` under its served name; serving it already is not an error."""

    def deactivate(self, remote: Remote) -> None:
        """Stop serving `remote`; not serving it is not an error."""

    def chat(self, model: str, messages: list[dict[str, str]], max_tokens: int) -> str:
        """One chat completion's text (the smoke test's call)."""

    def live(self) -> set[str] | None:
        """The served names the target answers for now; None when it cannot tell."""

    def close(self) -> None:
        """Release clients and servers the target started."""


@dataclass(frozen=True)
class DeployResult:
    slug: str
    version: int
    target: str
    served_name: str
    remote_id: str
    digest: str
    reused: bool
    previous_version: int | None
    latency_s: float
    answer: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tag(target: str, key: str) -> str:
    return f"deploy.{target}.{key}"


def current_deployment(client: Any, slug: str, target: str) -> tuple[int, Remote] | None:
    """The version the registry says `target` serves for `slug`, and its remote."""
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_registered_model(model_name(slug)).tags or {}
    except MlflowException:
        return None
    version = tags.get(_tag(target, "version"))
    if not version:
        return None
    mv_tags = client.get_model_version(model_name(slug), version).tags or {}
    remote = Remote(
        mv_tags.get(_tag(target, "remote_id"), ""), mv_tags.get(_tag(target, "served_name"), "")
    )
    return int(version), remote


def resolve_version(client: Any, slug: str, version: int | None) -> int:
    """`version`, or `slug`'s champion; a persona without one is an error saying what to run."""
    if version is not None:
        return version
    champion = get_alias_version(client, slug, CHAMPION)
    if champion is None:
        raise NoChampion(
            f"persona {slug} has no champion to deploy; run `foundry run` (or promote one: "
            f"`foundry registry promote {slug} --version N`)"
        )
    return int(champion.version)


def deploy_version(
    config: FoundryConfig, target: Target, slug: str, version: int | None = None
) -> DeployResult:
    """Serve `slug`'s `version` (default: its champion) on `target`, or leave it as it was.

    Raises:
        DeployError: a check refused the adapter, the upload failed, or the smoke test failed
            (then the previous version is served again).
    """
    started = time.perf_counter()
    client = open_client(config)
    number = resolve_version(client, slug, version)
    bundle = bundle_from_registry(config, slug, number)
    check_bundle(bundle, target.limits(bundle))
    remote = target.find(bundle)
    reused = remote is not None
    if remote is None:
        logger.info(
            "%s v%s: uploading to %s (%s bytes)", slug, number, target.name, bundle.size_bytes
        )
        remote = target.upload(bundle)
    else:
        logger.info(
            "%s v%s: %s already has these weights (%s)", slug, number, target.name, remote.remote_id
        )
    before = current_deployment(client, slug, target.name)
    smoke = _switch(config, target, slug, number, remote, before)
    _record(client, target.name, slug, number, bundle, remote, smoke)
    return DeployResult(
        slug=slug,
        version=number,
        target=target.name,
        served_name=remote.served_name,
        remote_id=remote.remote_id,
        digest=bundle.digest,
        reused=reused,
        previous_version=before[0] if before else None,
        latency_s=smoke.latency_s,
        answer=smoke.text,
        seconds=round(time.perf_counter() - started, 2),
    )


def _switch(
    config: FoundryConfig,
    target: Target,
    slug: str,
    version: int,
    remote: Remote,
    before: tuple[int, Remote] | None,
) -> SmokeResult:
    """Serve `remote` and smoke-test it; on failure serve `before` again and raise.

    A target with no running server (`NotServing`) gets an untested result (latency -1)."""
    try:
        target.activate(remote)
        smoke = smoke_test(
            target.name, target.chat, remote.served_name,
            config.deploy.smoke_prompt, config.deploy.smoke_max_tokens,
        )  # fmt: skip
    except NotServing as exc:
        logger.warning("%s v%s on %s: not smoke-tested: %s", slug, version, target.name, exc)
        smoke = SmokeResult(remote.served_name, "", -1.0)
    except DeployError as exc:
        restored = _roll_back(target, remote, before)
        raise DeployError(f"{slug} v{version} on {target.name}: {exc}; {restored}") from None
    if before and before[1].served_name and before[1].served_name != remote.served_name:
        target.deactivate(before[1])  # the old upload had its own name: retire it
    return smoke


def _roll_back(target: Target, remote: Remote, before: tuple[int, Remote] | None) -> str:
    """Undo a failed switch; says what is served now."""
    if before and before[1] == remote:
        return f"v{before[0]} (the same upload) is still served"
    try:
        target.deactivate(remote)
        if before:
            target.activate(before[1])
    except DeployError as exc:
        logger.error("rolling back on %s failed: %s", target.name, exc)
        return f"rolling back failed too ({exc}); check `foundry deploy status`"
    return f"v{before[0]} is served again" if before else "nothing is served for it"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _record(
    client: Any,
    target: str,
    slug: str,
    version: int,
    bundle: AdapterBundle,
    remote: Remote,
    smoke: SmokeResult,
) -> None:
    name = model_name(slug)
    tags = {
        "remote_id": remote.remote_id,
        "served_name": remote.served_name,
        "digest": bundle.digest,
        "at": _now(),
        "smoke_latency_s": f"{smoke.latency_s:.3f}" if smoke.latency_s >= 0 else "untested",
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), _tag(target, key), value)
    client.set_registered_model_tag(name, _tag(target, "version"), str(version))


def undeploy(config: FoundryConfig, target: Target, slug: str) -> int | None:
    """Stop serving `slug` on `target`; the version that was served (None: nothing was)."""
    client = open_client(config)
    current = current_deployment(client, slug, target.name)
    if current is None:
        return None
    version, remote = current
    target.deactivate(remote)
    name = model_name(slug)
    client.delete_registered_model_tag(name, _tag(target.name, "version"))
    client.set_model_version_tag(name, str(version), _tag(target.name, "undeployed_at"), _now())
    return version


def _ask_live(target: Target | None) -> set[str] | None:
    if target is None:
        return None
    try:
        return target.live()
    except DeployError as exc:
        logger.warning("cannot ask %s what it serves: %s", target.name, exc)
        return None


@dataclass(frozen=True)
class DeploymentRow:
    slug: str
    target: str
    version: int
    served_name: str
    remote_id: str
    deployed_at: str
    latency_s: str
    live: bool | None  # None: the target was not asked or cannot tell


def deployment_status(
    config: FoundryConfig, slugs: list[str], targets: dict[str, Target | None]
) -> list[DeploymentRow]:
    """What the registry records as deployed, per persona and target, checked against each
    target's `live()` where a target object is given."""
    client = open_client(config)
    live = {name: _ask_live(t) for name, t in targets.items()}
    rows = []
    for slug in slugs:
        for name in targets:
            current = current_deployment(client, slug, name)
            if current is None:
                continue
            version, remote = current
            tags = client.get_model_version(model_name(slug), str(version)).tags or {}
            served = live[name]
            rows.append(
                DeploymentRow(
                    slug=slug,
                    target=name,
                    version=version,
                    served_name=remote.served_name,
                    remote_id=remote.remote_id,
                    deployed_at=tags.get(_tag(name, "at"), ""),
                    latency_s=tags.get(_tag(name, "smoke_latency_s"), ""),
                    live=None if served is None else remote.served_name in served,
                )
            )
    return rows
