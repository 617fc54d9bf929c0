"""HH-RLHF transcripts (``chosen``/``rejected`` dialogues) into canonical pairs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError, RowError
from ..schema import PAIR_COLUMNS
from ..validate import describe, row_label
from .values import append_row, new_columns, pair_skip_reason, text_value

_HH_MARKER = re.compile(r"(?:\A|\n\n)(Human|Assistant):(?: |\Z)")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def parse_hh(transcript: str) -> list[dict[str, str]]:
    r"""Split an HH-RLHF transcript into ``user``/``assistant`` messages (contents stripped).

    Only the markers ``"\n\nHuman: "`` and ``"\n\nAssistant: "`` split turns (also ``"Human: "`` at the
    very start and a bare ``"\n\nAssistant:"`` at the very end), so "Human:" inside a turn stays text.

    Raises:
        RowError: (a ``ValueError``) the text is not a string or does not start with a turn marker.
    """
    return [{"role": role, "content": content} for role, content, _ in _hh_turns(transcript)]


def _hh_turns(text: str) -> list[tuple[str, str, int]]:
    """(role, stripped content, start of the marker) for each turn."""
    if not isinstance(text, str):
        raise RowError(f"expected an HH-RLHF transcript (a string), found {describe(text)}")
    marks = list(_HH_MARKER.finditer(text))
    head = text[: marks[0].start()] if marks else text
    if head.strip():
        raise RowError(f"expected an HH-RLHF transcript starting with '\\n\\nHuman: ', found {text[:60]!r}")
    turns = []
    for k, m in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(text)
        turns.append((_HH_ROLES[m.group(1)], text[m.end() : end].strip(), m.start()))
    return turns


def hh_batch_to_pairs(
    batch: Mapping[str, list], indices: Sequence[int] | None = None, hh_prompt: str = "messages"
) -> dict[str, list]:
    r"""Turn a batch of HH-RLHF rows (``chosen``/``rejected`` transcripts) into canonical pairs.

    The prompt is the transcript before the final assistant turn (messages, or with ``hh_prompt="text"`` the
    raw prefix ending in ``"\n\nAssistant:"``); the response is the final assistant turn, stripped with
    message prompts and as written with text prompts (so ``prompt + chosen`` is the chosen transcript
    exactly). Skip reasons: ``no_assistant_turn`` (a transcript does not end with an assistant turn),
    ``prompt_mismatch`` (the two prefixes differ), ``empty_prompt``, ``empty_response``,
    ``identical_responses``.
    """
    if hh_prompt not in ("messages", "text"):
        raise ConfigError(f"hh_prompt={hh_prompt!r}: expected 'messages' or 'text'")
    out = new_columns(PAIR_COLUMNS)
    for i in range(len(batch["chosen"])):
        row = row_label(i, indices)
        sides = []
        for column in ("chosen", "rejected"):
            text = text_value(batch[column][i], row=row, column=column)
            try:
                sides.append((text, _hh_turns(text)))
            except ValueError as err:
                raise RowError(str(err), row=row, column=column) from None
        (c_text, c_turns), (r_text, r_turns) = sides
        if not c_turns or not r_turns or c_turns[-1][0] != "assistant" or r_turns[-1][0] != "assistant":
            append_row(out, None, "no_assistant_turn")
            continue
        cut = c_turns[-1][2]
        if c_text[:cut] != r_text[: r_turns[-1][2]]:
            append_row(out, None, "prompt_mismatch")
            continue
        if hh_prompt == "text":
            # prompt + response must be the transcript itself: the response keeps its leading space.
            prompt: Any = c_text[:cut] + "\n\nAssistant:" if c_turns[:-1] else ""
            chosen, rejected = c_text[len(prompt) :], r_text[len(prompt) :]
        else:
            prompt = [{"role": role, "content": content} for role, content, _ in c_turns[:-1]]
            chosen, rejected = c_turns[-1][1], r_turns[-1][1]
        values = {
            "prompt": prompt,
            "chosen": chosen,
            "rejected": rejected,
            "chosen_score": None,
            "rejected_score": None,
            "source_id": None if indices is None else str(indices[i]),
        }
        append_row(out, values, pair_skip_reason(prompt, chosen, rejected))
    return out
