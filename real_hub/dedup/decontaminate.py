""":func:`decontaminate`: drop rows whose prompt matches a prompt of a benchmark or a held-out split."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict

from ..errors import ColumnError, ConfigError, RowError
from .dedup import Embedder
from .embedding import embed_texts, embedder_name, prompt_embedder
from .report import DedupReport, Match
from .search import VectorIndex, nearest
from .settings import check_threshold
from .text import PromptKeys, read_keys

logger = logging.getLogger(__name__)

AgainstSource = str | Dataset | DatasetDict
"""A set to decontaminate against: a ``Dataset`` (or ``DatasetDict``: every split), or ``SOURCE[:column]``:
a data file, a Hub-layout folder or a Hub dataset id (every split), with its prompt column."""


@dataclass
class AgainstSet:
    """One loaded ``against`` set: its name in the report, its data and prompt column."""

    name: str
    data: Dataset
    column: str


def split_spec(spec: str, column: str) -> tuple[str, str]:
    """``SOURCE[:column]`` as ``(source, column)``; an existing path is taken whole (its ``:`` kept)."""
    if Path(spec).expanduser().exists():
        return spec, column
    head, sep, tail = spec.rpartition(":")
    if sep and head and tail and not any(c in tail for c in "/\\"):
        return head, tail
    return spec, column


def load_against(against: AgainstSource | Sequence[AgainstSource], column: str) -> list[AgainstSet]:
    """The ``against`` sets, each split of a ``DatasetDict``, folder or Hub id as a set of its own."""
    from ..hub.sources import load_splits

    items = [against] if isinstance(against, (str, Dataset, DatasetDict)) else list(against)
    if not items:
        raise ConfigError("against is empty: give a dataset, a file, a folder or a Hub id (SOURCE[:column])")
    sets: list[AgainstSet] = []
    for i, item in enumerate(items):
        label = "<Dataset>" if len(items) == 1 else f"<Dataset #{i}>"
        if isinstance(item, Dataset):
            sets.append(AgainstSet(label, item, column))
            continue
        if isinstance(item, DatasetDict):
            splits, col = dict(item), column
        elif isinstance(item, str):
            label, col = split_spec(item, column)
            splits = load_splits(label)
            label = f"{label}:{col}"
        else:
            raise ConfigError(
                "against must be a Dataset, a DatasetDict or a string SOURCE[:column] (or a list of them), "
                f"got {type(item).__name__}"
            )
        for split, data in splits.items():
            sets.append(AgainstSet(label if len(splits) == 1 else f"{label} [{split}]", data, col))
    return sets


def decontaminate(
    ds: Dataset,
    against: AgainstSource | Sequence[AgainstSource],
    column: str = "prompt",
    *,
    threshold: float = 0.9,
    embedder: Embedder = None,
) -> tuple[Dataset, DedupReport]:
    """Drop the rows whose prompt matches a prompt of ``against``; return the rest and a :class:`DedupReport`.

    A row matches when its prompt equals an ``against`` prompt once whitespace and case are normalised,
    or when their embeddings' cosine similarity is ``>= threshold`` (the nearest ``against`` prompt, by a
    FAISS search in chunks). The report's ``matches`` say which ``against`` prompt each removed row
    matched. Split leakage is the same call: ``decontaminate(train, against=test)``.

    Args:
        ds: The data to clean (pairs, candidates, or any dataset with a prompt column).
        against: A ``Dataset``, a ``DatasetDict`` (every split), or ``"SOURCE[:column]"``: a local data
            file, a Hub-layout folder or a Hub dataset id (every split), the prompt column after a colon
            (default: ``column``); or a list of these.
        column: The prompt column of ``ds`` (and of ``against`` sets that name none).
        threshold: Cosine similarity in (0, 1] at or above which a prompt counts as leaked.
        embedder: As for :func:`~real_hub.deduplicate` (default: static MiniLM).

    Raises:
        ConfigError: ``threshold`` outside (0, 1], an empty or unknown ``against``.
        ColumnError: ``ds`` or an ``against`` set lacks its prompt column (the error names the column).
        RowError: A prompt that is not a non-empty text or chat (named by set and row).
        FormatError, HubError: An ``against`` source that cannot be loaded.
    """
    threshold = check_threshold(threshold)
    embed = prompt_embedder(embedder)
    clock = time.perf_counter()
    sets = load_against(against, column)
    keys = read_keys(ds, column)
    refs, ref_texts = _against_keys(sets)
    report = DedupReport(
        "decontaminate",
        column,
        threshold,
        embedder_name(embed),
        rows_in=len(ds),
        against=[s.name for s in sets],
        against_prompts=len(refs),
    )
    report.seconds["read"] = round(time.perf_counter() - clock, 3)
    ref_of = {text: k for k, text in enumerate(refs)}
    matched = np.array([ref_of.get(text, -1) for text in keys.texts], dtype=np.int64)
    exact = matched >= 0
    similarity = np.where(exact, 1.0, -np.inf).astype(np.float32)
    rest = np.flatnonzero(~exact)
    if len(rest) and refs:
        with tempfile.TemporaryDirectory(prefix="real-hub-decontaminate-") as folder:
            clock = time.perf_counter()
            indexed = embed_texts(list(refs), embed, Path(folder), "against prompts")
            queries = embed_texts([keys.texts[k] for k in rest], embed, Path(folder), "prompts")
            report.seconds["embed"] = round(time.perf_counter() - clock, 3)
            clock = time.perf_counter()
            index = VectorIndex(indexed)
            report.index = index.description
            ids, sims = nearest(index, queries)
            report.seconds["search"] = round(time.perf_counter() - clock, 3)
            del index, indexed, queries
        hit = (ids >= 0) & (sims >= threshold - 1e-6)
        matched[rest[hit]] = ids[hit]
        similarity[rest[hit]] = np.minimum(sims[hit], 1.0)
    removed_rows = np.flatnonzero(matched[keys.row_key] >= 0)
    for row in removed_rows.tolist():
        k = int(keys.row_key[row])
        set_index, against_row, text = ref_texts[int(matched[k])]
        sim = round(float(similarity[k]), 6)
        report.matches.append(Match(row, sets[set_index].name, against_row, text, sim, bool(exact[k])))
    report.exact = sum(m.exact for m in report.matches)
    report.semantic = len(report.matches) - report.exact
    out = ds if not len(removed_rows) else ds.select(np.flatnonzero(matched[keys.row_key] < 0))
    report.rows_out = len(out)
    logger.info(
        "decontaminate: %d rows in, %d exact and %d near matches of %d against prompts removed "
        "(threshold %g, %s), %d out",
        report.rows_in,
        report.exact,
        report.semantic,
        len(refs),
        threshold,
        report.embedder,
        report.rows_out,
    )
    return out, report


def _against_keys(sets: list[AgainstSet]) -> tuple[dict[str, int], list[tuple[int, int, str]]]:
    """The distinct normalised ``against`` prompts (in order), and each one's first (set, row, text)."""
    refs: dict[str, int] = {}
    where: list[tuple[int, int, str]] = []
    for s, against in enumerate(sets):
        if against.column not in against.data.column_names:
            present = ", ".join(repr(c) for c in against.data.column_names) or "none"
            raise ColumnError(
                f"the against set {against.name} has no column {against.column!r} (its columns: "
                f"[{present}]); name its prompt column as SOURCE:COLUMN, or pass column=..."
            )
        try:
            keys: PromptKeys = read_keys(against.data, against.column, keep_text=True)
        except RowError as err:
            raise RowError(err.reason, row=err.row, column=err.column, file=against.name) from None
        first_rows = np.unique(keys.row_key, return_index=True)[1]
        for k, text in enumerate(keys.texts):
            if text not in refs:
                refs[text] = len(where)
                where.append((s, int(first_rows[k]), keys.first_text[k]))
    return refs, where
