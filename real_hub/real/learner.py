"""The learner that measures a selection: pair features, prompt groups, a linear Bradley-Terry reward.

:func:`~real_hub.real.budget_curve.budget_curve` and :func:`~real_hub.real.agreement.agreement_by_similarity`
read a pairwise dataset once into :class:`PairFeatures` (the difference of the two responses' unit
embeddings, their cosine similarity and the prompt group of each pair), and fit :func:`fit_reward`:
logistic regression on ``e(chosen) - e(rejected)`` (label 1) and its negation (label 0), without intercept,
L2-regularised with strength ``1 / C`` (scikit-learn's ``LogisticRegression``, lbfgs). That is a
Bradley-Terry reward ``r(y) = w . e(y)`` linear in frozen response features.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from datasets import Dataset

from ..arrays import normalise_rows, pair_matrix, raw_column
from ..errors import ColumnError, ConfigError
from ..schema import PROMPT
from .budget import read_similarities

#: The embedding columns :class:`~real_hub.EmbedResponses` writes for pairs.
PAIR_EMBEDDING_COLUMNS = ("chosen_embedding", "rejected_embedding")


@dataclass
class PairFeatures:
    """What the learner reads of a pairwise dataset, one row per pair."""

    difference: np.ndarray
    """``unit(e(chosen)) - unit(e(rejected))``, ``[pairs, dim]`` float64."""
    similarity: np.ndarray
    """Cosine similarity of the two responses (the dataset's similarity column when it has one)."""
    groups: np.ndarray
    """The prompt group of each pair (``0 .. n_groups - 1``); pairs of one prompt share a group."""
    n_groups: int

    def __len__(self) -> int:
        return len(self.similarity)


def _group_key(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def pair_features(
    pairs: Dataset,
    *,
    embedding_columns: Sequence[str] = PAIR_EMBEDDING_COLUMNS,
    similarity_column: str = "similarity",
    group_column: str | None = PROMPT,
) -> PairFeatures:
    """Read the embeddings, similarities and prompt groups of ``pairs`` (all held in memory).

    Vectors are L2-normalised (a zero or non-finite vector is an error naming its row). Without
    ``similarity_column`` the cosine of the two unit vectors is used. With ``group_column=None`` every pair
    is its own group (only right when no prompt repeats).

    Raises:
        ColumnError: an embedding (or the group) column is absent, or the two embeddings differ in size.
        RowError: a row holds no vector, a vector of the wrong size, or a non-finite value.
    """
    if not isinstance(pairs, Dataset):
        raise ConfigError(f"expected a datasets.Dataset of pairs, got {type(pairs).__name__}")
    if len(embedding_columns) != 2:
        raise ConfigError(
            f"embedding_columns names the chosen and the rejected embedding column, got {embedding_columns!r}"
        )
    names = pairs.column_names
    missing = [c for c in embedding_columns if c not in names]
    if missing:
        raise ColumnError.missing(
            missing,
            names,
            hint="embed the pairs first (pairs.map(EmbedResponses(), batched=True) writes chosen_embedding "
            "and rejected_embedding), or name yours with embedding_columns=(chosen, rejected)",
        )
    if group_column is not None and group_column not in names:
        raise ColumnError.missing(
            group_column,
            names,
            hint="pairs are split by prompt, so that no prompt is in both halves; name the prompt column "
            "with group_column=, or pass group_column=None when every pair has its own prompt",
        )
    table = pairs.select_columns(list(embedding_columns)).with_format("arrow")[:]
    sides = []
    for column in embedding_columns:  # a Json column (mixed types) is decoded, each row checked
        matrix = pair_matrix(raw_column(table, column), column, range(len(pairs)))
        sides.append(normalise_rows(matrix, column, np.arange(len(matrix)), range(len(pairs))))
    chosen, rejected = sides
    if len(pairs) and chosen.shape != rejected.shape:
        raise ColumnError(
            f"columns {embedding_columns[0]!r} and {embedding_columns[1]!r}: expected embeddings of one "
            f"size, found {chosen.shape[1]} and {rejected.shape[1]}; embed both with one model"
        )
    if similarity_column in names:
        similarity = read_similarities(pairs, similarity_column)
    else:
        similarity = np.einsum("ij,ij->i", chosen, rejected).astype(np.float64)
    difference = chosen.astype(np.float64) - rejected.astype(np.float64)
    if group_column is None:
        groups = np.arange(len(pairs))
    else:
        keys = [_group_key(v) for v in pairs.with_format(None)[group_column]]
        _, groups = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
    return PairFeatures(
        difference, similarity, groups.astype(np.int64), int(groups.max() + 1) if len(groups) else 0
    )


def fit_reward(difference: np.ndarray, *, C: float = 1.0, unit_differences: bool = False) -> np.ndarray:  # noqa: N803
    """The weights ``w`` of a linear Bradley-Terry reward fit on pairs' ``chosen - rejected`` differences.

    Logistic regression without intercept on each difference (label 1) and its negation (label 0), L2
    penalty ``||w||^2 / (2 C)``; with ``unit_differences`` every difference is scaled to unit length first,
    so each pair weighs the same whatever its responses' distance.
    """
    from sklearn.linear_model import LogisticRegression

    x = difference
    if unit_differences:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms == 0, 1.0, norms)
    y = np.concatenate([np.ones(len(x)), np.zeros(len(x))])
    model = LogisticRegression(C=C, fit_intercept=False, max_iter=1000)
    model.fit(np.concatenate([x, -x]), y)
    return model.coef_[0].astype(np.float64)


def agrees(weights: np.ndarray, difference: np.ndarray) -> np.ndarray:
    """Whether the reward ranks each pair's chosen response strictly above its rejected one (a tie is not)."""
    return difference @ weights > 0
