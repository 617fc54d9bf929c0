"""Naming the source schema of a dataset from its columns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from datasets import Dataset

from ..errors import ConfigError, FormatError
from ..schema import is_messages_feature

SOURCES = ("hh", "trl", "shp", "ultrafeedback", "candidates")
PAIR_SOURCES = ("hh", "trl")
CANDIDATE_SOURCES = ("shp", "ultrafeedback", "candidates")

# Columns that identify each source, checked in this order by detect_source.
SCHEMAS: dict[str, tuple[str, ...]] = {
    "ultrafeedback": ("instruction", "completions"),
    "shp": ("post_id", "history", "human_ref_A", "human_ref_B", "score_A", "score_B"),
    "candidates": ("prompt", "responses"),
    "trl": ("prompt", "chosen", "rejected"),
    "hh": ("chosen", "rejected"),
}


def detect_source(column_names: Iterable[str]) -> str:
    """Name the source schema of a dataset from its columns.

    Pass ``dataset.features`` rather than ``dataset.column_names`` to tell HH-RLHF transcripts (strings) from
    TRL implicit-prompt conversations (lists of messages), which share the columns ``chosen``/``rejected``.

    Raises:
        FormatError: no known schema matches; the message lists the columns present and the schemas known.
    """
    present = list(column_names)
    for source, wanted in SCHEMAS.items():
        if all(w in present for w in wanted):
            if (
                source == "hh"
                and isinstance(column_names, Mapping)
                and is_messages_feature(column_names["chosen"])
            ):
                return "trl"
            return source
    known = "; ".join(f"{s}: {', '.join(cols)}" for s, cols in SCHEMAS.items())
    found = ", ".join(repr(c) for c in present) or "none"
    raise FormatError(
        f"cannot tell the source of a dataset with columns [{found}]; known schemas (columns): {known}. "
        "Rename the columns or pass source= explicitly."
    )


def resolve_source(dataset: Dataset, source: str, shape: str) -> str:
    """The source schema to convert with: ``source`` checked, or detected when ``"auto"``."""
    if source == "auto":
        source = detect_source(dataset.features)
    elif source not in SOURCES:
        raise ConfigError(f"source={source!r} is not one of {', '.join(SOURCES)} or 'auto'")
    if shape == "pairs" and source in CANDIDATE_SOURCES:
        raise FormatError(
            f"source {source!r} holds candidates (several responses per prompt), not chosen/rejected pairs: "
            "use to_candidates(), then select pairs from the candidates (e.g. with SelectPairs)"
        )
    if shape == "candidates" and source in PAIR_SOURCES:
        raise FormatError(f"source {source!r} holds chosen/rejected pairs, not candidates: use to_pairs()")
    return source
