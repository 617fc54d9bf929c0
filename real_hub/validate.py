"""Input checks shared by the converters and processors, with errors that name the column or row."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import ColumnError, RowError


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
    return "None" if value is None else f"{type(value).__name__} {str(value)[:60]!r}"


def check_messages(value: Any, *, row: int | str, column: str) -> list[dict[str, str]]:
    """Return ``value`` as a list of ``{'role', 'content'}`` string messages, else raise naming the item."""
    if not isinstance(value, (list, tuple)):
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
    if not isinstance(value, (list, tuple)):
        raise RowError(
            f"expected a list of strings, found {type(value).__name__}",
            row=row,
            column=column,
        )
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
