""":func:`deduplicate`: exact copies of a prompt, then near-duplicates by embedding; a row kept per group."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Literal

import numpy as np
from datasets import Dataset

from ..encoders import Encoder
from ..errors import ConfigError
from ..real.embed import EmbedResponses
from .embedding import embed_texts, embedder_name, prompt_embedder
from .report import DedupReport, DuplicateGroup
from .search import VectorIndex, greedy_groups, similar_pairs
from .settings import KEEP, check_threshold
from .text import read_keys

logger = logging.getLogger(__name__)

Embedder = str | Encoder | EmbedResponses | None


def deduplicate(
    ds: Dataset,
    column: str = "prompt",
    *,
    threshold: float = 0.9,
    embedder: Embedder = None,
    keep: Literal["first", "last"] = "first",
) -> tuple[Dataset, DedupReport]:
    """Remove rows whose prompt duplicates another row's; return the kept rows and a :class:`DedupReport`.

    First, exact duplicates: rows whose prompts are equal once whitespace and case are normalised
    (chat prompts compare on their text). Then near-duplicates: prompts whose embeddings have cosine
    similarity ``>= threshold`` (FAISS nearest-neighbour search, in chunks; see
    :mod:`real_hub.dedup.search` for how groups are formed). Each group keeps one row: the first or the
    last in dataset order (``keep``). Rows are compared by prompt alone, so in a pairs dataset two rows
    with one prompt and different responses are duplicates too.

    Args:
        ds: Pairs, candidates, or any dataset with a prompt column (plain text or chat messages).
        column: The prompt column.
        threshold: Cosine similarity in (0, 1] at or above which two prompts are near-duplicates.
        embedder: ``None`` (all-MiniLM-L6-v2 distilled to a static model2vec model, the fast default), a
            backend name (``"sentence-transformers"``, ``"onnx"``, ...), a model name, an
            :class:`~real_hub.EmbedResponses` or any :class:`~real_hub.Encoder`.
        keep: ``"first"`` or ``"last"``: which row of a group stays.

    Raises:
        ConfigError: ``threshold`` outside (0, 1], an unknown ``keep``.
        ColumnError: ``ds`` has no ``column``.
        RowError: A prompt that is not a non-empty text or chat (named by row).
    """
    threshold = check_threshold(threshold)
    if keep not in KEEP:
        raise ConfigError(f"keep must be one of {', '.join(map(repr, KEEP))}, got {keep!r}")
    embed = prompt_embedder(embedder)
    clock = time.perf_counter()
    keys = read_keys(ds, column)
    report = DedupReport(
        "deduplicate", column, threshold, embedder_name(embed), rows_in=len(ds), rows_out=len(ds), keep=keep
    )
    report.seconds["read"] = round(time.perf_counter() - clock, 3)
    n, distinct = len(ds), len(keys)
    # the row each distinct prompt keeps: its first (or last) row
    if keep == "first":
        rep = np.unique(keys.row_key, return_index=True)[1]
        rank = rep
    else:
        rep = n - 1 - np.unique(keys.row_key[::-1], return_index=True)[1]
        rank = -rep
    parent = np.full(distinct, -1, dtype=np.int64)
    similarity = np.ones(distinct, dtype=np.float32)
    if distinct > 1:
        with tempfile.TemporaryDirectory(prefix="real-hub-dedup-") as folder:
            clock = time.perf_counter()
            vectors = embed_texts(keys.texts, embed, Path(folder), "prompts")
            report.seconds["embed"] = round(time.perf_counter() - clock, 3)
            clock = time.perf_counter()
            index = VectorIndex(vectors)
            report.index = index.description
            left, right = similar_pairs(index, threshold)
            parent, similarity = greedy_groups(vectors, left, right, rank, threshold)
            report.seconds["search"] = round(time.perf_counter() - clock, 3)
            del index, vectors
    report.groups = _groups(keys.row_key, rep, parent, similarity)
    report.exact = n - distinct
    report.semantic = int((parent >= 0).sum())
    kept = np.sort(rep[parent < 0])
    out = ds if len(kept) == n else ds.select(kept)
    report.rows_out = len(out)
    logger.info(
        "deduplicate: %d rows in, %d exact and %d near-duplicate copies removed (threshold %g, %s), %d out",
        report.rows_in,
        report.exact,
        report.semantic,
        threshold,
        report.embedder,
        report.rows_out,
    )
    return out, report


def _groups(
    row_key: np.ndarray, rep: np.ndarray, parent: np.ndarray, similarity: np.ndarray
) -> list[DuplicateGroup]:
    """The duplicate groups with at least one removed row, by kept row."""
    order = np.argsort(row_key, kind="stable")
    starts = np.searchsorted(row_key[order], np.arange(len(rep) + 1))
    counts = np.diff(starts)
    top = np.where(parent >= 0, parent, np.arange(len(parent)))
    involved = np.flatnonzero((counts > 1) | (parent >= 0))
    groups: dict[int, DuplicateGroup] = {}
    for k in involved[np.argsort(rep[top[involved]], kind="stable")]:
        head = int(top[k])
        group = groups.setdefault(head, DuplicateGroup(kept=int(rep[head])))
        sim = round(float(similarity[k]), 6)
        for row in order[starts[k] : starts[k + 1]].tolist():
            if row == group.kept:
                continue
            group.removed.append(row)
            group.similarity.append(sim)
            group.exact.append(bool(row != rep[k]))
    for group in groups.values():
        order_in = np.argsort(group.removed, kind="stable")
        group.removed = [group.removed[i] for i in order_in]
        group.similarity = [group.similarity[i] for i in order_in]
        group.exact = [group.exact[i] for i in order_in]
    return sorted(groups.values(), key=lambda g: g.kept)
