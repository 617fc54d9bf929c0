"""Nearest prompts: a FAISS index through ``datasets``' own index API, searched in chunks.

Why this library: the vectors already sit in a ``Dataset`` (an Arrow file, memory-mapped), and
``Dataset.add_faiss_index`` / ``Dataset.search_batch`` index and search them where they are, with FAISS
(``faiss-cpu``, the ``dedup`` extra), the reference library for dense vector search: exact inner-product
search (``IndexFlatIP``) for up to :data:`EXACT_SEARCH_UP_TO` prompts, and an HNSW graph
(``IndexHNSWFlat``) above that, whose build and search time grow as ``n log n`` and whose memory grows
linearly (the vectors plus ``2 * HNSW_M`` links each). Queries go in chunks of :data:`QUERY_CHUNK`, each
asking for its :data:`NEIGHBOURS` nearest prompts, so memory never holds an ``n x n`` anything.

How duplicate groups are formed (:func:`greedy_groups`): the search gives candidate edges (two prompts at
cosine ``>= threshold``); union-find (``scipy.sparse.csgraph.connected_components``) joins them into
connected components, so that a cluster larger than ``NEIGHBOURS`` is still seen whole; then, inside each
component, prompts are visited in ``keep`` order and each one is kept unless its exact cosine with a prompt
already kept reaches the threshold (then it joins the group of the most similar kept prompt). This is
greedy keep-first rather than whole components because components chain: A ~ B and B ~ C put A and C
together even when A and C are far apart. Greedy guarantees what a user reads in the report: every
removed prompt is at or above the threshold with its group's kept prompt, and no two kept prompts of a
component are (up to the index's recall, which is exact below ``EXACT_SEARCH_UP_TO`` prompts).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterator

import numpy as np
from datasets import Dataset

from ..errors import MissingExtraError
from .embedding import EMBEDDING

logger = logging.getLogger(__name__)

EXACT_SEARCH_UP_TO = 10_000
"""Indexed prompts up to which the search is exact (brute force, ``IndexFlatIP``); HNSW above."""
NEIGHBOURS = 16
"""Nearest prompts asked for per query (the prompt itself included) in deduplication."""
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 64
QUERY_CHUNK = 4096
ADD_BATCH = 10_000
SIMILARITY_SLACK = 1e-6
"""Float32 rounding allowed at the threshold: a cosine of ``threshold - 1e-6`` still counts as reaching it."""
_GATHER = 50_000
"""Prompts of components whose vectors are read together while forming groups."""
_BLOCK = 1024
"""Prompts of one component compared with the kept ones in one matrix product (:func:`_greedy`)."""


def require_faiss():  # type: ignore[no-untyped-def]
    """Import ``faiss``, or raise :class:`MissingExtraError` naming the ``dedup`` extra."""
    try:
        return importlib.import_module("faiss")
    except ImportError:
        raise MissingExtraError(
            "deduplicate/decontaminate search with FAISS, which is not installed; install it with "
            "`pip install 'real-hub[dedup]'` (or `pip install faiss-cpu`)",
            extra="dedup",
        ) from None


class VectorIndex:
    """A FAISS index over the unit vectors of ``vectors[EMBEDDING]``, attached to that ``Dataset``."""

    def __init__(self, vectors: Dataset) -> None:
        faiss = require_faiss()
        self.vectors = vectors
        self.size = len(vectors)
        dim = len(vectors[0][EMBEDDING])
        if self.size <= EXACT_SEARCH_UP_TO:
            index = faiss.IndexFlatIP(dim)
            self.description = "faiss IndexFlatIP (exact)"
        else:
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.hnsw.efSearch = HNSW_EF_SEARCH
            self.description = (
                f"faiss IndexHNSWFlat (M={HNSW_M}, efConstruction={HNSW_EF_CONSTRUCTION}, "
                f"efSearch={HNSW_EF_SEARCH}; approximate)"
            )
        logger.info("Indexing %d prompt vectors: %s", self.size, self.description)
        vectors.add_faiss_index(EMBEDDING, custom_index=index, batch_size=ADD_BATCH)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarities and ids of the ``k`` nearest indexed vectors of each query (id -1: none)."""
        k = min(k, self.size)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores, ids = self.vectors.search_batch(EMBEDDING, queries, k)
        return np.asarray(scores, dtype=np.float32), np.asarray(ids, dtype=np.int64)


def vector_chunks(vectors: Dataset, size: int = QUERY_CHUNK) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, [rows, dim] float32 array)`` over ``vectors[EMBEDDING]``, ``size`` rows at a time."""
    view = vectors.with_format("numpy", columns=[EMBEDDING], dtype=np.float32)
    for start in range(0, len(view), size):
        yield start, np.asarray(view[start : start + size][EMBEDDING], dtype=np.float32)


def progress(total: int, desc: str):  # type: ignore[no-untyped-def]
    """A tqdm bar, off with ``REAL_HUB_DISABLE_PROGRESS_BARS=1`` or a ``real_hub`` log level above INFO."""
    from tqdm.auto import tqdm

    off = os.environ.get("REAL_HUB_DISABLE_PROGRESS_BARS", "").strip().lower() in ("1", "true", "yes", "on")
    off = off or logging.getLogger("real_hub").getEffectiveLevel() > logging.INFO
    return tqdm(total=total, desc=desc, unit="prompts", disable=off)


def similar_pairs(index: VectorIndex, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Every pair ``(i, j)``, ``i != j``, of indexed prompts found at cosine ``>= threshold`` (both ways)."""
    left: list[np.ndarray] = []
    right: list[np.ndarray] = []
    with progress(index.size, "Searching near-duplicate prompts") as bar:
        for start, queries in vector_chunks(index.vectors):
            scores, ids = index.search(queries, NEIGHBOURS)
            rows = np.arange(start, start + len(queries))[:, None]
            hit = (scores >= threshold - SIMILARITY_SLACK) & (ids >= 0) & (ids != rows)
            left.append(np.broadcast_to(rows, ids.shape)[hit])
            right.append(ids[hit])
            bar.update(len(queries))
    if not left:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(left), np.concatenate(right)


