"""The processor contract shared by every ``dataset.map`` processor.

A processor's constructor takes configuration only. Anything it builds at run time (a model, a
tokenizer, counters) lives in attributes whose names start with ``_`` and is dropped when the
processor is pickled, so that ``datasets`` fingerprints the configuration, never the weights, and
``num_proc>1`` workers rebuild what they need on first call. The package version is part of the
pickled state: a processor class is pickled by reference, so without it a code change would keep
the old cache.

The same processor serves ``Dataset.map`` and Ray Data's ``map_batches``: subclasses implement
:meth:`Processor.process`, and ``__call__`` adapts the batch forms once for all of them (see
:meth:`Processor.__call__`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from .arrays import ArrowBatch, to_python
from .atomic import write_json_atomic
from .compat import dataset_fingerprint, running_map_call, running_map_dataset
from .schema import SKIP_REASON
from .version import __version__

logger = logging.getLogger(__name__)

_VERSION_KEY = "__real_hub_version__"


class Processor:
    """Base class: pickles to its public attributes (the configuration) plus the package version.

    Subclasses implement :meth:`process`; calling the processor adapts the batch form (see
    :meth:`__call__`). ``adds_columns`` says whether the processor adds columns to its input rows
    (``EmbedResponses``, ``DensityRatioReward``, ``PairSimilarity``) or emits rows of its own
    (``SelectPairs``, ``OrientByReward``, ``PairsFromRewards``, mapped with ``remove_columns``).
    """

    adds_columns: ClassVar[bool] = True

    def __call__(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
        """Process one batch, in whichever form ``Dataset.map`` or Ray Data's ``map_batches`` gives it.

        ``Dataset.map`` passes a dict of lists (or datasets' lazy batch) and gets :meth:`process`'s new
        columns back, which it merges into the rows. A columnar batch (a ``pyarrow.Table``, a
        ``pandas.DataFrame`` or a dict of numpy arrays: Ray Data's ``batch_format`` "pyarrow",
        "pandas" and "numpy") is read as Arrow, and the answer is a ``pyarrow.Table`` typed by the
        processor's ``output_features``: the input columns plus the new ones when the processor adds
        columns (Ray keeps only what the function returns), the emitted rows otherwise.
        """
        if not is_columnar(batch):
            return self.process(batch, *args, **kwargs)
        table = to_arrow_table(batch)
        return self.arrow_output(table, self.process(ArrowBatch(table), *args, **kwargs))

    def process(self, batch: Mapping[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Return the new columns (or rows) of one batch; ``args`` are ``map``'s indices and rank."""
        raise NotImplementedError

    def arrow_output(self, table: pa.Table, new: Mapping[str, Any]) -> pa.Table:
        """The Arrow answer to a columnar batch ``table`` whose processing gave the columns ``new``."""
        types = self._output_types(table.schema)
        columns: dict[str, Any] = {}
        if self.adds_columns:
            columns = {n: table.column(n) for n in table.column_names}
        for name, values in new.items():
            columns[name] = arrow_column(values, types.get(name))
        if not columns:
            return pa.table({})
        return pa.table(columns)

    def _output_types(self, schema: pa.Schema) -> dict[str, pa.DataType]:
        """Arrow type of each output column, from ``output_features`` (cached per input schema)."""
        cache = self.__dict__.setdefault("_arrow_types", {})
        if schema not in cache:
            from datasets import Features

            features = self.output_features(Features.from_arrow_schema(schema))  # type: ignore[attr-defined]
            arrow = features.arrow_schema
            cache[schema] = {name: arrow.field(name).type for name in arrow.names}
        return cache[schema]

    def config(self) -> dict[str, Any]:
        """The configuration: every public attribute, sorted by name."""
        return {k: v for k, v in sorted(vars(self).items()) if not k.startswith("_")}

    def __getstate__(self) -> dict[str, Any]:
        if not self.adds_columns and not getattr(self, "keep_skipped", False):
            replay_skips(self)  # a cached map never calls the processor: its skips are told here
        state = self.config()
        state[_VERSION_KEY] = __version__
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop(_VERSION_KEY, None)
        self.__dict__.update(state)
        self._reset()

    def _reset(self) -> None:
        """Clear run-time state (models, caches); called after unpickling. Subclasses extend it."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def split_extra_args(args: tuple[Any, ...], with_rank: bool) -> tuple[list[int] | None, int | None]:
    """Read ``(indices, rank)`` from the positional arguments ``Dataset.map`` adds.

    ``map`` passes the indices after the batch when ``with_indices=True`` and the rank last when
    ``with_rank=True``; a processor built with ``with_rank=True`` expects the rank.
    """
    rank = None
    rest = list(args)
    if with_rank and rest:
        rank = rest.pop()
    indices = list(rest[0]) if rest and rest[0] is not None else None
    return indices, rank


class EmittedRows:
    """The output of a processor that emits its own rows (pairs), and the count of what it skipped.

    Every processor that can skip uses it, so skipping is written once: :meth:`emit` appends a row,
    :meth:`skip` counts a reason (and, with ``keep_skipped``, appends the row with its ``skip_reason``),
    and the columns carried over from the input (see :func:`real_hub.schema.passthrough_values`) follow
    the input row each output row came from.
    """

    def __init__(self, columns: Sequence[str], carried: Mapping[str, list], *, keep_skipped: bool) -> None:
        self.columns = tuple(columns)
        self.carried = carried
        self.keep_skipped = keep_skipped
        self.skipped: Counter[str] = Counter()
        self.out: dict[str, list] = {c: [] for c in (*self.columns, *carried)}
        if keep_skipped:
            self.out[SKIP_REASON] = []

    def emit(self, row: int, values: Mapping[str, Any]) -> None:
        """Append the output row made from input row ``row`` (absent columns are None)."""
        self._append(row, values, None)

    def skip(self, row: int, reason: str, values: Mapping[str, Any] | None = None) -> None:
        """Count input row ``row`` as skipped for ``reason`` (and keep it when ``keep_skipped``)."""
        self.skipped[reason] += 1
        if self.keep_skipped:
            self._append(row, values or {}, reason)

    def _append(self, row: int, values: Mapping[str, Any], reason: str | None) -> None:
        for column in self.columns:
            self.out[column].append(values.get(column))
        for name, column_values in self.carried.items():
            self.out[name].append(column_values[row])
        if self.keep_skipped:
            self.out[SKIP_REASON].append(reason)

    def finish(
        self, owner: str, rows_read: int, *, processor: Processor | None = None, hint: str = ""
    ) -> dict[str, list]:
        """The output columns; logs the batch's skips at DEBUG.

        Given the ``processor`` (and ``hint``: how to get the report), skipped rows that are not kept are
        also logged at WARNING once per ``map`` call (:func:`warn_skipped_once`).
        """
        if self.skipped and processor is not None and not self.keep_skipped:
            warn_skipped_once(processor, self.skipped, rows_read, hint)
        elif self.skipped:
            logger.debug("%s skipped %s in a batch of %d rows", owner, dict(self.skipped), rows_read)
        return self.out


def warn_skipped_once(processor: Processor, skipped: Mapping[str, int], rows_read: int, hint: str) -> None:
    """Log at WARNING, once per ``Dataset.map`` call, that ``processor`` skipped rows, with counts by reason.

    As ``datasets`` warns once rather than per batch: the first batch of a ``map`` call that skips anything
    logs the warning (its counts by reason, and ``hint``: how to get the full report); later batches of that
    call log at DEBUG. Outside ``Dataset.map`` (a direct call, Ray) it warns once per processor and process.
    The call's running totals are also kept beside the dataset's cache files (:func:`replay_skips`), so that
    a rerun answered from the cache warns too.
    """
    name = type(processor).__name__
    if not skipped:
        return
    key = running_map_call()
    _record_skips(processor, key, skipped, hint)
    warned = processor.__dict__.setdefault("_warned_skips", set())
    counts = ", ".join(f"{reason}={n}" for reason, n in sorted(skipped.items()))
    if key in warned or processor.__dict__.get("_replayed"):
        logger.debug("%s skipped %s in a batch of %d rows", name, counts, rows_read)
        return
    warned.clear()  # only the running map call's key is kept
    warned.add(key)
    logger.warning(
        "%s emitted fewer rows than it read: skipped %s in a batch of %d rows (later batches of this map "
        "are not logged); %s",
        name,
        counts,
        rows_read,
        hint,
    )


def _skip_ledger(processor: Processor) -> Path | None:
    """Where the skips of ``processor`` over the dataset that a running ``map`` maps are kept, if cached."""
    dataset = running_map_dataset()
    fingerprint = dataset_fingerprint(dataset) if dataset is not None else None
    files = dataset.cache_files if dataset is not None else None
    if not files or fingerprint is None:  # in memory: datasets caches nothing, so nothing will be replayed
        return None
    state = json.dumps([type(processor).__qualname__, processor.config(), __version__], default=repr)
    digest = hashlib.sha256(f"{fingerprint}:{state}".encode()).hexdigest()[:20]
    return Path(files[0]["filename"]).parent / f"real_hub-skips-{digest}.json"


def _record_skips(processor: Processor, call: Any, skipped: Mapping[str, int], hint: str) -> None:
    """Add a batch's skips to the running ``map`` call's totals, kept beside the dataset's cache files."""
    ledger = _skip_ledger(processor)
    if ledger is None:
        return
    totals = processor.__dict__.setdefault("_skip_totals", {}).setdefault(call, Counter())
    totals.update(skipped)
    try:
        write_json_atomic(ledger, {"skipped": dict(sorted(totals.items())), "hint": hint})
    except OSError as err:  # a read-only cache: the warning of this run still stands
        logger.debug("cannot keep the skip counts at %s: %s", ledger, err)


def replay_skips(processor: Processor) -> None:
    """Warn again about the rows a ``map`` call skipped when ``datasets`` answers it from its cache.

    Called while ``datasets`` fingerprints the processor, before it looks for a cached result: when the
    same processor already ran over the same dataset, the counts kept then are logged at WARNING (once).
    """
    ledger = _skip_ledger(processor)
    if ledger is None or not ledger.exists() or processor.__dict__.get("_replayed") == ledger:
        return
    try:
        kept = json.loads(ledger.read_text(encoding="utf-8"))
        skipped, hint = dict(kept["skipped"]), str(kept.get("hint", ""))
    except (OSError, ValueError, KeyError, TypeError):
        return
    processor.__dict__["_replayed"] = ledger
    counts = ", ".join(f"{reason}={n}" for reason, n in sorted(skipped.items()))
    logger.warning(
        "%s emitted fewer rows than it read over this dataset: skipped %s (counted when this map was "
        "computed; the result may come from the cache); %s",
        type(processor).__name__,
        counts,
        hint,
    )


# ------------------------------------------------------------------------------------------ batch forms


def is_columnar(batch: Any) -> bool:
    """Whether ``batch`` is columnar: an Arrow table, a pandas frame, or a dict of numpy arrays."""
    if isinstance(batch, pa.Table):
        return True
    if isinstance(batch, Mapping):
        return type(batch) is dict and bool(batch) and all(isinstance(v, np.ndarray) for v in batch.values())
    return type(batch).__module__.split(".")[0] == "pandas" and hasattr(batch, "columns")


def numpy_to_arrow(values: np.ndarray) -> pa.Array:
    """A numpy column as Arrow; n-d numeric arrays and object arrays of arrays become nested lists."""
    if values.dtype != object:
        if values.ndim <= 1:
            return pa.array(values)
        width = values.shape[1]
        offsets = np.arange(0, len(values) * width + 1, width, dtype=np.int32)
        return pa.ListArray.from_arrays(offsets, numpy_to_arrow(values.reshape(-1, *values.shape[2:])))
    items = list(values)
    if items and all(isinstance(v, np.ndarray) and v.ndim >= 1 for v in items):
        try:
            flat = np.concatenate(items)
        except ValueError:  # parts of different shapes: read them as Python values
            return pa.array([to_python(v) for v in items])
        lengths = np.fromiter((len(v) for v in items), dtype=np.int64, count=len(items))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        return pa.ListArray.from_arrays(offsets, numpy_to_arrow(flat))
    return pa.array([to_python(v) for v in items])


def _plain_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """An extension column (Ray's tensors) as plain nested lists; any other column as it is."""
    if not isinstance(column.type, pa.ExtensionType):
        return column
    return pa.chunked_array(
        [numpy_to_arrow(np.asarray(c.to_numpy(zero_copy_only=False))) for c in column.chunks]
    )


def to_arrow_table(batch: Any) -> pa.Table:
    """A columnar batch (Arrow table, pandas frame, dict of numpy arrays) as a plain Arrow table."""
    if isinstance(batch, pa.Table):
        table = batch
    elif isinstance(batch, Mapping):
        table = pa.table({str(n): numpy_to_arrow(np.asarray(v)) for n, v in batch.items()})
    else:  # pandas: Arrow-backed columns convert without a copy, numpy-backed ones as above
        columns = {}
        for name in batch.columns:
            series = batch[name]
            try:
                columns[str(name)] = pa.array(series, from_pandas=True)
            except (pa.ArrowException, TypeError, ValueError):
                columns[str(name)] = numpy_to_arrow(series.to_numpy())
        table = pa.table(columns)
    if any(isinstance(f.type, pa.ExtensionType) for f in table.schema):
        table = pa.table({n: _plain_column(table.column(n)) for n in table.column_names})
    return table


def arrow_column(values: Any, arrow_type: pa.DataType | None = None) -> pa.Array | pa.ChunkedArray:
    """A processor's output column (list or numpy array) as Arrow, cast to ``arrow_type`` when given."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        array = values
    elif isinstance(values, np.ndarray):
        array = numpy_to_arrow(values)
    elif values and all(isinstance(v, np.ndarray) for v in values):
        items = np.empty(len(values), dtype=object)
        items[:] = list(values)
        array = numpy_to_arrow(items)
    else:
        array = pa.array([to_python(v) for v in values], type=arrow_type)
    if arrow_type is not None and array.type != arrow_type:
        array = array.cast(arrow_type)
    return array
