"""Mapping a row-emitting function over a whole ``Dataset`` and counting the rows it skipped.

Processors that emit their own rows (``SelectPairs``, ``PairsFromRewards``) and the converters mark each
row they skip with a reason instead of dropping it, so that the dataset-level functions count every skip:
:func:`map_and_count` maps and then :func:`drop_skipped` removes the marked rows and counts them by reason.
"""

from __future__ import annotations

from typing import Any

from .schema import SKIP_REASON


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


def map_rows(
    dataset: Any,
    function: Any,
    *,
    features: Any,
    desc: str,
    batch_size: int = 1000,
    num_proc: int | None = None,
    with_indices: bool = False,
    fn_kwargs: dict[str, Any] | None = None,
) -> Any:
    """Map a row-emitting ``function`` over all of ``dataset`` into rows of ``features`` (its columns only).

    Zero rows are valid input: an empty result with ``features``.
    """
    from datasets import Dataset

    if len(dataset) == 0:
        return Dataset.from_dict({name: [] for name in features}, features=features)
    return dataset.map(
        function,
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc,
        with_indices=with_indices,
        fn_kwargs=fn_kwargs,
        remove_columns=dataset.column_names,
        features=features,
        desc=desc,
    )


def map_and_count(
    dataset: Any, processor: Any, *, features: Any, batch_size: int, num_proc: int | None, desc: str
) -> tuple[Any, dict[str, int]]:
    """Map a row-emitting ``processor`` (built with ``keep_skipped=True``); drop and count its skips.

    Returns the emitted rows and the skips by reason.
    """
    rows = map_rows(
        dataset, processor, features=features, desc=desc, batch_size=batch_size, num_proc=num_proc
    )
    return drop_skipped(rows)
