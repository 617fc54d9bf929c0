"""Input checks shared by the converters and processors, with errors that name the column or row.

The rules, the same everywhere:

- a **text** value is a ``str`` that is not empty once leading and trailing whitespace is stripped
  (``str.strip()``); the text itself is used unstripped. Unicode, emoji and NUL characters are text like
  any other.
- a **chat message** is a mapping with a ``role`` in :data:`KNOWN_ROLES` and a string ``content``.
- a **number** (score, reward, similarity, rating) is an ``int`` or ``float`` (not ``bool``) that is finite:
  NaN, ``inf`` and ``-inf`` are refused. Numeric columns are checked vectorised (:mod:`real_hub.arrays`).
- a **list column** holds a list (or tuple, or numpy array) in every row; a dict or a string is refused.

Errors name the row: the dataset row when ``Dataset.map`` passes the indices (``with_indices=True``, which
every real-hub function that maps does), else the row's place in the batch. Values of a ``datasets.Json``
column are decoded before they are checked (:func:`real_hub.arrays.raw_column`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import ColumnError, RowError

KNOWN_ROLES = ("system", "user", "assistant", "tool")
"""The chat roles a message may have."""


def require_columns(
    present: Mapping[str, Any] | Iterable[str], wanted: Iterable[str], *, hint: str = ""
) -> None:
    """Raise :class:`ColumnError` listing the present columns when any of ``wanted`` is absent."""
    names = list(present.keys()) if isinstance(present, Mapping) else list(present)
    missing = [w for w in wanted if w not in names]
    if missing:
        raise ColumnError.missing(missing, names, hint=hint)


def row_label(i: int, indices: Sequence[int] | None) -> int | str:
    """The row's dataset index when known (``with_indices=True``), else its place in the batch."""
    return (
        indices[i]
        if indices is not None
        else f"{i} of this batch (map with with_indices=True for dataset rows)"
    )


def describe(value: Any) -> str:
    """A value for an error message: its type and the start of its text (``None`` as is)."""
    if value is None:
        return "None"
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return f"{type(value).__name__} {value}"
    return f"{type(value).__name__} {str(value)[:60]!r}"


def is_list(value: Any) -> bool:
    """Whether ``value`` is a list value of a list column: a list, tuple or 1-d numpy array."""
    return isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 1)


def check_list(value: Any, *, row: int | str, column: str, what: str = "a list") -> list[Any]:
    """Return ``value`` as a list, else raise a :class:`RowError` (a dict, a string, None are refused)."""
    if not is_list(value):
        raise RowError(f"expected {what}, found {describe(value)}", row=row, column=column)
    return list(value)


def check_number(
    value: Any, *, row: int | str, column: str, what: str = "a number", optional: bool = False
) -> float | None:
    """Return ``value`` as a finite float (None passes when ``optional``), else raise naming the row.

    The message says ``expected <what>, found <value>`` (``expected a finite <what>`` for NaN and infinities).
    """
    if value is None and optional:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise RowError(f"expected {what}, found {describe(value)}", row=row, column=column)
    number = float(value)
    if not math.isfinite(number):
        finite = what.replace("a ", "a finite ", 1) if what.startswith("a ") else f"finite {what}"
        raise RowError(f"expected {finite}, found {number}", row=row, column=column)
    return number


