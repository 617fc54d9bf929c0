"""Rendering a conversation into the two texts a model scores or continues: the prompt and the response.

With a chat template, :func:`render` gives the generation-prompt rendering of the messages and what the full
rendering (with the assistant's response) adds to it; without one, :func:`render_plain` writes an HH-style
transcript. Dr.SoW's rewards, generation and the experiments render the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

_PLAIN_ROLES = {"user": "Human", "assistant": "Assistant", "system": "System"}


class Rendered(NamedTuple):
    """The two strings both models score: ``log p(response | prompt)``."""

    prompt: str
    response: str


def render_plain(messages: Sequence[Mapping[str, Any]], response: str) -> Rendered:
    r"""HH-style transcript of ``messages`` ending in ``"\n\nAssistant:"``; the response gets a space."""
    turns = "".join(
        f"\n\n{_PLAIN_ROLES.get(m['role'], str(m['role']).capitalize())}: {m['content']}" for m in messages
    )
    return Rendered(turns + "\n\nAssistant:", " " + response)


def render(tokenizer: Any, messages: Sequence[Mapping[str, Any]], response: str) -> tuple[Rendered, bool]:
    """Render with ``tokenizer``'s chat template; returns the texts and whether the prefix rule held.

    The prompt text is the generation-prompt rendering of ``messages``; the response text is what the
    full rendering (with the assistant's ``response``) adds to it. When the full rendering does not start
    with the prompt text, the response text is ``response`` itself and the flag is ``False``.
    """
    messages = [dict(m) for m in messages]
    prompt_text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": response}], tokenize=False
    )
    if full.startswith(prompt_text) and len(full) > len(prompt_text):
        return Rendered(prompt_text, full[len(prompt_text) :]), True
    return Rendered(prompt_text, response), False
