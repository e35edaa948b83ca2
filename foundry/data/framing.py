"""How persona text is framed as chat: debate prompts, topic splits and contract system prompts.

Training, generation and synthesis share these, so a persona is always addressed the same way: the
user turn is a debate prompt, the assistant turn is what the persona wrote or says.

`encode_completion` turns one (system, prompt, completion) row into token ids the same way for
scoring, activation reading and any other pass over a mixed-adapter batch, whose rows name their
adapter (`BASE_ADAPTER` for the bare base).

Topics split three ways by group (`split_topics`): `train` topics frame corpus items and get
synthetic turns; `dev` topics get synthetic turns and pairs that only ever land in the eval split
(DPO and SFT eval loss); `heldout` topics are never trained on or synthesized: evaluation's own.
A topic that asks a question the evaluation asks anyway (a conflict's question, `asked`) goes with
its group to a fourth role, `conflict_topics`: never synthesized or trained on (its `role` reads
`heldout`), but not one of evaluation's held-out topics either: the evaluation asks it as the
conflict, and the corpus documents nearest to it stay where the date puts them, as they would if
the question were only in `conflicts.yaml`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from foundry.data.schemas import CorpusItem, DebateTopic, PersonaContract

TopicRole = Literal["train", "dev", "heldout"]

GENERIC_PROMPT = "Give your view on the debate."
BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed batch
# Completion tokens scored (log-likelihoods) or read (persona vectors) per row: an essay's first
# ~340 words. Every variant's rows are cut the same, whatever its prompt.
MAX_SCORED_TOKENS = 448


def debate_prompt(topic: DebateTopic | None) -> str:
    """The user turn for a debate topic."""
    return f"Debate prompt: {topic.prompt}" if topic else GENERIC_PROMPT


class TopicSplit(BaseModel):
    train: list[DebateTopic] = Field(default_factory=list)
    dev: list[DebateTopic] = Field(default_factory=list)
    heldout: list[DebateTopic] = Field(default_factory=list)
    conflict_topics: list[DebateTopic] = Field(
        default_factory=list,
        description="Groups with a conflict's question: never trained on, asked as conflicts.",
    )

    @property
    def framing(self) -> list[DebateTopic]:
        """Topics a corpus item may be framed by: everything but the held-out ones."""
        return self.train + self.dev

    @property
    def every(self) -> list[DebateTopic]:
        """All topics, the ones a text's nearest topic is chosen among."""
        return self.train + self.dev + self.heldout + self.conflict_topics

    def role(self, topic_id: str) -> TopicRole:
        """A conflict's topic reads `heldout`: nothing is trained on it."""
        for role in ("train", "dev", "heldout", "conflict_topics"):
            if any(t.id == topic_id for t in getattr(self, role)):
                return "heldout" if role == "conflict_topics" else role  # type: ignore[return-value]
        raise KeyError(f"topic {topic_id!r} is not in the topics file")


def split_topics(
    topics: Sequence[DebateTopic],
    heldout_fraction: float,
    dev_fraction: float,
    asked: Collection[str] = (),
) -> TopicSplit:
    """Split topics by group into train, dev and held-out, stably (a hash order of group keys).

    Every group with a topic whose prompt is one of `asked` (questions the evaluation asks by
    itself: the conflicts') goes to `conflict_topics`, so those prompts are never synthesized.
    Of the other groups, with three or more, dev and held-out get at least one each and train
    keeps at least one; with fewer, they are all train. Adding a topic never moves another group.
    """
    questions = {question_key(q) for q in asked}
    forced = {t.group_key for t in topics if question_key(t.prompt) in questions}
    groups = sorted(
        {t.group_key for t in topics} - forced,
        key=lambda g: hashlib.sha256(g.encode()).hexdigest(),
    )
    heldout_n = dev_n = 0
    if len(groups) >= 3:
        heldout_n = max(1, round(len(groups) * heldout_fraction))
        dev_n = max(1, round(len(groups) * dev_fraction))
        heldout_n = min(heldout_n, len(groups) - 2)
        dev_n = min(dev_n, len(groups) - heldout_n - 1)
    heldout = set(groups[:heldout_n])
    dev = set(groups[heldout_n : heldout_n + dev_n])
    split = TopicSplit()
    for topic in topics:
        key = topic.group_key
        role = "train"
        if key in forced:
            role = "conflict_topics"
        elif key in heldout or key in dev:
            role = "heldout" if key in heldout else "dev"
        getattr(split, role).append(topic)
    return split


def question_key(prompt: str) -> str:
    """A prompt compared as a question: case and spacing do not make it another one."""
    return " ".join(prompt.casefold().split())


def nearest_topics(texts: Sequence[str], topics: Sequence[DebateTopic]) -> list[DebateTopic | None]:
    """Each text's most similar topic by TF-IDF cosine (None when there are no topics)."""
    return [topic for topic, _ in nearest_topic_scores(texts, topics)]


def nearest_topic_scores(
    texts: Sequence[str], topics: Sequence[DebateTopic]
) -> list[tuple[DebateTopic | None, float]]:
    """Each text's most similar topic and its TF-IDF cosine (0 when they share no word)."""
    if not topics or not texts:
        return [(None, 0.0)] * len(texts)
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True)
    matrix = vectorizer.fit_transform([t.prompt for t in topics] + list(texts))
    similarity = (matrix[len(topics) :] @ matrix[: len(topics)].T).toarray()
    best = similarity.argmax(axis=1)
    return [(topics[int(i)], float(similarity[row, i])) for row, i in enumerate(best)]