def check_messages(value: Any, *, row: int | str, column: str) -> list[dict[str, str]]:
    """Return ``value`` as a list of ``{'role', 'content'}`` string messages, else raise naming the item.

    A message's role must be one of :data:`KNOWN_ROLES`; other keys (``tool_calls``, ...) are dropped.
    """
    if not is_list(value):
        raise RowError(f"expected a list of chat messages, found {describe(value)}", row=row, column=column)
    out = []
    for j, message in enumerate(value):
        if not (
            isinstance(message, Mapping)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise RowError(
                f"expected a message {{'role': str, 'content': str}}, found {describe(message)}",
                row=row,
                column=f"{column}[{j}]",
            )
        if message["role"] not in KNOWN_ROLES:
            raise RowError(
                f"expected a message role in {list(KNOWN_ROLES)}, found {message['role']!r}",
                row=row,
                column=f"{column}[{j}].role",
            )
        out.append({"role": message["role"], "content": message["content"]})
    return out


def check_text(value: Any, *, row: int | str, column: str) -> str:
    """Return ``value`` if it is a non-empty string, else raise a :class:`RowError` naming the row."""
    if value is None:
        raise RowError("expected a non-empty string, found None", row=row, column=column)
    if not isinstance(value, str):
        raise RowError(f"expected a string, found {describe(value)}", row=row, column=column)
    if not value.strip():
        raise RowError("expected a non-empty string, found an empty one", row=row, column=column)
    return value


def check_prompt(value: Any, *, row: int | str, column: str = "prompt") -> Any:
    """Check a prompt and return it as given: a non-empty text, or a non-empty list of chat messages.

    A prompt column may mix both kinds row by row (a ``datasets.Json`` column, decoded).
    """
    if isinstance(value, str):
        return check_text(value, row=row, column=column)
    if is_list(value):
        if not len(value):
            raise RowError(
                "expected a non-empty list of chat messages, found an empty list", row=row, column=column
            )
        check_messages(value, row=row, column=column)
        return value
    raise RowError(
        f"expected a string or a list of chat messages, found {describe(value)}", row=row, column=column
    )


def check_response(value: Any, *, row: int | str, column: str) -> str:
    """A response's text, from a non-empty string or a TRL conversational completion.

    A completion is a non-empty list of chat messages (checked as such); its text is the last content.
    """
    if isinstance(value, str):
        return check_text(value, row=row, column=column)
    if is_list(value):
        messages = check_messages(value, row=row, column=column)
        if not messages:
            raise RowError("expected a response, found an empty list of messages", row=row, column=column)
        return check_text(messages[-1]["content"], row=row, column=f"{column}[{len(messages) - 1}].content")
    return check_text(value, row=row, column=column)


def response_text(value: Any) -> Any:
    """A response as text: a TRL conversational completion (a list of messages) gives its last content."""
    if (
        isinstance(value, (list, tuple))
        and value
        and isinstance(value[-1], Mapping)
        and "content" in value[-1]
    ):
        return value[-1]["content"]
    return value


def check_text_list(value: Any, *, row: int | str, column: str) -> list[str]:
    """Return ``value`` as a list of non-empty strings, else raise naming the row (and the item)."""
    if type(value) is list and all(type(t) is str and t and not t.isspace() for t in value):
        return list(value)  # the common case, checked in one pass; the loop below names what is wrong
    if not is_list(value):
        raise RowError(f"expected a list of strings, found {describe(value)}", row=row, column=column)
    for j, item in enumerate(value):
        check_text(item, row=row, column=f"{column}[{j}]")
    return list(value)


PAIR_RESPONSE_COLUMNS = ("chosen", "rejected")
CANDIDATE_RESPONSE_COLUMN = "responses"


def response_columns(present: Sequence[str], *, action: str) -> tuple[str, ...]:
    """The response columns of data with columns ``present``: ``responses``, else ``chosen`` and ``rejected``.

    ``action`` says what the caller does with them, for the error (e.g. ``"EmbedResponses embeds"``).
    """
    if CANDIDATE_RESPONSE_COLUMN in present:
        return (CANDIDATE_RESPONSE_COLUMN,)
    if all(c in present for c in PAIR_RESPONSE_COLUMNS):
        return PAIR_RESPONSE_COLUMNS
    raise ColumnError.missing(
        [CANDIDATE_RESPONSE_COLUMN] if "chosen" not in present else list(PAIR_RESPONSE_COLUMNS),
        present,
        hint=f"{action} a 'responses' list (candidates) or 'chosen' and 'rejected' (pairs); convert the "
        "data with real_hub.to_pairs / to_candidates",
    )
