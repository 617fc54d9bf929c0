"""Reading a batch's columns, whatever form ``map`` hands them in.

``Dataset.map`` gives dicts of lists (or a lazy Arrow-backed batch), ``with_format("numpy")`` and Ray
give numpy arrays, ``with_format("arrow")`` a table. These helpers turn embedding columns into float32
matrices without a Python loop per value, reading straight from Arrow when the batch is still Arrow,
and raise a :class:`~real_hub.errors.RowError` naming the row when a vector is missing, ragged, holds
something other than numbers, or holds NaN or an infinity (checked vectorised over the whole batch).

A ``datasets.Json`` column (what ``load_dataset("json")`` makes of a column whose rows hold values of
different types) is stored in Arrow as JSON text: :func:`raw_column` decodes it, so that a value is
checked as what it is, never as its JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import RowError
from .validate import describe, row_label

try:  # the zero-copy path uses datasets' lazy batch; without it, columns are read as given
    from datasets.formatting.formatting import LazyBatch, PythonFormatter
except ImportError:  # pragma: no cover - a datasets release that moved them
    LazyBatch = PythonFormatter = None  # type: ignore[assignment,misc]


class ArrowBatch(Mapping):
    """An Arrow table read as a batch: ``batch[name]`` is the column as Python values (converted once).

    :func:`raw_column` reads the Arrow column itself, so vectors never become Python floats.
    """

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._python: dict[str, list[Any]] = {}

    def __getitem__(self, name: str) -> list[Any]:
        if name not in self._python:
            if name not in self.table.column_names:
                raise KeyError(name)
            raw = _arrow_or_decoded(self.table.column(name))
            self._python[name] = raw.to_pylist() if isinstance(raw, pa.ChunkedArray) else raw
        return self._python[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.table.column_names)

    def __len__(self) -> int:
        return self.table.num_columns


def column_names(batch: Any) -> list[str]:
    """The batch's column names, whatever its form."""
    if isinstance(batch, pa.Table):
        return batch.column_names
    if hasattr(batch, "columns") and not isinstance(batch, Mapping):  # pandas
        return [str(c) for c in batch.columns]
    return list(batch.keys())


_JSON_TYPE = getattr(pa, "JsonType", ())  # pyarrow >= 19


def _is_json(arrow_type: pa.DataType) -> bool:
    return isinstance(arrow_type, _JSON_TYPE) or getattr(arrow_type, "extension_name", None) == "arrow.json"


def has_json(arrow_type: pa.DataType) -> bool:
    """Whether an Arrow type is, or holds, JSON text (``datasets.Json`` / ``pa.json_()``)."""
    if _is_json(arrow_type):
        return True
    if (
        pa.types.is_list(arrow_type)
        or pa.types.is_large_list(arrow_type)
        or pa.types.is_fixed_size_list(arrow_type)
    ):
        return has_json(arrow_type.value_type)
    if pa.types.is_struct(arrow_type):
        return any(has_json(arrow_type.field(k).type) for k in range(arrow_type.num_fields))
    return False


def decode_json(value: Any, arrow_type: pa.DataType) -> Any:
    """A Python value read from Arrow with its JSON-text parts (per ``arrow_type``) decoded."""
    if value is None:
        return None
    if _is_json(arrow_type):
        return json.loads(value)
    if isinstance(value, list) and hasattr(arrow_type, "value_type"):
        return [decode_json(v, arrow_type.value_type) for v in value]
    if isinstance(value, dict) and pa.types.is_struct(arrow_type):
        fields = {arrow_type.field(k).name: arrow_type.field(k).type for k in range(arrow_type.num_fields)}
        return {k: decode_json(v, fields[k]) if k in fields else v for k, v in value.items()}
    return value


def _arrow_or_decoded(column: pa.ChunkedArray | pa.Array) -> Any:
    if has_json(column.type):
        return [decode_json(v, column.type) for v in column.to_pylist()]
    return column


def raw_column(batch: Any, name: str) -> Any:
    """The column as Arrow when the batch is Arrow-backed and not yet formatted, else as given.

    A column holding JSON text (a ``datasets.Json`` feature) comes back decoded, as a list of values.
    """
    if isinstance(batch, pa.Table):
        return _arrow_or_decoded(batch.column(name))
    if isinstance(batch, ArrowBatch):
        return _arrow_or_decoded(batch.table.column(name))
    if (
        LazyBatch is not None
        and isinstance(batch, LazyBatch)
        and isinstance(batch.formatter, PythonFormatter)
        and name in batch.keys_to_format
    ):
        column = batch.pa_table.column(name)
        return batch[name] if has_json(column.type) else column
    value = batch[name]
    return value.to_numpy() if hasattr(value, "to_numpy") and not isinstance(value, np.ndarray) else value


