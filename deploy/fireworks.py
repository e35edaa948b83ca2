"""The `fireworks` target: persona adapters as Fireworks PEFT addons, through the `fireworks` SDK.

`make_target(config)` builds a `FireworksTarget` from `deploy.fireworks` and the environment
(FIREWORKS_API_KEY, FIREWORKS_ACCOUNT_ID, FIREWORKS_BASE_URL). An upload is a model named by
content, `persona-<slug>-<short digest>`: created as an `HF_PEFT_ADDON` of the base, its two
adapter files uploaded, validated and polled until READY (`deploy.fireworks_models`). `activate`
loads it as a LoRA onto `deploy.fireworks.deployment` (or without one: serverless, where the base
offers it), `chat` is the smoke test's call, `live` lists the loaded `persona-` models. Transient
errors are retried and every other SDK error becomes a `DeployError` (`deploy.fireworks_calls`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import fireworks
import httpx

from deploy import DeployError
from deploy.bundle import AdapterBundle, TargetLimits
from deploy.fireworks_calls import call_with_retries
from deploy.fireworks_models import (
    MODEL_PREFIX,
    create_addon,
    fireworks_base_name,
    model_id_for,
    send_files,
    wait_ready,
)
from deploy.release import Remote
from foundry.config import FoundryConfig, load_settings
from foundry.logs import get_logger

logger = get_logger(__name__)
T = TypeVar("T")

MIN_RANK, MAX_RANK = 4, 64  # PeftDetails.r: "Must be between 4 and 64, inclusive"
# The attention and MLP projections Fireworks serves LoRA addons on.
ACCEPTED_MODULES = (
    "q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj",
    "gate_proj", "up_proj", "down_proj", "gate_up_proj",
)  # fmt: skip
SERVING_STATES = ("DEPLOYED", "UPDATING")


def make_target(config: FoundryConfig) -> FireworksTarget:
    """A Fireworks client for `config.deploy.fireworks` and the environment's key and account.

    Raises:
        DeployError: the API key or account id is missing, or the base model is not one
            Fireworks can serve.
    """
    settings = load_settings()
    section = config.deploy.fireworks
    if settings.fireworks_api_key is None:
        raise DeployError(
            "the fireworks target needs an API key: set FIREWORKS_API_KEY "
            "(or FOUNDRY_FIREWORKS_API_KEY) in the environment"
        )
    account = section.account_id or settings.fireworks_account_id or ""
    if not account:
        raise DeployError(
            "the fireworks target needs an account id: set `deploy.fireworks.account_id` in the "
            "config or FIREWORKS_ACCOUNT_ID in the environment"
        )
    base = fireworks_base_name(section.base_model or config.base_model.name)
    client = fireworks.Fireworks(
        api_key=settings.fireworks_api_key.get_secret_value(),
        account_id=account,
        base_url=settings.fireworks_base_url or None,
        max_retries=0,  # retried here, where 409 (already exists) is an answer, not a retry
    )
    deployment = section.deployment
    if deployment and not deployment.startswith("accounts/"):
        deployment = f"accounts/{account}/deployments/{deployment}"
    trained_on = config.base_model.name if not config.base_model.is_tiny else base
    return FireworksTarget(
        client,
        account_id=account,
        base_model=base,
        trained_on=trained_on,
        deployment=deployment,
        max_bytes=int(config.deploy.max_adapter_mb * 2**20),
        poll_s=section.poll_s,
        timeout_s=section.timeout_s,
    )


class FireworksTarget:
    """Upload, load, unload and query persona adapters on one Fireworks account."""

    name = "fireworks"

    def __init__(
        self,
        client: fireworks.Fireworks,
        *,
        account_id: str,
        base_model: str,
        trained_on: str,
        deployment: str,
        max_bytes: int,
        poll_s: float,
        timeout_s: float,
    ) -> None:
        self.client = client
        self.account_id = account_id
        self.base_model = base_model
        self.trained_on = trained_on  # the training base adapters for `base_model` name
        self.deployment = deployment
        self.max_bytes = max_bytes
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.retries = 0
        self._http = httpx.Client(timeout=httpx.Timeout(300.0, connect=10.0))  # signed URLs only

    # Calls

    def _call(self, what: str, call: Callable[[], T], ok: tuple[int, ...] = ()) -> T | None:
        """`call()`, retried on transient errors (5xx, 408, 429, no answer); None when it
        fails with a status in `ok`; any other failure is a `DeployError`."""
        return call_with_retries(
            what,
            call,
            ok,
            base_url=self.client.base_url,
            first_wait_s=self.poll_s,
            on_retry=self._count_retry,
        )

    def _count_retry(self) -> None:
        self.retries += 1

    # Checks

    def limits(self, bundle: AdapterBundle) -> TargetLimits:
        """Fireworks' rank range and the configured base; asks Fireworks whether it serves
        that base, and refuses target modules Fireworks does not accept."""
        who = f"{bundle.slug} v{bundle.version}"
        account, _, model = self.base_model.removeprefix("accounts/").partition("/models/")
        base = self._call(
            f"looking up base {self.base_model}",
            lambda: self.client.models.get(model, account_id=account),
            ok=(404,),
        )
        if base is None:
            raise DeployError(
                f"{who}: Fireworks does not serve base {self.base_model}; set "
                "`deploy.fireworks.base_model` to one it lists (`firectl list models`)"
            )
        if base.supports_lora is False:
            raise DeployError(f"{who}: Fireworks serves no LoRA addons on base {self.base_model}")
        refused = sorted(
            {m for m in bundle.target_modules if m.split(".")[-1] not in ACCEPTED_MODULES}
        )
        if refused:
            raise DeployError(
                f"{who}: Fireworks does not accept LoRA target modules {refused}; it accepts "
                f"{', '.join(ACCEPTED_MODULES)}; set `training.lora.target_modules` and retrain"
            )
        bases = tuple(dict.fromkeys((self.base_model, self.trained_on)))
        return TargetLimits(self.name, MIN_RANK, MAX_RANK, self.max_bytes, bases)

    # Uploads

    def _remote(self, model_id: str) -> Remote:
        return Remote(model_id, f"accounts/{self.account_id}/models/{model_id}")

    def _get_model(self, model_id: str) -> Any:
        return self._call(
            f"getting model {model_id}", lambda: self.client.models.get(model_id), ok=(404,)
        )

    def find(self, bundle: AdapterBundle) -> Remote | None:
        """The model of these exact bytes, when it exists and is READY."""
        model_id = model_id_for(bundle)
        model = self._get_model(model_id)
        return self._remote(model_id) if model is not None and model.state == "READY" else None

    def upload(self, bundle: AdapterBundle) -> Remote:
        """Create the addon model, PUT its files, validate, and wait until it is READY.

        A model that exists already (409) is reused; it is uploaded again unless READY.
        """
        model_id = model_id_for(bundle)
        if not create_addon(self._call, self.client, model_id, self.base_model, bundle):
            existing = self._get_model(model_id)
            logger.info(
                "Fireworks model %s exists already (%s)", model_id, existing and existing.state
            )
            if existing is not None and existing.state == "READY":
                return self._remote(model_id)
        send_files(self._call, self.client, self._http, model_id, bundle.files())
        wait_ready(
            self._get_model,
            model_id,
            f"{bundle.slug} v{bundle.version}",
            base_model=self.base_model,
            timeout_s=self.timeout_s,
            poll_s=self.poll_s,
        )
        return self._remote(model_id)

    # Serving

    def _loaded(self) -> list[Any]:
        """Every LoRA loaded on the account (on the configured deployment, when one is set)."""
        models = self._call(
            "listing loaded LoRAs", lambda: list(self.client.lora.list(page_size=200))
        )
        return [m for m in models or [] if not self.deployment or m.deployment == self.deployment]

    def _loaded_as(self, served_name: str) -> list[Any]:
        return [m for m in self._loaded() if m.model == served_name]

    def activate(self, remote: Remote) -> None:
        """Load the LoRA (serving it already is success) and wait until it is deployed."""
        if any(m.state == "DEPLOYED" for m in self._loaded_as(remote.served_name)):
            return
        # Without a deployment: serverless. The SDK says to omit `serverless` for addons; whether
        # a base takes serverless LoRAs is Fireworks' answer, passed on with what to set.
        where = {"deployment": self.deployment} if self.deployment else {}
        try:
            self._call(
                f"loading {remote.served_name} onto {self.deployment or 'serverless'}",
                lambda: self.client.lora.load(model=remote.served_name, **where),
                ok=(409,),  # loaded already
            )
        except DeployError as exc:
            if self.deployment:
                raise
            hint = "to serve it on a dedicated deployment, set `deploy.fireworks.deployment`"
            raise DeployError(f"{exc}; {hint}") from None
        self._wait_loaded(remote.served_name)

    def _wait_loaded(self, served_name: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            states = [m.state for m in self._loaded_as(served_name)]
            if any(state in SERVING_STATES for state in states):
                return
            if time.monotonic() >= deadline:
                raise DeployError(
                    f"Fireworks did not finish loading {served_name} in {self.timeout_s:.0f}s "
                    f"(states {states or 'none'}); raise `deploy.fireworks.timeout_s`"
                )
            time.sleep(self.poll_s)

    def deactivate(self, remote: Remote) -> None:
        """Unload every loaded copy of the LoRA; one that is not loaded is not an error."""
        for loaded in self._loaded_as(remote.served_name):
            deployed_id = (loaded.name or "").rsplit("/", 1)[-1]
            self._call(
                f"unloading {remote.served_name}",
                lambda deployed_id=deployed_id: self.client.lora.unload(deployed_id),
                ok=(404,),
            )

    def chat(self, model: str, messages: list[dict[str, str]], max_tokens: int) -> str:
        """One chat completion's text from the served model (the smoke test's call)."""
        answer = self._call(
            f"chat with {model}",
            lambda: self.client.chat.completions.create(
                model=model, messages=messages, max_tokens=max_tokens
            ),
        )
        content = answer.choices[0].message.content if answer and answer.choices else ""
        if isinstance(content, list):
            content = "".join(str(getattr(part, "text", "") or "") for part in content)
        return content or ""

    def live(self) -> set[str]:
        """The persona models loaded and serving now."""
        prefix = f"accounts/{self.account_id}/models/{MODEL_PREFIX}"
        return {
            m.model
            for m in self._loaded()
            if m.model and m.model.startswith(prefix) and m.state in SERVING_STATES
        }

    def close(self) -> None:
        self._http.close()
        self.client.close()
