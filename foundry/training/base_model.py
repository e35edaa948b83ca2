"""Base models: the embedded `tiny` model trained locally, or a hub id / local folder.

Entry point: `load_base(config, documents=None, progress=None)` returns a `LoadedBase` (model,
tokenizer, name, local path). `tiny` is a byte-level BPE tokenizer plus a small `LlamaForCausalLM`
trained from scratch on `documents` (all personas' train splits, plain and chat-formatted), cached
under `<cache_dir>/base/` by a hash of the documents and the tiny config, so later runs load it in
seconds. A pin (`tiny_pin`) keeps one base for a set of personas while their corpora are edited,
since a new base would invalidate every adapter trained on the old one. Nothing comes from a
model hub for `tiny`; other names go through transformers and honour `HF_HUB_OFFLINE`. Only
safetensors weights are loaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundry.atomic import replace_dir, staged_dir, write_text_atomic
from foundry.config import FoundryConfig
from foundry.errors import FoundryError
from foundry.logs import get_logger
from foundry.training.config import TinyModelConfig

logger = get_logger(__name__)

CACHE_VERSION = "1"
SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
# One turn per message; the prompt rendered alone is a prefix of prompt + completion, which
# TRL needs for completion-only loss.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n"
    "{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
Progress = Callable[[int, int, float], None]  # (step, total, loss)


class BaseModelError(FoundryError):
    """The base model cannot be built or loaded."""


@dataclass(frozen=True)
class PretrainDoc:
    """A pretraining document for `tiny`: plain text, or a chat exchange when `prompt` is set."""

    text: str
    prompt: str | None = None


@dataclass
class LoadedBase:
    model: Any
    tokenizer: Any
    name: str
    path: Path | None  # local folder (the tiny cache, or a local model); None for a hub id
    is_tiny: bool

    @property
    def identity(self) -> str:
        """The id reports and persona vectors record: `tiny:<build>` (a hash of its inputs) or
        the configured name."""
        return f"tiny:{self.path.name}" if self.is_tiny and self.path else self.name


def load_base(
    config: FoundryConfig,
    documents: Sequence[PretrainDoc] | None = None,
    progress: Progress | None = None,
    *,
    pin: str = "",
    refresh: bool = False,
) -> LoadedBase:
    """Load the configured base model, training and caching `tiny` first when needed.

    `pin` names the inputs the tiny base stands for (`tiny_pin`): a base built under a pin is
    reused for it even after the documents change, so adapters trained on it stay valid;
    `refresh` builds (or finds) the base of the current documents and re-pins it.

    Raises:
        BaseModelError: `tiny` is not cached and no documents were given; a hub model is not
            available offline; 4-bit loading without CUDA; a folder without safetensors weights.
    """
    if config.base_model.is_tiny:
        return _load_tiny(config, documents, progress, pin=pin, refresh=refresh)
    return _load_pretrained(config)


def tiny_pin(config: FoundryConfig, slugs: Sequence[str], documents: Sequence[PretrainDoc]) -> str:
    """What the tiny base must be rebuilt for (`base_model.tiny.rebuild`): its settings and the
    set of personas, plus every train document under `rebuild: corpus`."""
    digest = hashlib.sha256(CACHE_VERSION.encode())
    digest.update(_model_settings(config))
    digest.update(json.dumps(sorted(slugs)).encode())
    if config.base_model.tiny.rebuild == "corpus":
        digest.update(tiny_cache_dir(config, documents).name.encode())
    return digest.hexdigest()[:16]


def tiny_cache_dir(config: FoundryConfig, documents: Sequence[PretrainDoc]) -> Path:
    """Where the tiny base for these documents and this config lives."""
    digest = hashlib.sha256(CACHE_VERSION.encode())
    digest.update(_model_settings(config))
    for doc in documents:
        digest.update(json.dumps([doc.prompt, doc.text]).encode() + b"\0")
    return config.cache_dir / "base" / f"tiny-{digest.hexdigest()[:16]}"


def _model_settings(config: FoundryConfig) -> bytes:
    """The tiny settings that shape the model (not `rebuild`, a policy about when to build)."""
    return config.base_model.tiny.model_dump_json(exclude={"rebuild"}).encode()


def latest_tiny(config: FoundryConfig) -> Path | None:
    """The most recently built tiny base, for loading without the corpus at hand."""
    pointer = config.cache_dir / "base" / "latest"
    if pointer.is_file():
        folder = config.cache_dir / "base" / pointer.read_text().strip()
        if (folder / "model.safetensors").is_file():
            return folder
    return None


def _load_tiny(
    config: FoundryConfig,
    documents: Sequence[PretrainDoc] | None,
    progress: Progress | None,
    *,
    pin: str,
    refresh: bool,
) -> LoadedBase:
    pinned = None if refresh or not pin else _pinned(config, pin)
    if pinned is not None:
        folder = pinned
    elif documents is None:
        folder = latest_tiny(config)
        if folder is None:
            raise BaseModelError(
                f"no tiny base model in {config.cache_dir / 'base'} yet; it is trained from the "
                "corpora on first use: run `foundry train` (or `foundry run`)"
            )
    else:
        folder = tiny_cache_dir(config, documents)
        if not (folder / "model.safetensors").is_file():
            _build_tiny(config.base_model.tiny, documents, folder, progress)
        if pin:
            _set_pin(config, pin, folder)
    if documents is not None or pinned is not None:
        write_text_atomic(config.cache_dir / "base" / "latest", folder.name + "\n")
    model, tokenizer = load_tiny_folder(folder)
    return LoadedBase(model=model, tokenizer=tokenizer, name="tiny", path=folder, is_tiny=True)


PINS_FILENAME = "pins.json"


def _pinned(config: FoundryConfig, pin: str) -> Path | None:
    """The base folder built under `pin`, when it is still there."""
    pins_file = config.cache_dir / "base" / PINS_FILENAME
    if not pins_file.is_file():
        return None
    name = json.loads(pins_file.read_text(encoding="utf-8")).get(pin)
    folder = config.cache_dir / "base" / name if name else None
    return folder if folder and (folder / "model.safetensors").is_file() else None


def _set_pin(config: FoundryConfig, pin: str, folder: Path) -> None:
    pins_file = config.cache_dir / "base" / PINS_FILENAME
    pins = json.loads(pins_file.read_text(encoding="utf-8")) if pins_file.is_file() else {}
    pins[pin] = folder.name
    write_text_atomic(pins_file, json.dumps(pins, indent=2, sort_keys=True) + "\n")


def load_tiny_folder(folder: Path) -> tuple[Any, Any]:
    """Load a saved tiny base (safetensors only)."""
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    if not (folder / "model.safetensors").is_file():
        raise BaseModelError(f"{folder} has no model.safetensors; delete it to rebuild the base")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    model = LlamaForCausalLM.from_pretrained(folder, use_safetensors=True)
    model.eval()
    return model, tokenizer


def _build_tiny(
    settings: TinyModelConfig,
    documents: Sequence[PretrainDoc],
    folder: Path,
    progress: Progress | None,
) -> None:
    if not documents:
        raise BaseModelError("cannot train the tiny base: no training text (empty train splits)")
    logger.info(
        "training the tiny base on %d documents (%d steps)", len(documents), settings.pretrain_steps
    )
    tokenizer = train_tokenizer(documents, settings)
    model = new_tiny_model(settings, tokenizer)
    pretrain(model, tokenizer, documents, settings, progress)
    with staged_dir(folder.parent, prefix=".tiny-") as stage:
        target = stage / folder.name
        model.save_pretrained(target, safe_serialization=True)
        tokenizer.save_pretrained(target)
        replace_dir(target, folder)
    logger.info("tiny base saved to %s", folder)


def render(tokenizer: Any, doc: PretrainDoc) -> str:
    """A document as training text: chat-formatted when it has a prompt, else plain + end token."""
    if doc.prompt is None:
        return f"{tokenizer.bos_token}{doc.text}<|end|>\n"
    messages = [
        {"role": "user", "content": doc.prompt},
        {"role": "assistant", "content": doc.text},
    ]
    return tokenizer.apply_chat_template(messages, tokenize=False)


def train_tokenizer(documents: Sequence[PretrainDoc], settings: TinyModelConfig) -> Any:
    """A byte-level BPE tokenizer (any text encodes, nothing is unknown) with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=settings.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [d.text for d in documents] + [d.prompt for d in documents if d.prompt]
    backend.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|bos|>",
        eos_token="<|end|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"],
        model_max_length=settings.context_length,
        padding_side="right",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def new_tiny_model(settings: TinyModelConfig, tokenizer: Any) -> Any:
    """A randomly initialised small Llama sized by `settings` (seeded)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(settings.seed)
    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=settings.hidden_size,
        num_hidden_layers=settings.num_layers,
        num_attention_heads=settings.num_heads,
        num_key_value_heads=settings.num_heads,
        intermediate_size=settings.intermediate_size,
        max_position_embeddings=settings.context_length,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(model_config)


def pretrain(
    model: Any,
    tokenizer: Any,
    documents: Sequence[PretrainDoc],
    settings: TinyModelConfig,
    progress: Progress | None = None,
) -> list[float]:
    """Next-token training on random windows of the concatenated documents; returns the losses."""
    import torch

    ids = [i for doc in documents for i in tokenizer(render(tokenizer, doc))["input_ids"]]
    stream = torch.tensor(ids, dtype=torch.long)
    window = min(settings.block_size, settings.context_length, max(8, len(ids) - 1))
    generator = torch.Generator().manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.1)
    warmup = max(1, settings.pretrain_steps // 20)

    def rate(step: int) -> float:  # linear warm-up, then cosine decay to 10%
        if step < warmup:
            return (step + 1) / warmup
        done = (step - warmup) / max(1, settings.pretrain_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    model.train()
    losses = []
    for step in range(settings.pretrain_steps):
        starts = torch.randint(0, len(ids) - window, (settings.batch_size,), generator=generator)
        batch = torch.stack([stream[s : s + window] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if progress:
            progress(step + 1, settings.pretrain_steps, losses[-1])
    model.eval()
    return losses


def _load_pretrained(config: FoundryConfig) -> LoadedBase:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings = config.base_model
    local = Path(settings.name).expanduser()
    if local.is_dir():
        _check_safetensors(local)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
    kwargs: dict[str, Any] = {
        "trust_remote_code": settings.trust_remote_code,
        "use_safetensors": True,
        "local_files_only": offline,
    }
    if settings.quantization == "4bit":
        kwargs.update(_four_bit_kwargs())
    elif torch.cuda.is_available():
        kwargs.update(dtype=torch.bfloat16, device_map="auto")
    try:
        tokenizer = AutoTokenizer.from_pretrained(settings.name, **_tokenizer_kwargs(kwargs))
        model = AutoModelForCausalLM.from_pretrained(settings.name, **kwargs)
    except (OSError, ValueError) as exc:
        hint = " (HF_HUB_OFFLINE is set and it is not in the local cache)" if offline else ""
        raise BaseModelError(
            f"cannot load base model {settings.name!r}{hint}: {exc}. Set `base_model.name` to "
            "`tiny`, a local folder with safetensors weights, or a hub id you can download"
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE.replace("<|end|>", tokenizer.eos_token or "")
    model.eval()
    return LoadedBase(
        model=model,
        tokenizer=tokenizer,
        name=settings.name,
        path=local if local.is_dir() else None,
        is_tiny=False,
    )


def _four_bit_kwargs() -> dict[str, Any]:
    import torch
    from transformers import BitsAndBytesConfig

    if not torch.cuda.is_available():
        raise BaseModelError(
            "`base_model.quantization: 4bit` needs a CUDA GPU (bitsandbytes QLoRA); "
            "set it to `none` on this machine"
        )
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )
    return {"quantization_config": quantization, "dtype": torch.bfloat16, "device_map": "auto"}


def _tokenizer_kwargs(model_kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: model_kwargs[k] for k in ("trust_remote_code", "local_files_only")}


def _check_safetensors(folder: Path) -> None:
    if not list(folder.glob("*.safetensors")):
        unsafe = sorted(p.name for p in folder.iterdir() if p.suffix in {".bin", ".pt", ".pth"})
        found = f" (found {', '.join(unsafe)})" if unsafe else ""
        raise BaseModelError(
            f"{folder} has no .safetensors weights{found}; only safetensors are loaded: convert "
            "the weights (for example `model.save_pretrained(dir, safe_serialization=True)`)"
        )
