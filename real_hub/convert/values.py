"""Value checks shared by the converters, and the helpers that build their output batches."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import RowError
from ..schema import NOTES, SKIP
from ..validate import check_messages, describe


def _text(value: Any, *, row: int | str, column: str) -> str:
    """A string (possibly empty: emptiness is a counted skip, not an error)."""
    if not isinstance(value, str):
        raise RowError(f"expected a string, found {describe(value)}", row=row, column=column)
    return value


def _prompt(value: Any, *, row: int | str, column: str = "prompt") -> str | list[dict[str, str]]:
    """A prompt as given: a string, or a list of messages (normalised to role/content)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return check_messages(value, row=row, column=column)
    raise RowError(
        f"expected a string or a list of chat messages, found {describe(value)}", row=row, column=column
    )


def _is_empty(prompt: str | list) -> bool:
    return not prompt if isinstance(prompt, list) else not prompt.strip()


def _number(value: Any, *, row: int | str, column: str, optional: bool = True) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise RowError(f"expected a number, found {describe(value)}", row=row, column=column)
    return float(value)


def _pair_checks(prompt: Any, chosen: str, rejected: str) -> str | None:
    """The skip reason shared by all pair sources, or None."""
    if _is_empty(prompt):
        return "empty_prompt"
    if not chosen.strip() or not rejected.strip():
        return "empty_response"
    if chosen.strip() == rejected.strip():
        return "identical_responses"
    return None


def _new_columns(names: Sequence[str], notes: bool = False) -> dict[str, list]:
    return {name: [] for name in (*names, SKIP, *((NOTES,) if notes else ()))}


def _append(
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


def _source_id(batch: Mapping[str, list], i: int, indices: Sequence[int] | None) -> str | None:
    if "source_id" in batch:
        value = batch["source_id"][i]
        return None if value is None else str(value)
    return None if indices is None else str(indices[i])