def greedy_groups(
    vectors: Dataset, left: np.ndarray, right: np.ndarray, rank: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy keep-first over the components of the threshold graph (see the module's docstring).

    Args:
        vectors: The prompts' unit vectors (column :data:`EMBEDDING`).
        left: The candidate edges' first ends (:func:`similar_pairs`).
        right: Their second ends.
        rank: Each prompt's place in ``keep`` order (lower is visited first).
        threshold: The cosine a removed prompt reaches with its group's kept prompt.

    Returns:
        ``parent[k]``: the kept prompt that prompt ``k`` is a duplicate of, or -1 if ``k`` is kept;
        ``similarity[k]``: its cosine with that prompt (1.0 for kept prompts).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(rank)
    parent = np.full(n, -1, dtype=np.int64)
    similarity = np.ones(n, dtype=np.float32)
    if not len(left):
        return parent, similarity
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    members = np.flatnonzero(sizes[labels] > 1)
    # members grouped by component, each component in keep order
    members = members[np.lexsort((rank[members], labels[members]))]
    bounds = np.flatnonzero(np.diff(labels[members])) + 1
    components = np.split(members, bounds)
    view = vectors.with_format("numpy", columns=[EMBEDDING], dtype=np.float32)
    batch: list[np.ndarray] = []
    count = 0
    for component in [*components, None]:
        if component is not None:
            batch.append(component)
            count += len(component)
            if count < _GATHER:
                continue
        if batch:
            ids = np.concatenate(batch)
            gathered = np.asarray(view[ids.tolist()][EMBEDDING], dtype=np.float32)
            offset = 0
            for comp in batch:
                _greedy(comp, gathered[offset : offset + len(comp)], threshold, parent, similarity)
                offset += len(comp)
        batch, count = [], 0
    return parent, similarity


def _greedy(
    ids: np.ndarray, vecs: np.ndarray, threshold: float, parent: np.ndarray, similarity: np.ndarray
) -> None:
    """Greedy keep-first over one component (``ids`` in keep order, ``vecs`` their unit vectors).

    A prompt is removed for the most similar prompt kept before it, when that similarity reaches the
    threshold. Prompts are taken in blocks of :data:`_BLOCK`: one matrix product gives a block's similarities
    to everything kept before the block, and the block is then resolved in order against those and its own
    kept rows, so a component of ``n`` prompts costs ``n x kept`` multiply-adds in matrix products rather
    than one Python step per kept row (a component of 100,000 prompts took hours the other way).
    """
    n, dim = vecs.shape
    cut = threshold - SIMILARITY_SLACK
    kept_vecs = np.empty((n, dim), dtype=np.float32)
    kept_ids = np.empty(n, dtype=np.int64)
    m = 0
    for start in range(0, n, _BLOCK):
        block = vecs[start : start + _BLOCK]
        if m:
            earlier = block @ kept_vecs[:m].T
            best_earlier = earlier.argmax(axis=1)  # the first of equal maxima: the earliest kept
            sim_earlier = earlier[np.arange(len(block)), best_earlier]
        local: list[int] = []  # rows of this block kept so far
        for r in range(len(block)):
            best_sim, best_id = (float(sim_earlier[r]), int(kept_ids[best_earlier[r]])) if m else (-2.0, -1)
            if local:
                sims = block[local] @ block[r]
                k = int(np.argmax(sims))
                if sims[k] > best_sim:  # strictly: on a tie the earlier kept prompt wins
                    best_sim, best_id = float(sims[k]), int(ids[start + local[k]])
            if best_sim >= cut:  # the first row has nothing kept before it: best_sim is -2
                parent[ids[start + r]] = best_id
                similarity[ids[start + r]] = min(best_sim, 1.0)
            else:
                local.append(r)
        kept_vecs[m : m + len(local)] = block[local]
        kept_ids[m : m + len(local)] = ids[[start + r for r in local]]
        m += len(local)


def nearest(index: VectorIndex, queries: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The nearest indexed prompt of each of ``queries``' vectors: (its id, the cosine)."""
    ids_out = np.full(len(queries), -1, dtype=np.int64)
    sims_out = np.full(len(queries), -np.inf, dtype=np.float32)
    with progress(len(queries), "Searching contaminated prompts") as bar:
        for start, chunk in vector_chunks(queries):
            scores, ids = index.search(chunk, 1)
            ids_out[start : start + len(chunk)] = ids[:, 0]
            sims_out[start : start + len(chunk)] = scores[:, 0]
            bar.update(len(chunk))
    return ids_out, sims_out
