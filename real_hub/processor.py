"""The processor contract shared by every ``dataset.map`` processor.

A processor's constructor takes configuration only. Anything it builds at run time (a model, a
tokenizer, counters) lives in attributes whose names start with ``_`` and is dropped when the
processor is pickled, so that ``datasets`` fingerprints the configuration, never the weights, and
``num_proc>1`` workers rebuild what they need on first call. The package version is part of the
pickled state: a processor class is pickled by reference, so without it a code change would keep
the old cache.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from .schema import SKIP_REASON
from .version import __version__

logger = logging.getLogger(__name__)

_VERSION_KEY = "__real_hub_version__"


class Processor:
    """Base class: pickles to its public attributes (the configuration) plus the package version."""

    def config(self) -> dict[str, Any]:
        """The configuration: every public attribute, sorted by name."""
        return {k: v for k, v in sorted(vars(self).items()) if not k.startswith("_")}

    def __getstate__(self) -> dict[str, Any]:
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


def drop_skipped(rows: Any, column: str = SKIP_REASON) -> tuple[Any, dict[str, int]]:
    """Remove the rows whose ``column`` holds a skip reason, and the column; count them by reason.

    ``rows`` is a ``datasets.Dataset`` mapped with ``keep_skipped=True`` (or a converter's ``_skip`` mark);
    the counts are sorted by reason.
    """
    import numpy as np
    import pyarrow.compute as pc

    if column not in rows.column_names:  # zero rows mapped: nothing was written
        return rows, {}
    reasons = rows.with_format("arrow")[column]
    counts = pc.value_counts(reasons.drop_null()).to_pylist() if len(reasons) else []
    skipped = {c["values"]: int(c["counts"]) for c in sorted(counts, key=lambda c: c["values"])}
    if skipped:
        rows = rows.select(np.flatnonzero(reasons.is_null().to_numpy(zero_copy_only=False)))
    return rows.remove_columns(column), skipped


def _map_call_key() -> Any:
    """An identity of the ``Dataset.map`` call running this code (its ``_map_single`` frame), else None."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "_map_single":
            return (id(frame), frame.f_locals.get("new_fingerprint"))
        frame = frame.f_back
    return None


def warn_skipped_once(processor: Processor, skipped: Mapping[str, int], rows_read: int, hint: str) -> None:
    """Log at WARNING, once per ``Dataset.map`` call, that ``processor`` skipped rows, with counts by reason.

    As ``datasets`` warns once rather than per batch: the first batch of a ``map`` call that skips anything
    logs the warning (its counts by reason, and ``hint``: how to get the full report); later batches of that
    call log at DEBUG. Outside ``Dataset.map`` (a direct call, Ray) it warns once per processor and process.
    """
    name = type(processor).__name__
    if not skipped:
        return
    key = _map_call_key()
    warned = processor.__dict__.setdefault("_warned_skips", set())
    counts = ", ".join(f"{reason}={n}" for reason, n in sorted(skipped.items()))
    if key in warned:
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


def map_and_count(
    dataset: Any, processor: Any, *, features: Any, batch_size: int, num_proc: int | None, desc: str
) -> tuple[Any, dict[str, int]]:
    """Map a row-emitting ``processor`` (with ``keep_skipped=True``) over ``dataset``; drop and count skips.

    Zero rows give an empty result with ``features``. Returns the emitted rows and the skips by reason.
    """
    from datasets import Dataset

    if len(dataset) == 0:
        rows = Dataset.from_dict({name: [] for name in features}, features=features)
    else:
        rows = dataset.map(
            processor,
            batched=True,
            batch_size=batch_size,
            num_proc=num_proc,
            remove_columns=dataset.column_names,
            features=features,
            desc=desc,
        )
    return drop_skipped(rows)
