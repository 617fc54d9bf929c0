"""Dataset-level conversion: :func:`to_pairs`, :func:`to_candidates`, :func:`to_trl`, :func:`trl_format`."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from datasets import Dataset, Features, Json, List, Value

from ..errors import ConfigError, option
from ..mapping import drop_skipped, map_rows
from ..schema import (
    NOTES,
    SKIP,
    candidate_features,
    is_messages_feature,
    message_feature,
    pair_features,
    with_marks,
)
from ..validate import require_columns
from .detect import SCHEMAS, resolve_source
from .hh import hh_batch_to_pairs
from .plain import candidates_batch_validate
from .report import ConversionReport
from .shp import ShpGroups
from .trl import pairs_batch_to_trl, trl_batch_to_pairs
from .ultrafeedback import ultrafeedback_batch_to_candidates

logger = logging.getLogger(__name__)


def _one_split(dataset: Any, function: str) -> None:
    """Refuse a ``DatasetDict`` (several splits) where one split is expected, saying how to pick one."""
    if isinstance(dataset, Mapping) and not isinstance(dataset, Features):
        splits = list(dataset)
        pick = splits[0] if splits else "train"
        raise ConfigError(
            f"{function} converts one split, a Dataset; got a {type(dataset).__name__} with splits {splits}: "
            f"pass one, e.g. {function}(ds[{pick!r}])"
        )


def _finish(out: Dataset, source: str, rows_in: int) -> tuple[Dataset, ConversionReport]:
    """Count the ``_notes``, drop the rows marked ``_skip`` (counted by reason), and report."""
    notes: Counter[str] = Counter()
    if NOTES in out.column_names:
        for batch in out.select_columns([NOTES]).iter(batch_size=10_000):
            for row_notes in batch[NOTES]:
                notes.update(row_notes)
        out = out.remove_columns(NOTES)
    out, skipped = drop_skipped(out, SKIP)
    prompts = set()
    for batch in out.select_columns(["prompt"]).iter(batch_size=10_000):
        prompts.update(
            p if isinstance(p, str) else tuple((m["role"], m["content"]) for m in p) for p in batch["prompt"]
        )
    report = ConversionReport(source, rows_in, len(out), skipped, len(prompts), dict(notes))
    logger.info(
        "converted %s: %d rows in, %d out, %d prompts, skipped %s, notes %s",
        source, rows_in, len(out), len(prompts), report.skipped or "none", report.notes or "none",
    )  # fmt: skip
    return out, report


def _convert(
    dataset: Dataset, fn: Any, features: Features, source: str, **fn_kwargs: Any
) -> tuple[Dataset, ConversionReport]:
    out = map_rows(
        dataset, fn, features=features, desc=f"Converting {source}", with_indices=True, fn_kwargs=fn_kwargs
    )
    return _finish(out, source, len(dataset))


@dataclass(frozen=True)
class ConversionPlan:
    """How rows of one source become the canonical shape: the batch function, its options, the features.

    ``fn`` is None for ``shp``, whose rows are grouped by post over the whole dataset rather than mapped.
    Both engines of :func:`real_hub.curate` (``datasets`` and Ray) convert with the same plan.
    """

    source: str
    shape: str
    fn: Callable[..., dict[str, list]] | None
    fn_kwargs: dict[str, Any]
    features: Features


def _is_text_feature(feature: Any) -> bool:
    return isinstance(feature, Value) and feature.dtype in ("string", "large_string")


def conversion_plan(
    data: Dataset | Features, source: str = "auto", shape: str = "pairs", *, hh_prompt: str = "messages"
) -> ConversionPlan:
    """The :class:`ConversionPlan` for ``data`` (a dataset, or its features) into ``pairs`` or ``candidates``.

    Given the dataset, detection also looks at its first values (see :func:`detect_source`).

    Raises:
        FormatError: the source holds the other shape, or is unknown.
        ColumnError: a required column is missing (the message lists those present).
    """
    source = resolve_source(data, source, shape)
    features = data.features if isinstance(data, Dataset) else data
    if shape == "pairs":
        require_columns(features, ["chosen", "rejected"])
        if source == "hh":
            if hh_prompt not in ("messages", "text"):
                raise ConfigError(f"hh_prompt={hh_prompt!r}: expected 'messages' or 'text'")
            return ConversionPlan(
                source,
                shape,
                hh_batch_to_pairs,
                {"hh_prompt": hh_prompt},
                with_marks(pair_features(hh_prompt == "messages")),
            )
        if "prompt" not in features and _is_text_feature(features["chosen"]):
            require_columns(
                features, ["prompt"], hint=f"HH-RLHF transcripts convert with {option('source', 'hh')}"
            )
        conversational = (
            "prompt" not in features
            or is_messages_feature(features["prompt"])
            or is_messages_feature(features["chosen"])
        )
        out_features = pair_features(conversational)
        if source == "trl" and isinstance(features.get("prompt"), Json):  # prompts mixing text and messages
            out_features["prompt"] = Json()
        return ConversionPlan(source, shape, trl_batch_to_pairs, {}, with_marks(out_features))
    require_columns(features, SCHEMAS[source])
    if source == "ultrafeedback":
        marked = with_marks(candidate_features(False), notes=True)
        return ConversionPlan(source, shape, ultrafeedback_batch_to_candidates, {}, marked)
    if source == "candidates":
        out_features = candidate_features(is_messages_feature(features["prompt"]))
        if isinstance(features["prompt"], Json):  # prompts mixing text and messages
            out_features["prompt"] = Json()
        return ConversionPlan(source, shape, candidates_batch_validate, {}, with_marks(out_features))
    return ConversionPlan(source, shape, None, {}, with_marks(candidate_features(False), notes=True))


def to_pairs(
    dataset: Dataset, source: str = "auto", *, hh_prompt: str = "messages"
) -> tuple[Dataset, ConversionReport]:
    r"""Convert a pairwise source (``hh`` or ``trl``) into canonical pairs.

    Args:
        dataset: the source rows.
        source: one of ``"hh"``, ``"trl"`` or ``"auto"`` (see :func:`detect_source`).
        hh_prompt: HH prompts as ``"messages"`` (user/assistant turns) or ``"text"`` (the raw transcript
            prefix ending in ``"\n\nAssistant:"``, then ``prompt + chosen`` is the chosen transcript exactly).

    Returns:
        The pairs (columns :data:`PAIR_COLUMNS`) and a :class:`ConversionReport`.

    Raises:
        FormatError: the source holds candidates (use :func:`to_candidates`) or is unknown.
        ColumnError: a required column is missing (the message lists those present).
        RowError: a value has the wrong type.
    """
    _one_split(dataset, "to_pairs")
    plan = conversion_plan(dataset, source, "pairs", hh_prompt=hh_prompt)
    return _convert(dataset, plan.fn, plan.features, plan.source, **plan.fn_kwargs)


def to_candidates(dataset: Dataset, source: str = "auto") -> tuple[Dataset, ConversionReport]:
    """Convert a multi-response source (``shp``, ``ultrafeedback`` or ``candidates``) into candidates.

    SHP rows are grouped by ``post_id`` over the whole dataset (held in memory while grouping).

    Returns:
        The candidates (columns :data:`CANDIDATE_COLUMNS`) and a :class:`ConversionReport`.

    Raises:
        FormatError: the source holds pairs (use :func:`to_pairs`) or is unknown.
        ColumnError: a required column is missing (the message lists those present).
        RowError: a value has the wrong type, or candidate lists are ragged.
    """
    _one_split(dataset, "to_candidates")
    plan = conversion_plan(dataset, source, "candidates")
    if plan.fn is not None:
        return _convert(dataset, plan.fn, plan.features, plan.source, **plan.fn_kwargs)
    groups = ShpGroups()
    features = dataset.features
    wanted = [c for c in features if c in SCHEMAS["shp"] or c.startswith("c_root_id_")]
    start = 0
    for batch in dataset.select_columns(wanted).iter(batch_size=10_000):
        n = len(batch["post_id"])
        groups.add(batch, range(start, start + n))
        start += n
    out = Dataset.from_dict(groups.columns(), features=plan.features)
    return _finish(out, plan.source, len(dataset))


def _check_pairs(dataset: Dataset, batch_size: int = 10_000) -> None:
    """Raise a :class:`RowError` naming the first row whose prompt, chosen or rejected is not usable text."""
    start = 0
    for batch in dataset.select_columns(["prompt", "chosen", "rejected"]).iter(batch_size=batch_size):
        n = len(batch["prompt"])
        pairs_batch_to_trl(batch, range(start, start + n))
        start += n


def to_trl(dataset: Dataset, *, conversational: bool | None = None) -> Dataset:
    """Canonical pairs in TRL's preference format; provenance columns are kept.

    Plain-text prompts give TRL's standard format (unchanged); message prompts give the conversational one,
    ``chosen=[{"role": "assistant", "content": ...}]`` and the same for ``rejected``. A prompt column that
    mixes strings and message lists becomes conversational throughout (a string prompt is one user
    message), and so does a plain one with ``conversational=True`` (to match another split). Data already in
    TRL's conversational format is returned as is.

    Raises:
        RowError: a prompt, ``chosen`` or ``rejected`` is None, empty or not text (naming the row).
    """
    _one_split(dataset, "to_trl")
    features = dataset.features
    require_columns(features, ["prompt", "chosen", "rejected"])
    if is_messages_feature(features["chosen"]):
        return dataset
    prompt = features["prompt"]
    plain = isinstance(prompt, Value) and prompt.dtype in ("string", "large_string")
    if plain and not conversational:
        _check_pairs(dataset)
        return dataset
    # message prompts, or a column mixing strings and message lists (datasets' Json feature): all messages
    mixed = not is_messages_feature(prompt)
    new = Features({**features, "chosen": List(message_feature()), "rejected": List(message_feature())})
    if mixed:
        new["prompt"] = List(message_feature())
    return dataset.map(
        pairs_batch_to_trl,
        batched=True,
        with_indices=True,
        features=new,
        desc="To TRL format",
        fn_kwargs={"all_messages": mixed},
    )


def trl_format(features: Features) -> str | None:
    """TRL's preference format of pairs with these features: ``"conversational"``, ``"standard"`` or None.

    None when the columns are not both one thing or the other (e.g. message prompts with string responses,
    which TRL's trainers cannot read).
    """
    if not all(c in features for c in ("prompt", "chosen", "rejected")):
        return None
    kinds = {is_messages_feature(features[c]) for c in ("prompt", "chosen", "rejected")}
    plain = all(
        isinstance(features[c], Value) and features[c].dtype in ("string", "large_string")
        for c in ("prompt", "chosen", "rejected")
    )
    if kinds == {True}:
        return "conversational"
    return "standard" if plain else None
