"""REAL on pairwise data: keep the given share of pairs, chosen over the whole dataset by similarity."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from datasets import Dataset

from ..arrays import arrow_null_row, as_arrow, first_non_finite, python_column
from ..errors import ColumnError, ConfigError, RowError
from ..reporting import summarize
from ..validate import check_number
from .select import PairSimilarity, resolve_strategy

logger = logging.getLogger(__name__)

_FIELDS = ("min", "mean", "max")


@dataclass
class BudgetReport:
    """What :func:`budget_filter` kept: the share of pairs left to annotate and their similarities."""

    strategy: str
    budget: float
    pairs_in: int
    pairs_kept: int
    kept_similarity: dict[str, float] | None
    dropped_similarity: dict[str, float] | None
    seed: int = 0

    @property
    def annotation_saved(self) -> float:
        """Share of pairs not kept (not sent to annotation): ``1 - budget`` up to rounding."""
        return 1.0 - self.pairs_kept / self.pairs_in if self.pairs_in else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary, ``annotation_saved`` included."""
        return {**asdict(self), "annotation_saved": self.annotation_saved}


def budget_filter(
    dataset: Dataset,
    budget: float,
    strategy: str = "dissimilar",
    *,
    similarity_column: str = "similarity",
    seed: int = 0,
) -> tuple[Dataset, BudgetReport]:
    """Keep ``round(budget * len(dataset))`` pairs of a pairwise dataset, chosen over the whole dataset.

    ``dissimilar`` keeps the lowest similarities (REAL on HH-RLHF), ``similar`` the highest (ties by
    row index), ``random`` a sample drawn with ``numpy.random.default_rng(seed)``. Kept rows stay in
    their original order. Without ``similarity_column`` but with ``chosen_embedding`` and
    ``rejected_embedding``, the similarity is computed with :class:`PairSimilarity` first (and kept).
    """
    name = resolve_strategy(strategy, ("dissimilar", "similar", "random"))
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= 1:
        raise ConfigError(f"budget must be a fraction in (0, 1] of the pairs to keep, got {budget!r}")
    if similarity_column not in dataset.column_names:
        embeddings = ["chosen_embedding", "rejected_embedding"]
        if all(c in dataset.column_names for c in embeddings):
            scorer = PairSimilarity(*embeddings, output_column=similarity_column)
            dataset = dataset.map(scorer, batched=True, desc="Pair similarity")
        else:
            raise ColumnError.missing(
                similarity_column,
                dataset.column_names,
                hint="add it with PairSimilarity, or embed chosen and rejected into chosen_embedding and"
                " rejected_embedding",
            )
    sims = read_similarities(dataset, similarity_column)
    n = len(sims)
    k = round(budget * n)
    kept = np.sort(rank_pairs(sims, k, name, seed))
    mask = np.zeros(n, dtype=bool)
    mask[kept] = True
    if k == 0 and n:
        logger.warning("budget %s of %d pairs keeps none (round(%s))", budget, n, budget * n)
    report = BudgetReport(
        strategy=name,
        budget=float(budget),
        pairs_in=n,
        pairs_kept=k,
        kept_similarity=summarize(sims[mask], fields=_FIELDS, digits=None) or None,
        dropped_similarity=summarize(sims[~mask], fields=_FIELDS, digits=None) or None,
        seed=seed,
    )
    return dataset.select(kept), report


def read_similarities(dataset: Dataset, column: str) -> np.ndarray:
    """The ``column`` of ``dataset`` as float64, each value checked: a finite number (a bad row is named)."""
    values = dataset.with_format("arrow")[column]
    if values.null_count:
        raise arrow_null_row(as_arrow(values), column, range(len(values)), "a similarity")
    if pa.types.is_floating(values.type) or pa.types.is_integer(values.type):
        sims = values.to_numpy().astype(np.float64)
    else:  # e.g. a Json column (mixed types): decoded, each value checked, naming its row
        decoded = python_column(dataset.select_columns([column]).with_format("arrow")[:], column)
        what = "a similarity (a number)"
        sims = np.array(
            [check_number(v, row=i, column=column, what=what) for i, v in enumerate(decoded)],
            dtype=np.float64,
        )
    first = first_non_finite(sims)
    if first is not None:
        raise RowError(f"expected a finite similarity, found {sims[first]}", row=first, column=column)
    return sims


def rank_pairs(scores: np.ndarray, k: int, strategy: str, seed: int = 0) -> np.ndarray:
    """Indices of the ``k`` pairs a strategy keeps, in the order it ranks them (the budget's one selection).

    ``dissimilar`` takes the lowest ``scores``, ``similar`` the highest (ties by index), ``random`` a sample
    drawn with ``numpy.random.default_rng(seed)``.
    """
    n = len(scores)
    if strategy == "random":
        return np.random.default_rng(seed).choice(n, size=k, replace=False)
    return np.argsort(scores if strategy == "dissimilar" else -scores, kind="stable")[:k]


__all__ = ["BudgetReport", "budget_filter"]
