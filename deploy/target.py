"""What a serving target is: the `Target` protocol every `deploy/<target>.py` implements, and
`Remote`, an upload on a target as the deploy procedure and the registry record it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from deploy.bundle import AdapterBundle, TargetLimits


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
