"""Source data files for the scaled engine: listing (paths, globs, fsspec URLs), reading in numbered chunks.

Nothing here imports Ray: the default engine uses :func:`locate_row` to name the file of a bad row too,
so both engines name it the same way (``file <path>, row <row in that file>``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from ..errors import FormatError, RowError
from ..hub.sources import file_format

#: Columns the scaled engine adds to every source row: the global row number (as ``Dataset.map``'s index).
INDEX_COLUMN = "__index"
READ_FORMATS = ("json", "parquet")


def resolve_files(source: str | Sequence[str]) -> tuple[list[str], str]:
    """Expand paths, globs and fsspec URLs into data files; returns them and their format.

    Raises:
        FormatError: nothing matches, or the files are not all JSON (``.json``/``.jsonl``, optionally
            compressed) or all Parquet.
    """
    import fsspec

    items = [source] if isinstance(source, str) else list(source)
    if not items:
        raise FormatError("no data given: expected data files, globs or fsspec URLs")
    files: list[str] = []
    for item in items:
        fs, _, paths = fsspec.core.get_fs_token_paths(str(item))
        found = sorted(p for p in paths if fs.isfile(p))
        if not found:
            raise FormatError(f"no such file: {item}")
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        files += [p if protocol in ("file", "local") else f"{protocol}://{p}" for p in found]
    formats = {file_format(f) for f in files}
    if len(formats) != 1 or not formats <= set(READ_FORMATS):
        raise FormatError(
            f"the Ray engine reads JSON (.json, .jsonl, optionally .gz) or Parquet files, all of one format; "
            f"got {', '.join(files[:5])}{' ...' if len(files) > 5 else ''}"
        )
    return files, formats.pop()  # type: ignore[return-value]


def read_table(path: str, data_format: str) -> pa.Table:
    """One data file as an Arrow table, read as ``datasets``' ``json``/``parquet`` builders read it."""
    import fsspec
    import pyarrow.json as paj
    import pyarrow.parquet as pq

    with fsspec.open(path, "rb", compression="infer") as f:
        if data_format == "parquet":
            return pq.read_table(f)
        data = f.read()
    if data.lstrip()[:1] == b"[":  # a JSON array of objects rather than JSON Lines
        return pa.Table.from_pylist(json.loads(data))
    if not data.strip():
        return pa.table({})
    return paj.read_json(pa.BufferReader(data), read_options=paj.ReadOptions(block_size=16 << 20))


def count_rows(path: str, data_format: str) -> int:
    """Rows of one data file (Parquet from its metadata)."""
    if data_format == "parquet":
        import fsspec
        import pyarrow.parquet as pq

        with fsspec.open(path, "rb") as f:
            return int(pq.ParquetFile(f).metadata.num_rows)
    return read_table(path, data_format).num_rows


def numbered_chunks(path: str, data_format: str, offset: int, chunk_rows: int) -> Iterator[pa.Table]:
    """The file's rows in chunks; :data:`INDEX_COLUMN` is ``offset`` + the row in the file."""
    table = read_table(path, data_format)
    for start in range(0, table.num_rows, chunk_rows):
        part = table.slice(start, chunk_rows)
        index = pa.array(range(offset + start, offset + start + part.num_rows), type=pa.int64())
        yield part.append_column(INDEX_COLUMN, index)


def locate_row(error: RowError, files: Sequence[str], counts: Sequence[int]) -> RowError:
    """``error`` (naming a global row) re-raised as naming the file and the row in that file."""
    if not isinstance(error.row, int) or error.file is not None:
        return error
    start = 0
    for path, count in zip(files, counts):
        if error.row < start + count:
            return RowError(error.reason, row=error.row - start, column=error.column, file=path)
        start += count
    return error


def offsets_of(counts: Sequence[int]) -> list[int]:
    """Where each file's rows start in the whole source."""
    out, total = [], 0
    for count in counts:
        out.append(total)
        total += count
    return out


def to_pydict(table: pa.Table) -> dict[str, list[Any]]:
    """A table's columns as Python lists (what the converters read)."""
    return {name: table.column(name).to_pylist() for name in table.column_names}
