"""Naming the source schema of a dataset from its columns."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from datasets import Dataset, Features, Value

from ..errors import ConfigError, FormatError, option
from ..formats import CANDIDATE_SOURCES, PAIR_SOURCES, SOURCES
from ..schema import is_messages_feature
from ..validate import describe

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
    """One line per schema: its columns, what it holds, and which of its columns are missing."""
    lines = []
    for source, wanted in SCHEMAS.items():
        missing = [w for w in wanted if w not in present]
        state = f"missing {', '.join(repr(m) for m in missing)}" if missing else "all present"
        lines.append(f"  - {source}: {', '.join(wanted)} ({_NEEDS[source]}; {state})")
    return "\n".join(lines)


def _closest(present: list[str]) -> str:
    """Which schema the columns come closest to, and what it lacks (with a spelling hint), in one phrase."""
    best = max(
        SCHEMAS, key=lambda s: (sum(w in present for w in SCHEMAS[s]) / len(SCHEMAS[s]), -len(SCHEMAS[s]))
    )
    missing = [w for w in SCHEMAS[best] if w not in present]
    if len(missing) == len(SCHEMAS[best]):
        return "no known schema shares a column with them (TRL pairs need 'prompt', 'chosen', 'rejected')"
    hints = []
    for name in missing:
        near = difflib.get_close_matches(
            name, [p for p in present if p not in SCHEMAS[best]], n=1, cutoff=0.7
        )
        hints.append(f"{name!r} (is {near[0]!r} it?)" if near else repr(name))
    return f"closest is {best!r}, which lacks {', '.join(hints)}"


def _columns(present: list[str], limit: int = 60) -> str:
    """The columns, shortened to about ``limit`` characters."""
    text = ", ".join(repr(c) for c in present) or "none"
    return text if len(text) <= limit else text[: limit - 3].rsplit(",", 1)[0] + ", ..."


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
    found = _columns(present)
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
            f"column (rename yours, or pass {option('source')} explicitly). Schemas tried:\n"
            f"{_schemas_tried(present)}"
        )
    raise FormatError(
        f"cannot tell the source of columns [{_columns(present)}]: {_closest(present)}\n"
        f"Schemas tried (columns, what they hold, what is missing):\n{_schemas_tried(present)}\n"
        f"Rename the columns, or pass {option('source')} to name the schema."
    )


def resolve_source(dataset: Dataset | Features, source: str, shape: str) -> str:
    """The source schema to convert with: ``source`` checked, or detected when ``"auto"``."""
    if source == "auto":
        source = detect_source(dataset)
    elif source not in SOURCES:
        raise ConfigError(f"{option('source', source)} is not one of {', '.join(SOURCES)} or 'auto'")
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
