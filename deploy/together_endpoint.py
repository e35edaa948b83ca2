"""Persona adapters on the deployments of a dedicated Together endpoint.

Kept apart from `deploy.together` (registry uploads and chat) because only targets with
`deploy.together.endpoint_id` need it: attaching an adapter to every deployment of the endpoint
and waiting until each cluster has loaded it, detaching it, and listing what is attached. Without
an endpoint (serverless) there are no deployments, so every step here is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deploy import DeployError
from deploy.config import TogetherTargetConfig
from deploy.release import Remote
from deploy.together_calls import TogetherApiError, poll_until

LOADED, LOAD_FAILED = "ADAPTER_LOAD_STATE_READY", "ADAPTER_LOAD_STATE_FAILED"


class EndpointAdapters:
    """The adapters attached to `section.endpoint_id`'s deployments.

    `call(what, fn, *args, **kwargs)` makes one SDK call (retried, errors as `TogetherApiError`).
    """

    def __init__(
        self, client: Any, section: TogetherTargetConfig, call: Callable[..., Any]
    ) -> None:
        self._client = client
        self._section = section
        self._call = call

    def attach(self, remote: Remote) -> None:
        """Attach the adapter to every deployment and wait until each has loaded it."""
        endpoint = self._section.endpoint_id
        for deployment in self._deployments():
            self._call_unless(
                409,  # attached already
                f"attaching {remote.served_name} to {endpoint}/{deployment}",
                self._client.endpoints.adapters.create,
                endpoint_id=endpoint,
                deployment_id=deployment,
                adapter_model_id=remote.remote_id,
            )
            poll_until(
                f"loading {remote.served_name} on {endpoint}/{deployment}",
                lambda d=deployment: self._load_state(d, remote),
                self._section,
            )

    def detach(self, remote: Remote) -> None:
        """Detach the adapter from every deployment; one detached already is not an error."""
        endpoint = self._section.endpoint_id
        for deployment in self._deployments():
            for attached in self._attachments(deployment):
                if attached.adapter_model_id != remote.remote_id:
                    continue
                self._call_unless(
                    404,  # detached already
                    f"detaching {remote.served_name} from {endpoint}/{deployment}",
                    self._client.endpoints.adapters.delete,
                    attached.id,
                    endpoint_id=endpoint,
                    deployment_id=deployment,
                    etag=attached.etag,
                )

    def attached_ids(self) -> set[str]:
        """The model ids of the adapters attached to any deployment of the endpoint."""
        return {a.adapter_model_id for d in self._deployments() for a in self._attachments(d)}

    def _call_unless(
        self, done: int, what: str, fn: Callable[..., Any], *args: Any, **kw: Any
    ) -> None:
        """`call(what, fn, ...)`, where an answer with status `done` means done already."""
        try:
            self._call(what, fn, *args, **kw)
        except TogetherApiError as exc:
            if exc.status != done:
                raise

    def _deployments(self) -> list[str]:
        """The deployments of `deploy.together.endpoint_id` (none when serverless)."""
        endpoint_id = self._section.endpoint_id
        if not endpoint_id:
            return []
        retrieve = self._client.endpoints.retrieve
        endpoint = self._call(f"endpoint {endpoint_id}", retrieve, endpoint_id)
        return [d.id for d in endpoint.deployments or []]

    def _attachments(self, deployment: str) -> list[Any]:
        endpoint, adapters = self._section.endpoint_id, self._client.endpoints.adapters
        return self._call(
            f"adapters on {endpoint}/{deployment}",
            lambda: list(adapters.list(endpoint, deployment)),
        )

    def _load_state(self, deployment: str, remote: Remote) -> str | None:
        """None once every cluster of `deployment` serves the adapter; the states until then."""
        rows = [a for a in self._attachments(deployment) if a.adapter_model_id == remote.remote_id]
        clusters = [c for row in rows for c in row.per_cluster or []]
        if any(c.state == LOAD_FAILED for c in clusters):
            reasons = "; ".join(c.message or c.reason or "" for c in clusters)
            raise DeployError(f"{deployment} failed to load {remote.served_name}: {reasons}")
        if clusters and all(c.state == LOADED for c in clusters):
            return None
        return ", ".join(c.state for c in clusters) or "not attached yet"
