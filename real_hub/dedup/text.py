"""A prompt's text, its normalised key, and the rows that share a key.

A prompt is a string or a list of chat messages; a chat prompt is compared on its text: the contents of
its messages, in order, joined by newlines (roles are left out, so that ``[{"role": "user", "content":
q}]`` and the plain string ``q`` are the same prompt, as a benchmark's question and a chat set's turn
should be). The key that exact duplicates share is that text after Unicode NFKC normalisation, case
folding and collapsing every run of whitespace to one space.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from datasets import Dataset

from ..errors import ColumnError, ConfigError, RowError
from ..validate import check_prompt, is_list

READ_BATCH = 10_000
"""Rows read from the prompt column at a time."""


def prompt_text(value: Any) -> str:
    """The text of a prompt: a string as it is, a chat prompt's message contents joined by newlines."""
    if isinstance(value, str):
        return value
    return "\n".join(message["content"] for message in value)


def normalize_text(text: str) -> str:
    """The key exact duplicates share: NFKC, case-folded, whitespace runs collapsed to one space, stripped."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@dataclass
class PromptKeys:
    """The distinct normalised prompts of a column and, for each row, which one it holds.

    ``texts[k]`` is the ``k``-th distinct key in order of first appearance; ``row_key[i]`` is row ``i``'s.
    ``first_text[k]`` is the prompt text (not normalised) of the first row holding key ``k``, when asked for.
    """

    texts: list[str]
    row_key: np.ndarray
    first_text: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def read_keys(ds: Dataset, column: str, *, keep_text: bool = False) -> PromptKeys:
    """Read ``column`` of ``ds`` in batches and key every row (errors name the row and the column).

    ``keep_text`` also keeps each key's first prompt text as written (``first_text``).

    Raises:
        ConfigError: ``ds`` is not a ``Dataset``.
        ColumnError: ``ds`` has no ``column``.
        RowError: A prompt is not a non-empty text or chat, or its text is empty once normalised.
    """
    if not isinstance(ds, Dataset):
        raise ConfigError(
            f"expected a datasets.Dataset, got {type(ds).__name__} (pick a split, e.g. ds['train'], or "
            "materialise an IterableDataset with Dataset.from_generator)"
        )
    if column not in ds.column_names:
        raise ColumnError.missing(
            [column], ds.column_names, hint="pass column= the name of the prompt column"
        )
    index: dict[str, int] = {}
    first_text: list[str] = []
    row_key = np.empty(len(ds), dtype=np.int64)
    for start, values in _batches(ds, column):
        for offset, value in enumerate(values):
            row = start + offset
            text = prompt_text(check_prompt(_plain(value), row=row, column=column))
            key = normalize_text(text)
            if not key:
                raise RowError("expected a prompt with text, found only whitespace", row=row, column=column)
            k = index.setdefault(key, len(index))
            if keep_text and k == len(first_text):
                first_text.append(text)
            row_key[row] = k
    return PromptKeys(list(index), row_key, first_text)


def _batches(ds: Dataset, column: str) -> Iterator[tuple[int, list[Any]]]:
    view = ds.select_columns([column])
    for start in range(0, len(view), READ_BATCH):
        yield start, view[start : start + READ_BATCH][column]


def _plain(value: Any) -> Any:
    """A ``datasets.Json`` value decoded, a numpy array of messages as a list."""
    if isinstance(value, np.ndarray) and is_list(value):
        return value.tolist()
    return value
