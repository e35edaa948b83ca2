"""The `together` target: persona adapters in a Together project's model registry.

`make_target(config)` builds a `TogetherTarget` on the real `together` SDK. Uploads take the v2
registry route, which sends the adapter files themselves and nothing else: `models.create(type=
"adapter")`, `POST .../models/upload/create`, a PUT of each part to its signed URL (a plain HTTP
client that never carries the API key: `deploy.together_upload`), `POST
.../models/upload/complete`; the new revision is ready once Together's validation job says so.
Uploads are named by content (`persona-<slug>-<short_digest>`), so the same weights go up once. With
`deploy.together.endpoint_id` the adapter is attached to every deployment of that dedicated
endpoint (`deploy.together_endpoint`); serverless needs no step. SDK errors become
`TogetherApiError` and transient ones are retried (`deploy.together_calls`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from deploy import DeployError
from deploy.bundle import AdapterBundle, TargetLimits
from deploy.config import TogetherTargetConfig
from deploy.release import Remote
from deploy.together_calls import TogetherApiError, call_with_retries, poll_until
from deploy.together_endpoint import EndpointAdapters
from deploy.together_upload import local_file, put_file, put_part, signed_url_client
from foundry.config import FoundryConfig, load_settings
from foundry.logs import get_logger
from foundry.training.config import TINY

logger = get_logger(__name__)
T = TypeVar("T")

VALID = "REVISION_VALIDATION_STATUS_SUCCESS"
INVALID = ("REVISION_VALIDATION_STATUS_FAILED", "REVISION_VALIDATION_STATUS_ERROR")
MODEL_PATH = re.compile(r"^projects/[^/]+/models/([^/]+)")


def upload_name(bundle: AdapterBundle) -> str:
    """The model name an adapter's bytes get on Together: same bytes, same name."""
    return f"persona-{bundle.slug}-{bundle.short_digest}"


def _bare(name: str) -> str:
    """`project-slug/model` -> `model` (Together qualifies names with the project)."""
    return name.rsplit("/", 1)[-1]


def make_target(config: FoundryConfig) -> TogetherTarget:
    """A Together target for `config.deploy.together` with the key from the environment.

    Raises:
        DeployError: no API key or project id, or the base model is the embedded `tiny`.
    """
    import together

    settings = load_settings()
    key = settings.together_api_key.get_secret_value() if settings.together_api_key else ""
    if not key:
        raise DeployError(
            "deploying to together needs an API key: set TOGETHER_API_KEY "
            "(or FOUNDRY_TOGETHER_API_KEY)"
        )
    section = config.deploy.together
    base = section.base_model or config.base_model.name
    if base == TINY:
        raise DeployError(
            "Together cannot serve the embedded `tiny` base model; train on a Together base "
            "(`base_model.name`) and set `deploy.together.base_model` to it"
        )
    project = section.project_id or settings.together_project_id or ""
    if not project:
        raise DeployError(
            "deploying to together needs a project: set `deploy.together.project_id` or "
            "TOGETHER_PROJECT_ID (or FOUNDRY_TOGETHER_PROJECT_ID)"
        )
    # No base_url unless one is set: the SDK sends chat to its inference host only by default.
    client = together.Together(
        api_key=key, base_url=settings.together_base_url or None, project_id=project, max_retries=0
    )
    target = TogetherTarget(client, base, section, config.deploy.max_adapter_mb)
    if config.base_model.name != TINY:  # `deploy.together.base_model` names the trained base
        target.accepted_bases = (base, config.base_model.name)
    return target