def to_python(value: Any) -> Any:
    """Numpy values (and containers of them) as plain Python objects."""
    if isinstance(value, np.ndarray):
        return [to_python(v) for v in value] if value.dtype == object else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [to_python(v) for v in value]
    if isinstance(value, dict):
        return {k: to_python(v) for k, v in value.items()}
    return value


def python_column(batch: Any, name: str) -> list[Any]:
    """A column as a list of plain Python values."""
    raw = raw_column(batch, name)
    if isinstance(raw, (pa.Array, pa.ChunkedArray)):
        return raw.to_pylist()
    if isinstance(raw, np.ndarray) and raw.dtype != object:
        return raw.tolist()
    return [to_python(v) if isinstance(v, (np.ndarray, np.generic, dict)) else v for v in raw]


def is_scalar_column(raw: Any) -> bool:
    """Whether a column holds scalars (strings, numbers), not lists."""
    if isinstance(raw, (pa.Array, pa.ChunkedArray)):
        return not pa.types.is_nested(raw.type)
    if isinstance(raw, np.ndarray) and raw.dtype != object:
        return raw.ndim == 1
    return all(v is None or isinstance(v, (str, bytes, int, float, bool, np.generic)) for v in raw)


def bad_list_row(rows: Sequence[Any], name: str, indices: Sequence[int] | None, depth: int) -> RowError:
    """Find the row that stops a nested list from forming a regular array, and say why."""
    width = None
    for i, row in enumerate(rows):
        vectors = [row] if depth == 1 else row
        if vectors is None:
            return RowError(
                "expected a list of embedding vectors, found None", row=row_label(i, indices), column=name
            )
        for v in vectors:
            if v is None:
                return RowError(
                    "expected an embedding vector, found None", row=row_label(i, indices), column=name
                )
            if isinstance(v, (str, bytes, Mapping)) or not hasattr(v, "__len__"):
                return RowError(
                    f"expected an embedding vector (a list of numbers), found {describe(v)}",
                    row=row_label(i, indices),
                    column=name,
                )
            try:
                vec = np.asarray(v, dtype=np.float32)
            except (TypeError, ValueError):
                bad = next((x for x in v if not isinstance(x, (int, float, np.number))), v)
                return RowError(
                    f"expected an embedding vector of numbers, found {describe(bad)} in it",
                    row=row_label(i, indices),
                    column=name,
                )
            width = width if width is not None else vec.shape
            if vec.ndim != 1 or vec.shape != width:
                return RowError(
                    f"expected embedding vectors of {width[0] if width else '?'} values (as in the batch's"
                    f" first row), found shape {vec.shape}",
                    row=row_label(i, indices),
                    column=name,
                )
    return RowError("embeddings do not form a regular array", column=name)


def arrow_null_row(arr: pa.Array, name: str, indices: Sequence[int] | None, what: str) -> RowError:
    """The RowError for the first null of an Arrow array."""
    first = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
    return RowError(f"expected {what}, found None", row=row_label(first, indices), column=name)


def arrow_vectors(arr: pa.Array, name: str, indices: Sequence[int] | None, owner: np.ndarray) -> np.ndarray:
    """``[len(arr), d]`` float32 from an Arrow list array of vectors; ``owner`` maps a vector to its row."""
    if arr.null_count:
        first = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise RowError(
            "expected an embedding vector, found None", row=row_label(int(owner[first]), indices), column=name
        )
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
    if len(lengths) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    bad = np.flatnonzero(lengths != lengths[0])
    if len(bad):
        raise RowError(
            f"expected embedding vectors of {lengths[0]} values (as in the batch's first row), found"
            f" {lengths[bad[0]]}",
            row=row_label(int(owner[bad[0]]), indices),
            column=name,
        )
    values = arr.flatten()
    if values.null_count:
        first = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0]) // int(lengths[0])
        raise RowError("expected numbers, found None", row=row_label(int(owner[first]), indices), column=name)
    if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)) and len(values):
        raise RowError(
            f"expected an embedding vector of numbers, found {values.type} values such as"
            f" {describe(values[0].as_py())}",
            row=row_label(int(owner[0]), indices),
            column=name,
        )
    return values.to_numpy(zero_copy_only=False).reshape(len(arr), int(lengths[0]))


def as_arrow(raw: Any) -> pa.Array | None:
    """An Arrow array (chunks combined) if ``raw`` is Arrow, else None."""
    if isinstance(raw, pa.ChunkedArray):
        return raw.combine_chunks() if raw.num_chunks != 1 else raw.chunk(0)
    return raw if isinstance(raw, pa.Array) else None


