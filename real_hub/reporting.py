"""Summaries and number formatting shared by reports, cards, the command line and the Space."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

#: The fields of a card's summary of a numeric column.
SUMMARY_FIELDS = ("count", "min", "mean", "median", "max")


def summarize(
    values: Iterable[Any], *, fields: Sequence[str] = SUMMARY_FIELDS, digits: int | None = 6
) -> dict[str, float]:
    """Count, min, mean, median and max (or ``fields`` of them) of numbers, None values left out.

    Values are rounded to ``digits`` (None: as computed). Without values: ``{"count": 0}`` when ``count``
    is a field, else ``{}``.
    """
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if arr.size == 0:
        return {"count": 0} if "count" in fields else {}
    stats = {
        "count": lambda: int(arr.size),
        "min": lambda: float(arr.min()),
        "mean": lambda: float(arr.mean()),
        "median": lambda: float(np.median(arr)),
        "max": lambda: float(arr.max()),
    }
    out: dict[str, float] = {}
    for name in fields:
        value = stats[name]()
        out[name] = value if digits is None or name == "count" else round(value, digits)
    return out


def format_number(value: Any, spec: str = ".6g", none: str = "-") -> str:
    """A value for a table cell: floats with ``spec``, None as ``none``, anything else as ``str``."""
    if value is None:
        return none
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def markdown_cell(value: Any, spec: str = ".6g") -> str:
    """A value for a Markdown table cell: a dict as ``k=v, ...``, ``|`` and newlines escaped."""
    if isinstance(value, dict):
        value = ", ".join(f"{k}={v}" for k, v in value.items())
    return format_number(value, spec).replace("|", "\\|").replace("\n", " ")


def library_versions() -> dict[str, str]:
    """Versions of real-hub and the libraries that shape its output, for provenance."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("real-hub", "datasets", "huggingface-hub", "transformers", "sentence-transformers", "torch"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out