def conversation(prompt: str, text: str, system: str | None = None) -> dict[str, list[dict]]:
    """A prompt/completion conversation (TRL's format: loss on the completion only)."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return {"prompt": messages, "completion": [{"role": "assistant", "content": text}]}


def contract_system_prompt(contract: PersonaContract) -> str:
    """The persona's contract as a system prompt: the prompt-only baseline's whole persona."""
    lines = [f"You are {contract.name}, a debater. {contract.summary}".strip()]
    for label, value in (
        ("Personality", contract.personality),
        ("Bias", contract.bias),
        ("Stakes", contract.stakes),
        ("Epistemology", contract.epistemology),
        ("Time horizon", contract.time_horizon),
    ):
        if value:
            lines.append(f"{label}: {value}")
    if contract.reasoning_method:
        method = contract.reasoning_method
        lines.append(f"Reasoning method ({method.name}): {method.description}")
        lines += [f"  {i}. {step}" for i, step in enumerate(method.steps, start=1)]
    if contract.style.markers:
        lines.append("Voice: " + "; ".join(contract.style.markers))
    if contract.style.avoid:
        lines.append("Never: " + "; ".join(contract.style.avoid))
    if contract.flip_conditions:
        lines.append("You change your mind only if: " + "; ".join(contract.flip_conditions))
    return "\n".join(lines)


def persona_system_prompt(contract: PersonaContract) -> str:
    """The enhanced system prompt: contract, reasoning method, evidence policy and constitution.

    What `foundry prompts export` writes for systems that stay prompt-only, and the system prompt
    synthesis writes with (the long, cached part of every request).
    """
    lines = [contract_system_prompt(contract)]
    policy = contract.evidence_policy
    if policy.acceptable:
        lines.append("Evidence you trust: " + "; ".join(policy.acceptable))
    if policy.unacceptable:
        lines.append("Evidence you reject: " + "; ".join(policy.unacceptable))
    if policy.weighting:
        lines.append(f"How you weigh evidence: {policy.weighting}")
    if contract.constitution:
        lines.append("Principles you hold yourself to:")
        lines += [f"  - {principle}" for principle in contract.constitution]
    if contract.anchor_excerpts:
        lines.append("In your own words:")
        lines += [f'  "{excerpt.content}"' for excerpt in contract.anchor_excerpts[:3]]
    return "\n".join(lines)


MOVE_CUES = {
    "claim": "",
    "challenge": "Challenge this argument",
    "clarification": "Clarify what you do and do not claim.",
    "concession": "Concede a point and say what would change your mind.",
    "reframe": "Reframe the question in your own terms.",
}
MAX_QUOTE_WORDS = 30


def move_prompt(topic: DebateTopic, move: str, opponent_quote: str = "") -> str:
    """The user turn a synthetic turn answers: the debate prompt plus a short cue for the move.

    This (not the long synthesis request) is what training and pairs use as the prompt, so an
    adapter learns to make each move from a plain debate prompt.
    """
    cue = MOVE_CUES[move]
    if move == "challenge":
        words = opponent_quote.split()
        quote = " ".join(words[:MAX_QUOTE_WORDS]) + (" ..." if len(words) > MAX_QUOTE_WORDS else "")
        cue = f'{cue}: "{quote}"' if quote else "Challenge the conventional view."
    return debate_prompt(topic) + (f"\n{cue}" if cue else "")


def item_prompts(items: Sequence[CorpusItem], topics: Sequence[DebateTopic]) -> dict[str, str]:
    """Each item's debate prompt (its nearest topic), keyed by item id."""
    nearest = nearest_topics([item.text for item in items], topics)
    return {item.id: debate_prompt(topic) for item, topic in zip(items, nearest, strict=True)}


def encode_completion(
    tokenizer: Any,
    prompt: str,
    completion: str,
    system: str | None,
    max_completion: int = MAX_SCORED_TOKENS,
    context: int | None = None,
) -> tuple[list[int], int]:
    """(token ids of prompt + completion, prompt length); the chat template writes the bos.

    The completion is cut at `max_completion` tokens, the same cut for every variant whatever
    its prompt; the prompt is kept whole (a contract system prompt is 730 SmolLM2 tokens) unless
    prompt and completion would pass the model's `context`, when it loses its oldest tokens.
    """
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        completion_ids = [*completion_ids, tokenizer.eos_token_id]
    completion_ids = completion_ids[: max(1, max_completion)]
    if context is not None and len(prompt_ids) + len(completion_ids) > context:
        completion_ids = completion_ids[: max(1, context // 2)]
        prompt_ids = prompt_ids[-(context - len(completion_ids)) :]
    return prompt_ids + completion_ids, len(prompt_ids)


def model_context(model: Any, default: int = 2048) -> int:
    """The longest sequence `model` takes (its position embeddings), or `default`."""
    config = getattr(model, "config", None)
    return int(getattr(config, "max_position_embeddings", None) or default)
