"""Naming the source schema of a dataset from its columns."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from datasets import Dataset, Features, Value

from ..errors import ConfigError, FormatError
from ..schema import is_messages_feature
from ..validate import describe

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
_NEEDS: dict[str, str] = {
    "ultrafeedback": "rated 'completions' of an 'instruction'",
    "shp": "SHP pair rows grouped by 'post_id'",
    "candidates": "a 'responses' list per prompt",
    "trl": "TRL pairs: a prompt (text or messages), chosen and rejected responses",
    "hh": "HH-RLHF transcripts in chosen/rejected ('\\n\\nHuman: ... \\n\\nAssistant: ...'), "
    "or implicit-prompt conversations (lists of messages)",
}
_HH_START = re.compile(r"\s*(Human|Assistant):")


def _schemas_tried(present: list[str]) -> str:
    parts = []
    for source, wanted in SCHEMAS.items():
        missing = [w for w in wanted if w not in present]
        state = f"missing {', '.join(repr(m) for m in missing)}" if missing else "all present"
        parts.append(f"{source}: {', '.join(wanted)} ({_NEEDS[source]}; {state})")
    return "; ".join(parts)


def _is_string_feature(feature: Any) -> bool:
    return isinstance(feature, Value) and feature.dtype in ("string", "large_string")


def _looks_like_hh(dataset: Dataset) -> tuple[bool, Any]:
    """Whether the first non-null ``chosen`` values are HH-RLHF transcripts; also the first value seen."""
    seen: Any = None
    column = dataset.select_columns(["chosen"])
    for value in column[: min(len(dataset), 50)]["chosen"]:
        if value is None:
            continue
        if seen is None:
            seen = value
        if isinstance(value, str) and _HH_START.match(value):
            return True, value
        if isinstance(value, (list, tuple)):
            return False, value
    return seen is None, seen


def detect_source(column_names: Iterable[str] | Dataset) -> str:
    """Name the source schema of a dataset from its columns.

    Pass the ``Dataset`` itself (or at least ``dataset.features`` rather than ``dataset.column_names``) to
    tell HH-RLHF transcripts (strings) from TRL implicit-prompt conversations (lists of messages), which share
    the columns ``chosen``/``rejected``: given a dataset, the first values of ``chosen`` are looked at, and
    strings that are not HH transcripts (a TRL set whose ``prompt`` column is missing or misnamed) are refused
    rather than parsed as HH.

    Raises:
        FormatError: no known schema matches, or only ``chosen``/``rejected`` match and the values are not HH
            transcripts; the message lists the schemas tried, what each needs, and the columns present.
    """
    dataset = column_names if isinstance(column_names, Dataset) else None
    features = dataset.features if dataset is not None else column_names
    present = list(features)
    found = ", ".join(repr(c) for c in present) or "none"
    for source, wanted in SCHEMAS.items():
        if not all(w in present for w in wanted):
            continue
        if source != "hh":
            return source
        if isinstance(features, Mapping) and is_messages_feature(features["chosen"]):
            return "trl"
        if dataset is None:
            return "hh"
        if not _is_string_feature(features["chosen"]) or not _is_string_feature(features["rejected"]):
            ok, value = _looks_like_hh(dataset)
            if isinstance(value, (list, tuple)):
                return "trl"  # implicit-prompt conversations, some rows of another type (a Json column)
        else:
            ok, value = _looks_like_hh(dataset)
        if ok:
            return "hh"
        raise FormatError(
            f"the columns [{found}] fit HH-RLHF (chosen/rejected transcripts): expected a transcript "
            f"starting with '\\n\\nHuman: ' in 'chosen', found {describe(value)}; TRL pairs need a 'prompt' "
            f"column (rename yours, or pass source= explicitly). Schemas tried: {_schemas_tried(present)}"
        )
    raise FormatError(
        f"cannot tell the source of a dataset with columns [{found}]: expected the columns of one of the "
        f"schemas tried: {_schemas_tried(present)}. Rename the columns or pass source= explicitly."
    )


def resolve_source(dataset: Dataset | Features, source: str, shape: str) -> str:
    """The source schema to convert with: ``source`` checked, or detected when ``"auto"``."""
    if source == "auto":
        source = detect_source(dataset)
    elif source not in SOURCES:
        raise ConfigError(f"source={source!r} is not one of {', '.join(SOURCES)} or 'auto'")
    if shape == "pairs" and source in CANDIDATE_SOURCES:
        raise FormatError(
            f"source {source!r} holds candidates (several responses per prompt); expected chosen/rejected "
            "pairs: use to_candidates(), then select pairs from the candidates (e.g. with SelectPairs)"
        )
    if shape == "candidates" and source in PAIR_SOURCES:
        raise FormatError(
            f"source {source!r} holds chosen/rejected pairs; expected candidates: use to_pairs()"
        )
    return source
