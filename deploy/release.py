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

The registry is the record of what is deployed where (`deploy.records`); the `Target` protocol
is in `deploy.target`. Both are re-exported here, so the deploy API is importable from one place.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from deploy import DeployError
from deploy.bundle import bundle_from_registry, check_bundle
from deploy.records import (  # noqa: F401 - re-exported: the deploy API in one place
    DeploymentRow,
    current_deployment,
    deployment_status,
    record_deployment,
    undeploy,
)
from deploy.smoke import NotServing, SmokeResult, smoke_test
from deploy.target import Remote, Target  # noqa: F401 - re-exported
from foundry.config import FoundryConfig
from foundry.logs import get_logger
from registry.models import CHAMPION, get_alias_version
from registry.tracking import open_client

logger = get_logger(__name__)


class NoChampion(DeployError):
    """The persona has no champion (and no version was asked for): nothing to deploy."""


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
    record_deployment(client, target.name, slug, number, bundle, remote, smoke)
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
