"""A content-addressed cache of evaluation's batches, so a re-evaluation redoes only what changed.

Every batch evaluation computes (generated answers, completion scores, embeddings) is stored
under the sha256 of a canonical JSON of everything its output depends on: the batch's rows (each
adapter named by the digest of its files, never by its name), the base model's identity and
settings, the library versions, device and thread count it ran with, and the source of the code
that computes it. A batch whose key is stored is not recomputed; a new one is appended the moment
it finishes (`GenerationCache`: one fsynced line, a line cut short by a kill is dropped).

Entry points: `open_eval_cache(config, resolved, use_file)` builds the cache of one evaluation;
`EvalCache.run(kind, jobs)` reuses or computes each `BatchJob` in order; `EvalCache.stats` counts
both. Batches must be formed the same way with or without a cache: this module only remembers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from foundry.config import FoundryConfig
from foundry.data.framing import BASE_ADAPTER
from foundry.logs import get_logger
from foundry.steering.store import vector_digest
from foundry.steering.variants import ResolvedVariant
from foundry.synthesis.generation_cache import GenerationCache
from foundry.synthesis.jobs import SynthesisError
from foundry.training.adapters import adapter_digest
from foundry.training.datasets import file_digest
from foundry.training.smollm2 import smollm2_identity
from foundry.training.tiny_cache import latest_tiny

logger = get_logger(__name__)

CACHE_VERSION = 1  # bump when what a stored value means changes
CACHE_DIRNAME = "eval-cache"
CACHE_FILENAME = "batches.jsonl"
# Modules whose code decides a cached output: editing one invalidates what it computed before.
CODE_MODULES = (
    "foundry.training.adapters",
    "foundry.training.base_model",
    "foundry.training.tiny_cache",
    "foundry.training.tiny_model",
    "foundry.evaluation.embeddings",
    "foundry.evaluation.cache",
    "foundry.evaluation.scoring",
    "foundry.training.scoring",
    "foundry.data.framing",  # chat rows as token ids (`encode_completion`)
    "foundry.training.generation",
    "foundry.training.prefix",  # shared prompt prefixes read once
)
LIBRARIES = (
    "numpy",
    "peft",
    "scikit-learn",
    "sentence-transformers",
    "tokenizers",
    "torch",
    "transformers",
)


@dataclass
class CacheStats:
    """Batches taken from the cache and batches computed, by kind (answers, scores, embeddings)."""

    reused: Counter[str] = field(default_factory=Counter)
    computed: Counter[str] = field(default_factory=Counter)
    computed_by: Counter[str] = field(default_factory=Counter)  # persona -> batches computed
    is_model_loaded: bool = False


@dataclass(frozen=True)
class BatchJob:
    """One batch: its key, the persona it involves (None: several), its rows, how to compute it.

    `compute` returns a JSON value (lists, numbers, strings) in the order of the batch's rows; a
    value `is_kept` rejects (a fallback result) is used but not stored.
    """

    key: str
    owner: str | None
    rows: int
    compute: Callable[[], Any]
    is_kept: Callable[[Any], bool] | None = None


class _Store(GenerationCache):
    """The append-only file; a damaged line costs only a recomputed batch, never the run."""

    def _add(self, line: bytes, number: int) -> None:
        try:
            super()._add(line, number)
        except SynthesisError:
            logger.warning("%s, line %d: not a cached batch; ignoring it", self.path, number)


class EvalCache:
    """The cached batches of one evaluation; memory only when `path` is None."""

    def __init__(
        self,
        path: Path | None,
        context: dict[str, Any],
        adapters: dict[str, str | None],
        stats: CacheStats | None = None,
    ) -> None:
        self.store = _Store(path) if path is not None else None
        self.memory: dict[str, Any] = {}
        self.context = context
        self.adapters = adapters | {BASE_ADAPTER: None}
        self.steers: dict[str, str] = {}
        self.stats = stats if stats is not None else CacheStats()

    def adapter_id(self, name: str) -> str | None:
        """What an adapter name stands for in a key: the digest of its files (None: the base)."""
        return self.adapters[name]

    def steer_id(self, names: Sequence[str]) -> list[str]:
        """What steering vector names stand for in a key: their folders' digests and variants."""
        return [self.steers[name] for name in names]

    def key(self, kind: str, payload: Any, use_model: bool = True) -> str:
        """sha256 of the canonical JSON of kind, payload and the context (`use_model`: with the
        base model's identity, which embeddings do not depend on)."""
        context = (
            self.context if use_model else {k: v for k, v in self.context.items() if k != "model"}
        )
        document = {"version": CACHE_VERSION, "kind": kind, "context": context, "payload": payload}
        text = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def run(
        self, kind: str, jobs: Sequence[BatchJob], hook: Callable[[int], None] | None = None
    ) -> list[Any]:
        """Each job's value, in order: from the cache, or computed and saved before the next."""
        values = []
        for job in jobs:
            value = self._get(job.key)
            if value is None:
                value = job.compute()
                if job.is_kept is None or job.is_kept(value):
                    value = self._put(job.key, kind, value)
                self.stats.computed[kind] += 1
                if job.owner is not None:
                    self.stats.computed_by[job.owner] += 1
            else:
                self.stats.reused[kind] += 1
            values.append(value)
            if hook:
                hook(job.rows)
        return values

    def summary(self) -> str:
        """One log line: reused and computed batches by kind."""
        kinds = sorted(set(self.stats.reused) | set(self.stats.computed))
        parts = [
            f"{k} {self.stats.reused[k]} reused, {self.stats.computed[k]} computed" for k in kinds
        ]
        where = self.store.path if self.store else "memory only"
        return f"eval cache ({where}): {'; '.join(parts) or 'nothing to do'}"

    def _get(self, key: str) -> Any | None:
        if key in self.memory:
            return self.memory[key]
        row = self.store.get(key) if self.store else None
        return row["value"] if row is not None and "value" in row else None

    def _put(self, key: str, kind: str, value: Any) -> Any:
        # What is kept is what a later run reads back, so both runs continue from equal values.
        value = json.loads(json.dumps(value))
        self.memory[key] = value
        if self.store is not None:
            created_at = datetime.now(UTC).isoformat(timespec="seconds")
            self.store.append({"key": key, "kind": kind, "value": value, "created_at": created_at})
        return value