def pair_matrix(raw: Any, name: str, indices: Sequence[int] | None = None) -> np.ndarray:
    """One embedding per row (list of lists, 2-D array, array of arrays, or Arrow) as ``[rows, d]``."""
    arr = as_arrow(raw)
    if arr is not None:
        matrix = arrow_vectors(arr, name, indices, np.arange(len(arr)))
    elif isinstance(raw, np.ndarray) and raw.dtype != object:
        matrix = raw
    else:
        rows = list(raw)
        try:
            matrix = np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError):
            raise bad_list_row(rows, name, indices, depth=1) from None
        if len(rows) == 0:
            matrix = matrix.reshape(0, 0)
    if matrix.ndim != 2:
        raise bad_list_row(list(raw), name, indices, depth=1)
    return matrix.astype(np.float32, copy=False)


def ragged_vectors(
    raw: Any, name: str, indices: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A list of vectors per row as one ``[total, d]`` float32 array and the number of vectors per row."""
    arr = as_arrow(raw)
    if arr is not None:
        if arr.null_count:
            raise arrow_null_row(arr, name, indices, "a list of embedding vectors")
        counts = pc.list_value_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
        owner = np.repeat(np.arange(len(arr)), counts)
        return arrow_vectors(arr.flatten(), name, indices, owner).astype(np.float32, copy=False), counts
    if isinstance(raw, np.ndarray) and raw.dtype != object and raw.ndim == 3:
        return raw.reshape(-1, raw.shape[2]).astype(np.float32, copy=False), np.full(len(raw), raw.shape[1])
    rows = list(raw)
    if any(r is None for r in rows):
        raise bad_list_row(rows, name, indices, depth=2)
    counts = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    try:
        if rows and all(isinstance(r, np.ndarray) and r.dtype != object and r.ndim == 2 for r in rows):
            flat = np.concatenate(rows).astype(np.float32, copy=False)
        else:
            flat = np.asarray([v for r in rows for v in r], dtype=np.float32)
    except (TypeError, ValueError):
        raise bad_list_row(rows, name, indices, depth=2) from None
    if flat.ndim != 2:
        if flat.size == 0:
            return flat.reshape(0, 0), counts
        raise bad_list_row(rows, name, indices, depth=2)
    return flat, counts


def unit_rows(vectors: Any, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The one L2 normalisation: the rows of ``vectors`` at unit length, and the mask of bad rows.

    A bad row has a zero, NaN or infinite norm and cannot be normalised (a zero row stays zero).
    """
    vectors = np.asarray(vectors, dtype=dtype)
    if vectors.ndim == 1:
        vectors = vectors.reshape(0 if vectors.size == 0 else 1, -1)
    with np.errstate(over="ignore", invalid="ignore"):  # bad rows are reported, not warned about
        norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
        bad = ~np.isfinite(norms) | (norms == 0)
        return vectors / np.where(norms == 0, 1.0, norms)[:, None], bad


def vector_fault(vector: np.ndarray) -> str:
    """What is wrong with an embedding vector whose norm is zero or not finite, for an error message."""
    if np.isnan(vector).any():
        return f"NaN at position {int(np.flatnonzero(np.isnan(vector))[0])}"
    if np.isinf(vector).any():
        k = int(np.flatnonzero(np.isinf(vector))[0])
        return f"{float(vector[k])} at position {k}"
    if not vector.any():
        return "the zero vector"
    return "values too large to square in float32"


def normalise_rows(
    matrix: np.ndarray, name: str, owner: np.ndarray, indices: Sequence[int] | None
) -> np.ndarray:
    """L2-normalise each row; a zero or non-finite (NaN, inf) vector is a RowError naming its row."""
    unit, bad = unit_rows(matrix, matrix.dtype if matrix.dtype.kind == "f" else np.float32)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise RowError(
            "expected a non-zero embedding vector of finite numbers (cosine is undefined otherwise), found "
            + vector_fault(matrix[first]),
            row=row_label(int(owner[first]), indices),
            column=name,
        )
    return unit


def finite_number_lists(raw: Any) -> bool:
    """Whether a column is an Arrow list column of finite numbers only (no null list or value, no NaN/inf).

    Checked vectorised; when it holds, per-value checks can be skipped (a False answer means: check the
    values one by one to name the row).
    """
    arr = as_arrow(raw)
    if arr is None or not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)) or arr.null_count:
        return False
    values = arr.flatten()
    if values.null_count or not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
        return False
    return bool(np.isfinite(values.to_numpy(zero_copy_only=False)).all())


def first_non_finite(values: np.ndarray) -> int | None:
    """Index of the first NaN or infinite value of a 1-d float array (vectorised), or None."""
    finite = np.isfinite(values)
    return None if finite.all() else int(np.flatnonzero(~finite)[0])
