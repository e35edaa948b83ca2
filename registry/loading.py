"""Fetch registered adapters: resolve `models:/` URIs, download, check and attach them.

Entry points: `download_adapter` (a checked local adapter folder), `load_adapter` (the
adapter attached to a loaded base model) and `fetch_champions` (every champion laid out like the
trained adapters, for re-evaluation).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from foundry.atomic import replace_dir, staged_dir
from foundry.config import FoundryConfig
from foundry.training.adapters import attach_adapters, check_adapter_folder
from registry.models import CHAMPION, RegistryError, get_alias_version, is_not_found, model_name
from registry.tracking import VECTOR_ARTIFACT, open_client, tracking_uri

if TYPE_CHECKING:
    from peft import PeftModel


def download_adapter(uri: str, tracking_uri: str, dst: Path | None = None) -> Path:
    """Download an adapter folder (e.g. `models:/persona-x@champion`) and check it.

    Args:
        uri: A `models:/`, `runs:/` or artifact URI of the adapter folder.
        tracking_uri: The MLflow tracking (and registry) URI.
        dst: Where to download; None uses a new temporary folder.

    Returns:
        The local adapter folder.

    Raises:
        RegistryError: A `models:/` URI names a missing model, alias or version.
        AdapterError: The folder is incomplete or holds pickled weights (only safetensors load).
    """
    import mlflow

    source = _resolve_models_uri(uri, tracking_uri) if uri.startswith("models:/") else uri
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=source,
        dst_path=str(dst) if dst is not None else None,
        tracking_uri=tracking_uri,
        registry_uri=tracking_uri,
    )
    folder = Path(local)
    check_adapter_folder(folder)
    return folder


def _fetch_vector(run_id: str, tracking_uri: str, target: Path) -> None:
    """Download the persona vector logged with a champion's run to `target` (replaced whole)."""
    import mlflow

    with staged_dir(target.parent, prefix=".vector-") as stage_dir:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path=VECTOR_ARTIFACT,
            dst_path=str(stage_dir),
            tracking_uri=tracking_uri,
        )
        replace_dir(Path(local), target)


def _resolve_models_uri(uri: str, tracking_uri: str) -> str:
    """The artifact URI behind `models:/<name>@<alias>[/path]` or `models:/<name>/<version>`."""
    # MLflow resolves `models:/` URIs with the global registry URI, ignoring `registry_uri=`
    # (ModelsArtifactRepository._get_model_uri_infos), so resolve them with our own client.
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    head, _, rest = uri.removeprefix("models:/").partition("/")
    name, _, alias = head.partition("@")
    version, path = (None, rest) if alias else rest.partition("/")[::2]
    try:
        if alias:
            version = client.get_model_version_by_alias(name, alias).version
        source = client.get_model_version_download_uri(name, version)
    except MlflowException as exc:
        if not is_not_found(exc):
            raise
        raise RegistryError(
            f"cannot resolve {uri}: {exc.message}; see `foundry registry list` for the models, "
            "aliases and versions that exist"
        ) from None
    return f"{source}/{path}" if path else source


def load_adapter(uri: str, base_model: Any, tracking_uri: str, name: str = CHAMPION) -> PeftModel:
    """Download an adapter from the registry and attach it to a loaded base model.

    Args:
        uri: The adapter's URI, e.g. `models:/persona-x@champion`.
        base_model: A transformers causal LM (or a `PeftModel` to add the adapter to).
        tracking_uri: The MLflow tracking (and registry) URI.
        name: The adapter's name on the model.

    Returns:
        The `PeftModel`, in eval mode.

    Raises:
        AdapterError: The adapter folder is invalid or does not fit the base model.
    """
    folder = download_adapter(uri, tracking_uri)
    return attach_adapters(base_model, {name: folder})


def fetch_champions(config: FoundryConfig, slugs: list[str], root: Path) -> dict[str, int]:
    """Download each persona's champion to `root/<slug>/<registry.stage>` (the layout of
    `config.adapters_dir`); personas without a champion are left out.

    Returns:
        persona -> champion version.
    """
    client = open_client(config)
    uri = tracking_uri(config)
    stage = config.registry.stage
    fetched = {}
    for slug in slugs:
        champion = get_alias_version(client, slug, CHAMPION)
        if champion is None:
            continue
        target = root / slug / stage
        target.parent.mkdir(parents=True, exist_ok=True)
        with staged_dir(target.parent, prefix=f".{stage}-") as stage_dir:
            folder = download_adapter(f"models:/{model_name(slug)}@{CHAMPION}", uri, stage_dir)
            replace_dir(folder, target)
        if "vector.layer" in (champion.tags or {}):  # registered with its persona vector
            _fetch_vector(champion.run_id, uri, root / slug / VECTOR_ARTIFACT)
        fetched[slug] = int(champion.version)
    return fetched