def open_eval_cache(
    config: FoundryConfig,
    resolved: Sequence[ResolvedVariant],
    use_file: bool = True,
    stats: CacheStats | None = None,
) -> EvalCache:
    """The cache of one evaluation of `resolved` (under `<cache_dir>/eval-cache`).

    Args:
        config: the project configuration (base model, cache folder).
        resolved: the evaluated variants; their adapter folders are digested.
        use_file: keep batches across runs; False keeps them for this run only.
        stats: counters to fill (a new `CacheStats` when None).

    Returns:
        The cache; memory only when `use_file` is False or the base model's identity is unknown
        (a hub id while online, whose weights may change under the same name).
    """
    base = base_identity(config)
    if use_file and base is None:
        logger.info(
            "eval cache off: base model %r has no content identity (use a local folder, or set "
            "HF_HUB_OFFLINE=1 so its cached revision is used)",
            config.base_model.name,
        )
    context = runtime_context()
    context["model"] = {
        "base": base,
        "settings": config.base_model.model_dump(mode="json"),
        # A model without adapters is the bare base, not a PeftModel: keep their batches apart.
        "has_adapters": any(r.path is not None for r in resolved),
    }
    adapters = {r.adapter: adapter_digest(r.path) for r in resolved if r.path is not None}
    path = config.cache_dir / CACHE_DIRNAME / CACHE_FILENAME if use_file and base else None
    cache = EvalCache(path, context, adapters, stats)
    cache.steers = {
        r.steer: f"{r.variant}:{vector_digest(r.vector)}" for r in resolved if r.steer and r.vector
    }
    return cache


def base_identity(config: FoundryConfig) -> str | None:
    """The base model's content identity, without loading it; None when it has none."""
    settings = config.base_model
    if settings.is_tiny:
        folder = latest_tiny(config)
        return f"tiny:{folder.name}:{_folder_digest(folder)}" if folder else None
    if settings.is_smollm2:
        return smollm2_identity(config)  # the manifest pins every file's sha256
    local = Path(settings.name).expanduser()
    if local.is_dir():
        return f"local:{_folder_digest(local)}"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() not in {"1", "true", "yes"}:
        return None  # online, loading may fetch a newer revision than the one cached here
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(settings.name, "config.json")
    return f"hub:{settings.name}@{Path(found).parent.name}" if isinstance(found, str) else None


def _folder_digest(folder: Path) -> str:
    """sha256 over a model folder's files: weights, tokenizer, chat template, generation config."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return hashlib.sha256(
        "\n".join(f"{p.name}:{file_digest(p)}" for p in files).encode()
    ).hexdigest()


def runtime_context() -> dict[str, Any]:
    """What else an output depends on: library versions, device, threads and our own code."""
    import torch

    cuda = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {
        "libraries": {name: _version(name) for name in LIBRARIES},
        "device": {"cuda": cuda, "cpu": torch.backends.cpu.get_cpu_capability()},
        "threads": torch.get_num_threads(),  # CPU sums may be split differently per thread count
        "code": _code_digest(),
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _code_digest() -> str:
    digest = hashlib.sha256()
    for module in CODE_MODULES:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise ImportError(f"cannot find module {module} to fingerprint the eval cache")
        digest.update(module.encode() + b"\0" + Path(spec.origin).read_bytes() + b"\0")
    return digest.hexdigest()
