"""TRL preference rows (standard, conversational, implicit prompt) into pairs, and pairs into TRL's format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import RowError
from ..schema import PAIR_COLUMNS
from ..validate import check_messages, check_text, describe, is_list, row_label
from .values import (
    append_row,
    is_empty_prompt,
    new_columns,
    number_value,
    pair_skip_reason,
    prompt_value,
    source_id_of,
    text_value,
)

_SCORE_COLUMNS = (("chosen_score", "rejected_score"), ("score_chosen", "score_rejected"))


def _completion(messages: list[dict[str, str]]) -> tuple[str | None, str | None]:
    """(text, skip reason) of a conversational completion."""
    if not messages:
        return None, "empty_response"
    if len(messages) > 1:
        return None, "multi_turn_completion"
    if messages[0]["role"] != "assistant":
        return None, "no_assistant_turn"
    return messages[0]["content"], None


def _trl_row(
    batch: Mapping[str, list], i: int, row: int | str
) -> tuple[Any, str | None, str | None, str | None]:
    """(prompt, chosen, rejected, skip reason) of one TRL preference row."""
    chosen, rejected = batch["chosen"][i], batch["rejected"][i]
    prompt = batch["prompt"][i] if "prompt" in batch else None
    if isinstance(chosen, str) != isinstance(rejected, str) and (is_list(chosen) or is_list(rejected)):
        # one side text, the other messages: the text side is the odd one (a conversational row)
        column, other = ("chosen", "rejected") if isinstance(chosen, str) else ("rejected", "chosen")
        raise RowError(
            f"expected a list of chat messages, as in {other!r} (a conversational row), found "
            f"{describe(batch[column][i])}",
            row=row,
            column=column,
        )
    if isinstance(chosen, str) or isinstance(rejected, str):  # standard, or canonical pairs
        if "prompt" not in batch:  # implicit-prompt conversations (a Json column) with a text row
            column = "chosen" if isinstance(chosen, str) else "rejected"
            raise RowError(
                "expected a list of chat messages (an implicit-prompt conversation: there is no 'prompt' "
                f"column), found {describe(batch[column][i])}",
                row=row,
                column=column,
            )
        chosen = text_value(chosen, row=row, column="chosen")
        rejected = text_value(rejected, row=row, column="rejected")
        return prompt_value(prompt, row=row), chosen, rejected, None
    c_msgs = check_messages(chosen, row=row, column="chosen")
    r_msgs = check_messages(rejected, row=row, column="rejected")
    if is_list(prompt):  # explicit conversational
        (c_text, c_skip), (r_text, r_skip) = _completion(c_msgs), _completion(r_msgs)
        skip = c_skip or r_skip
        return check_messages(prompt, row=row, column="prompt"), c_text, r_text, skip
    # implicit prompt (no prompt, or a plain-text copy of it): everything before the last message
    if not c_msgs or not r_msgs or c_msgs[-1]["role"] != "assistant" or r_msgs[-1]["role"] != "assistant":
        return None, None, None, "no_assistant_turn"
    if c_msgs[:-1] != r_msgs[:-1]:
        return None, None, None, "prompt_mismatch"
    return c_msgs[:-1], c_msgs[-1]["content"], r_msgs[-1]["content"], None


def trl_batch_to_pairs(batch: Mapping[str, list], indices: Sequence[int] | None = None) -> dict[str, list]:
    """Turn a batch of TRL preference rows (standard, conversational or implicit prompt) into pairs.

    Conversational completions must be one assistant message (``multi_turn_completion``,
    ``no_assistant_turn``, ``empty_response`` otherwise); implicit-prompt conversations share all but their
    last message (``prompt_mismatch`` otherwise). Scores come from ``chosen_score``/``rejected_score`` (or
    TRL's ``score_chosen``/``score_rejected``), ``source_id`` from a ``source_id`` column or the row index.
    """
    score_cols = next((pair for pair in _SCORE_COLUMNS if pair[0] in batch and pair[1] in batch), None)
    out = new_columns(PAIR_COLUMNS)
    for i in range(len(batch["chosen"])):
        row = row_label(i, indices)
        prompt, chosen, rejected, skip = _trl_row(batch, i, row)
        if skip:
            append_row(out, None, skip)
            continue
        scores = [None, None]
        if score_cols:
            scores = [number_value(batch[c][i], row=row, column=c) for c in score_cols]
        values = {
            "prompt": prompt,
            "chosen": chosen,
            "rejected": rejected,
            "chosen_score": scores[0],
            "rejected_score": scores[1],
            "source_id": source_id_of(batch, i, indices),
        }
        append_row(out, values, pair_skip_reason(prompt, chosen, rejected))
    return out


def pairs_batch_to_trl(
    batch: Mapping[str, list], indices: Sequence[int] | None = None, *, all_messages: bool = False
) -> dict[str, list]:
    """Wrap ``chosen``/``rejected`` of conversational pairs as one assistant message each (TRL's format).

    Rows whose prompt is a string keep plain strings, unless ``all_messages``: then a string prompt
    becomes one user message, so that a column mixing both kinds turns wholly conversational. Returns the
    changed columns.
    """
    out: dict[str, list] = {"chosen": [], "rejected": []}
    prompts = []
    for i, prompt in enumerate(batch["prompt"]):
        row = row_label(i, indices)
        prompt = prompt_value(prompt, row=row)
        if is_empty_prompt(prompt):
            raise RowError("expected a non-empty prompt, found an empty one", row=row, column="prompt")
        if all_messages and isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        prompts.append(prompt)
        for column in out:
            text = check_text(batch[column][i], row=row, column=column)
            out[column].append(text if isinstance(prompt, str) else [{"role": "assistant", "content": text}])
    if all_messages:
        out["prompt"] = prompts
    return out
