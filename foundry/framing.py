"""How persona text is framed as chat: debate prompts for corpus items, and contract system prompts.

Training, generation and (later) synthesis share these, so a persona is always addressed the same
way: the user turn is a debate prompt, the assistant turn is what the persona wrote or says.
"""

from __future__ import annotations

from collections.abc import Sequence

from foundry.schemas import DebateTopic, PersonaContract

GENERIC_PROMPT = "Give your view on the debate."


def debate_prompt(topic: DebateTopic | None) -> str:
    """The user turn for a debate topic."""
    return f"Debate prompt: {topic.prompt}" if topic else GENERIC_PROMPT


def nearest_topics(texts: Sequence[str], topics: Sequence[DebateTopic]) -> list[DebateTopic | None]:
    """Each text's most similar topic by TF-IDF cosine (None when there are no topics)."""
    if not topics or not texts:
        return [None] * len(texts)
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True)
    matrix = vectorizer.fit_transform([t.prompt for t in topics] + list(texts))
    similarity = matrix[len(topics) :] @ matrix[: len(topics)].T
    best = similarity.toarray().argmax(axis=1)
    return [topics[int(i)] for i in best]


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