class TogetherTarget:
    """`deploy.release.Target` on a Together project (and optionally a dedicated endpoint)."""

    name = "together"

    def __init__(
        self, client: Any, base_model: str, section: TogetherTargetConfig, max_adapter_mb: float
    ) -> None:
        self._client = client
        self._key = client.api_key
        self._http = signed_url_client()  # signed part URLs only: never the API key
        self._base_id = ""
        self.base_model = base_model
        self.section = section
        self.max_adapter_mb = max_adapter_mb
        self.retry_delay_s = 1.0  # doubled after each failed try
        self.accepted_bases: tuple[str, ...] = (base_model,)  # model-version `base_model` tags
        self._endpoint = EndpointAdapters(client, section, self._call)

    # Target

    def limits(self, bundle: AdapterBundle) -> TargetLimits:
        """Together's LoRA rank limit for the base; a base it does not know is an error."""
        limits = self._client.fine_tuning.model_limits
        try:
            found = self._call(f"limits of {self.base_model}", limits, model_name=self.base_model)
        except TogetherApiError as exc:
            if exc.status not in (400, 404, 422):
                raise
            raise DeployError(
                f"{bundle.slug} v{bundle.version}: Together does not serve base "
                f"{self.base_model!r} ({exc}); set `deploy.together.base_model` to the Together "
                "base the adapter was trained on"
            ) from None
        max_rank = int(getattr(found.lora_training, "max_rank", 0) or 0)
        if max_rank < 1:
            raise DeployError(f"Together serves no LoRA adapters on base {self.base_model!r}")
        max_bytes = int(self.max_adapter_mb * 2**20)
        accepted = tuple(dict.fromkeys(self.accepted_bases))
        return TargetLimits(self.name, 1, max_rank, max_bytes, accepted)

    def find(self, bundle: AdapterBundle) -> Remote | None:
        model = self._model_named(upload_name(bundle))
        if model is None:
            return None
        revision = self._revision(model.id, "")
        if revision is None or revision.validation_status != VALID:
            return None
        return Remote(model.id, model.name)

    def upload(self, bundle: AdapterBundle) -> Remote:
        name = upload_name(bundle)
        try:
            model = self._create_model(name, f"{bundle.slug} v{bundle.version}")
            revision_id = self._upload_files(model.id, bundle)
            poll_until(
                f"Together's validation job {revision_id} for {name}",
                lambda: self._validation(name, model.id, revision_id),
                self.section,
            )
            logger.info("Together validated %s (revision %s)", name, revision_id)
        except DeployError as exc:
            raise DeployError(f"{bundle.slug} v{bundle.version} on together: {exc}") from None
        return Remote(model.id, model.name)

    def activate(self, remote: Remote) -> None:
        self._endpoint.attach(remote)

    def deactivate(self, remote: Remote) -> None:
        self._endpoint.detach(remote)

    def chat(self, model: str, messages: list[dict[str, str]], max_tokens: int) -> str:
        create = self._client.chat.completions.create
        answer = self._call(
            f"chat with {model}", create, model=model, messages=messages, max_tokens=max_tokens
        )
        choice = answer.choices[0] if answer.choices else None
        return (choice.message.content if choice and choice.message else "") or ""

    def live(self) -> set[str] | None:
        names = {m.id: m.name for m in self._models() if _bare(m.name).startswith("persona-")}
        if not self.section.endpoint_id:
            return set(names.values())
        attached = self._endpoint.attached_ids()
        return {name for model_id, name in names.items() if model_id in attached}

    def close(self) -> None:
        self._http.close()
        self._client.close()

    # Calls

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(...)`, retried on 429/5xx/no answer; every failure becomes TogetherApiError."""
        return call_with_retries(what, lambda: fn(*args, **kwargs), self.retry_delay_s, self._scrub)

    def _scrub(self, text: str) -> str:
        """Never let the key out, even when an answer echoes it."""
        return text.replace(self._key, "<api key>") if self._key else text

    def _post(self, what: str, route: str, body: dict[str, Any]) -> dict[str, Any]:
        """A v2 project route the SDK has no method for (its CLI posts them the same way)."""
        path = f"/v2/projects/{quote(self._client.project_id, safe='')}/{route}"
        answer = self._call(what, self._client.post, path, cast_to=object, body=body)
        return answer if isinstance(answer, dict) else {}

    # Models and uploads

    def _models(self) -> list[Any]:
        return self._call("listing models", lambda: list(self._client.models.list()))

    def _model_named(self, name: str) -> Any | None:
        return next((m for m in self._models() if _bare(m.name) == name), None)

    def _base_model_id(self) -> str:
        """The `ml_...` id `models.create` wants for the base (resolved once by exact name)."""
        if self.base_model.startswith("ml_") or self._base_id:
            return self._base_id or self.base_model
        search = self._client.models.list_supported
        found = self._call("listing supported models", lambda: list(search(search=self.base_model)))
        for model in found:
            for profile in model.deployment_profiles or []:
                match = MODEL_PATH.match(profile.model or "")
                if match and profile.api_model_name == self.base_model:
                    self._base_id = match.group(1)
                    return self._base_id
        raise DeployError(
            f"Together lists no supported model named {self.base_model!r}; set "
            "`deploy.together.base_model` to its exact name or its ml_ id"
        )

    def _create_model(self, name: str, who: str) -> Any:
        """The adapter model `name`; one that exists already (409) is reused."""
        base_id = self._base_model_id()
        create = self._client.models.create
        try:
            return self._call(
                f"creating {name}", create, base_model_id=base_id, name=name, type="adapter",
                description=f"Persona Foundry adapter: {who}",
            )  # fmt: skip
        except TogetherApiError as exc:
            if exc.status != 409:
                raise
        model = self._model_named(name)
        if model is None:
            raise DeployError(f"Together says {name} exists but does not list it; try again")
        logger.info("%s exists on Together already (%s); reusing it", name, model.id)
        return model

    def _upload_files(self, model_id: str, bundle: AdapterBundle) -> str:
        """Send the bundle's files as model `model_id`'s new revision; its id."""
        files = {n: local_file(n, p) for n, p in bundle.files().items()}
        logger.info("uploading %s (%d bytes) to Together", upload_name(bundle), bundle.size_bytes)
        offer = [{"path": f.path, "hash": f.hash, "numParts": len(f.parts)} for f in files.values()]
        plan = self._post(
            f"upload of {model_id}", "models/upload/create", {"objectId": model_id, "files": offer}
        )
        done = []
        for remote in plan.get("files") or []:
            local = files.get(str(remote.get("path")))
            if local is None:
                raise DeployError(f"Together asked for a file not offered: {remote.get('path')}")
            done.append(put_file(local, remote, self._put_part))
        answer = self._post(
            f"completing the upload of {model_id}",
            "models/upload/complete",
            {"objectId": model_id, "files": done},
        )
        return str(answer.get("revisionId") or "")

    def _put_part(self, what: str, url: str, headers: dict[str, str], data: bytes) -> str:
        """One part PUT to its signed URL, retried like any call; its ETag."""
        return self._call(what, put_part, self._http, url, headers, data)

    def _revision(self, model_id: str, revision_id: str) -> Any | None:
        """Revision `revision_id` of the model (empty: its newest), or None."""
        listing = self._call(
            f"revisions of {model_id}", self._client.models.list_revisions, model_id
        )
        revisions = sorted(listing.data or [], key=lambda r: r.created_at)
        if not revision_id:
            return revisions[-1] if revisions else None
        return next((r for r in revisions if r.revision_id == revision_id), None)

    def _validation(self, name: str, model_id: str, revision_id: str) -> str | None:
        """None once Together's validation job passed the revision; its state while it runs."""
        revision = self._revision(model_id, revision_id)
        status = revision.validation_status if revision is not None else "not listed yet"
        job = revision.revision_id if revision is not None else revision_id
        if status in INVALID:
            errors = "; ".join(e.message or "" for e in revision.validation_errors or [])
            raise DeployError(
                f"Together's validation job {job} for {name} ended {status}: "
                f"{errors or 'no reason given'}"
            )
        return None if status == VALID else str(status)
