"""The embedded `tiny` base model: a byte-level BPE tokenizer with a chat template plus a small
`LlamaForCausalLM` trained from scratch on pretraining documents, saved as safetensors.

Public entry points: `build_tiny(settings, documents, folder, progress)` trains and saves one,
`load_tiny_folder(folder)` loads a saved one; `train_tokenizer`, `new_tiny_model` and `pretrain`
are its steps. `PretrainDoc`, `CHAT_TEMPLATE` and `BaseModelError` sit here, at the bottom of the
base-model modules (`tiny_cache` picks the folder, `base_model` loads any base), so every one of
them can use them. Nothing comes from a model hub.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundry.atomic import replace_dir, staged_dir
from foundry.errors import FoundryError
from foundry.logs import get_logger
from foundry.training.config import TinyModelConfig

logger = get_logger(__name__)

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


def load_tiny_folder(folder: Path) -> tuple[Any, Any]:
    """Load a saved tiny base (safetensors only)."""
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    if not (folder / "model.safetensors").is_file():
        raise BaseModelError(f"{folder} has no model.safetensors; delete it to rebuild the base")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    model = LlamaForCausalLM.from_pretrained(folder, use_safetensors=True)
    model.eval()
    return model, tokenizer


def build_tiny(
    settings: TinyModelConfig,
    documents: Sequence[PretrainDoc],
    folder: Path,
    progress: Progress | None,
) -> None:
    """Train a tiny base on `documents` and install it at `folder` (swapped in at once).

    Raises:
        BaseModelError: there are no documents to train on.
    """
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
