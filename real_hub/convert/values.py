"""Value checks shared by the converters, and the helpers that build their output batches."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import RowError
from ..schema import NOTES, SKIP
from ..validate import check_messages, check_number, describe, is_list


def text_value(value: Any, *, row: int | str, column: str) -> str:
    """A string (possibly empty: emptiness is a counted skip, not an error)."""
    if not isinstance(value, str):
        raise RowError(f"expected a string, found {describe(value)}", row=row, column=column)
    return value


def prompt_value(value: Any, *, row: int | str, column: str = "prompt") -> str | list[dict[str, str]]:
    """A prompt as given: a string, or a list of messages (normalised to role/content)."""
    if isinstance(value, str):
        return value
    if is_list(value):
        return check_messages(value, row=row, column=column)
    raise RowError(
        f"expected a string or a list of chat messages, found {describe(value)}", row=row, column=column
    )


def is_empty_prompt(prompt: str | list) -> bool:
    """Whether a prompt is empty: no messages, or only whitespace."""
    return not prompt if isinstance(prompt, list) else not prompt.strip()


def number_value(value: Any, *, row: int | str, column: str, optional: bool = True) -> float | None:
    """A finite number as float (None allowed when ``optional``); RowError for other types, NaN and inf."""
    return check_number(value, row=row, column=column, optional=optional)


def pair_skip_reason(prompt: Any, chosen: str, rejected: str) -> str | None:
    """The skip reason shared by all pair sources, or None."""
    if is_empty_prompt(prompt):
        return "empty_prompt"
    if not chosen.strip() or not rejected.strip():
        return "empty_response"
    if chosen.strip() == rejected.strip():
        return "identical_responses"
    return None


def new_columns(names: Sequence[str], notes: bool = False) -> dict[str, list]:
    """Empty output columns ``names`` plus the ``_skip`` mark (and ``_notes`` when ``notes``)."""
    return {name: [] for name in (*names, SKIP, *((NOTES,) if notes else ()))}


def append_row(
    out: dict[str, list], values: Mapping[str, Any] | None, skip: str | None, notes: Iterable[str] = ()
) -> None:
    """Append one output row; a skipped row holds None everywhere but in ``_skip``."""
    for name in out:
        if name == SKIP:
            out[name].append(skip)
        elif name == NOTES:
            out[name].append(list(notes))
        else:
            out[name].append(None if skip or values is None else values[name])


def source_id_of(batch: Mapping[str, list], i: int, indices: Sequence[int] | None) -> str | None:
    """A row's ``source_id``: the input's column when present, else its dataset row index."""
    if "source_id" in batch:
        value = batch["source_id"][i]
        return None if value is None else str(value)
    return None if indices is None else str(indices[i])
