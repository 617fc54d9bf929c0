"""REAL pair selection: cosine similarity of responses, pair selection per prompt, budget filtering.

Everything numeric is vectorised with numpy over a batch: rows with the same number of distinct
responses are stacked into one ``[rows, n, d]`` array and share one batched Gram matrix. Columns are
read straight from Arrow when ``datasets`` hands over an unformatted (lazy) batch, so the embeddings
are never turned into Python floats.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from datasets import Dataset, Features, Value

from ..arrays import (
    column_names,
    finite_number_lists,
    normalise_rows,
    pair_matrix,
    python_column,
    ragged_vectors,
    raw_column,
)
from ..errors import ColumnError, ConfigError, RowError
from ..mapping import map_and_count
from ..processor import EmittedRows, Processor
from ..schema import (
    CANDIDATE_SIMILARITY,
    CHOSEN,
    FEWER_THAN_TWO_RESPONSES,
    PROMPT,
    REJECTED,
    SELECTED_PAIR_COLUMNS,
    SIMILARITY,
    SINGLE_CLUSTER,
    STRATEGY,
    TIED_SCORES,
    passthrough_features,
    passthrough_values,
    selected_pair_features,
)
from ..seeding import random_priorities, row_key
from ..validate import check_list, check_number, check_prompt, check_text_list, require_columns, row_label

logger = logging.getLogger(__name__)

STRATEGIES = ("dissimilar", "similar", "random", "centroid")
ALIASES = {"easy": "dissimilar", "hard": "similar"}
MAX_KMEANS_ITERATIONS = 20
SKIP_HINT = "select_pairs() returns a report of every skip, or map with SelectPairs(..., keep_skipped=True)"


def resolve_strategy(strategy: str, valid: Sequence[str] = STRATEGIES) -> str:
    """The canonical strategy name (``easy``/``hard`` are REAL's names); ConfigError if unknown."""
    name = ALIASES.get(strategy, strategy) if isinstance(strategy, str) else strategy
    if name not in valid:
        aliases = ", ".join(f"{a!r} (= {c!r})" for a, c in ALIASES.items() if c in valid)
        raise ConfigError(
            f"unknown strategy {strategy!r}: expected one of {', '.join(map(repr, valid))}"
            + (f", or the paper's names {aliases}" if aliases else "")
        )
    return name


# ----------------------------------------------------------------------------------------------
# PairSimilarity


class PairSimilarity(Processor):
    """Cosine similarity between the chosen and the rejected embedding of each pair row.

    Args:
        chosen_column: Column holding one embedding (list of floats) per row.
        rejected_column: Column holding the other embedding.
        output_column: Name of the new float column.
    """

    def __init__(
        self,
        chosen_column: str = "chosen_embedding",
        rejected_column: str = "rejected_embedding",
        output_column: str = "similarity",
    ) -> None:
        self.chosen_column = chosen_column
        self.rejected_column = rejected_column
        self.output_column = output_column

    def process(self, batch: dict[str, list], indices: list[int] | None = None) -> dict[str, list]:
        """Return ``{output_column: cosine per row}`` (float64 values computed in float32)."""
        require_columns(
            column_names(batch),
            [self.chosen_column, self.rejected_column],
            hint="embed the pairs first, e.g. with EmbedResponses",
        )
        sides = []
        for name in (self.chosen_column, self.rejected_column):
            matrix = pair_matrix(raw_column(batch, name), name, indices)
            sides.append(normalise_rows(matrix, name, np.arange(len(matrix)), indices))
        chosen, rejected = sides
        if chosen.shape[0] and chosen.shape != rejected.shape:
            raise ColumnError(
                f"columns {self.chosen_column!r} and {self.rejected_column!r}: expected embeddings of one"
                f" size, found {chosen.shape[1]} and {rejected.shape[1]}; embed both with one model"
            )
        return {self.output_column: np.einsum("ij,ij->i", chosen, rejected).astype(np.float64)}

    def output_features(self, input_features: Features | None = None) -> Features:
        """Features of the new column, for ``dataset.map(..., features=...)`` (the input's do not matter)."""
        return Features({self.output_column: Value("float64")})


# ----------------------------------------------------------------------------------------------
# SelectPairs: vectorised strategies over a [rows, n, d] group


def _two_means(x: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Lloyd's 2-means on each row of ``x [R, n, d]`` from centres ``x[p]``, ``x[q]``.

    Euclidean distance; a point equidistant from both centres joins cluster 0 (the one started at
    ``p``); an emptied cluster keeps its centre. Stops when no assignment changes, after at most
    ``MAX_KMEANS_ITERATIONS`` updates. Rows that have converged are fixed points, so iterating a
    whole group together gives each row its own result. Returns the labels ``[R, n]``.
    """
    rows = np.arange(len(x))
    centres = np.stack([x[rows, p], x[rows, q]], axis=1)
    sq = np.einsum("rnd,rnd->rn", x, x)

    def assign(c: np.ndarray) -> np.ndarray:
        dist = (
            sq[:, :, None] - 2 * np.matmul(x, c.transpose(0, 2, 1)) + np.einsum("rkd,rkd->rk", c, c)[:, None]
        )
        return (dist[:, :, 1] < dist[:, :, 0]).astype(np.int64)

    labels = assign(centres)
    for _ in range(MAX_KMEANS_ITERATIONS):
        onehot = np.stack([labels == 0, labels == 1], axis=2).astype(x.dtype)
        sizes = onehot.sum(axis=1)[:, :, None]
        centres = np.where(sizes > 0, np.matmul(onehot.transpose(0, 2, 1), x) / np.maximum(sizes, 1), centres)
        new = assign(centres)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def _first_identical(x: np.ndarray, gram: np.ndarray) -> np.ndarray | None:
    """For each point, the lowest index holding a bit-identical embedding, ``[R, n]``; None if none do."""
    r, i, j = np.nonzero(np.triu(gram > 0.999, 1))  # candidates, checked exactly
    identical = (x[r, i] == x[r, j]).all(axis=1)
    if not identical.any():
        return None
    first = np.broadcast_to(np.arange(x.shape[1]), x.shape[:2]).copy()
    np.minimum.at(first, (r[identical], j[identical]), i[identical])
    return first


def _canonical_gram(gram: np.ndarray, first: np.ndarray | None) -> np.ndarray:
    """The Gram matrix read from its upper triangle at each point's first identical copy.

    Identical embeddings then have exactly equal similarities to everything else, whatever order
    the matrix product summed in, so their ties are broken by index as documented.
    """
    if first is None:
        return gram
    lo = np.minimum(first[:, :, None], first[:, None, :])
    hi = np.maximum(first[:, :, None], first[:, None, :])
    return gram[np.arange(len(gram))[:, None, None], lo, hi]


def _closeness(gram: np.ndarray, labels: np.ndarray, first: np.ndarray | None) -> np.ndarray:
    """Sum of cosines of each point to the other members of its cluster, ``[R, n]``.

    For unit vectors, ranking by it (descending) is ranking by distance to the cluster's mean
    (ascending). It is computed so that mathematically equal distances are exactly equal: the Gram
    matrix is made exactly symmetric (so the two members of a 2-member cluster tie), and points with
    identical embeddings share the value of the first of them.
    """
    upper = np.triu(gram, 1)
    same = labels[:, :, None] == labels[:, None, :]
    close = np.where(same, upper + upper.transpose(0, 2, 1), 0).sum(axis=2)
    return close if first is None else np.take_along_axis(close, first, axis=1)


def _centroid_picks(
    x: np.ndarray, gram: np.ndarray, sims: np.ndarray, k: int, first: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroid pairs of each row: (a ``[R, k]``, b ``[R, k]``, valid ``[R, k]``), local indices."""
    n = x.shape[1]
    iu, ju = np.triu_indices(n, 1)
    init = np.argmin(sims, axis=1)  # the first most dissimilar pair: lowest (i, j) on ties
    p, q = iu[init], ju[init]
    labels = _two_means(x, p, q)
    in_a = labels == labels[np.arange(len(x)), p][:, None]  # cluster A holds p, the lower-index init member
    close = _closeness(gram, labels, first)
    # nearest first, ties by index (stable sort)
    a = np.argsort(np.where(in_a, -close, np.inf), axis=1, kind="stable")[:, :k]
    b = np.argsort(np.where(in_a, np.inf, -close), axis=1, kind="stable")[:, :k]
    size_a = in_a.sum(axis=1)[:, None]
    rank = np.arange(min(k, n))[None, :]
    valid = (rank < size_a) & (rank < n - size_a)
    return a, b, valid


@dataclass
class _Row:
    """One input row after validation: distinct responses and their original positions."""

    prompt: Any
    responses: list[str]
    scores: list[float] | None
    keep: list[int]
    slots: list[int]
    """For each response, its position in ``keep`` (a repeated text counts as its first copy)."""
    picks: list[tuple[int, int, float]] = field(default_factory=list)
    skip: str | None = None
    similarity: np.ndarray | None = None
    """Cosine of every two responses, ``[len(responses)] * 2`` float32."""


class SelectPairs(Processor):
    """Build preference pairs from candidates rows by REAL's embedding similarity.

    Args:
        strategy: ``dissimilar`` (REAL's ``easy``: lowest cosine), ``similar`` (``hard``: highest),
            ``random`` (seeded per row), or ``centroid`` (2-means, members nearest each centre).
        pairs_per_prompt: How many pairs to select per prompt (fewer when fewer exist).
        embedding_column: Column with one embedding per response.
        responses_column: Column with the candidate responses (list of strings).
        scores_column: Optional column with a score per response; orients each pair (higher = chosen).
        seed: Seed of the ``random`` strategy.
        keep_skipped: Also emit one row per skipped item, with its ``skip_reason``.

    Each output row also carries ``candidate_similarity``: the cosine of every two of its prompt's
    candidates (``n x n`` float32, a repeated text counting as its first copy), so that a saved or pushed
    set still shows how its pair stands among the prompt's candidates (the Space's heatmap).
    """

    adds_columns = False

    def __init__(
        self,
        strategy: str = "dissimilar",
        *,
        pairs_per_prompt: int = 1,
        embedding_column: str = "responses_embedding",
        responses_column: str = "responses",
        scores_column: str = "scores",
        seed: int = 0,
        keep_skipped: bool = False,
    ) -> None:
        if (
            isinstance(pairs_per_prompt, bool)
            or not isinstance(pairs_per_prompt, int)
            or pairs_per_prompt < 1
        ):
            raise ConfigError(f"pairs_per_prompt must be a positive integer, got {pairs_per_prompt!r}")
        self.strategy = resolve_strategy(strategy)
        self.pairs_per_prompt = pairs_per_prompt
        self.embedding_column = embedding_column
        self.responses_column = responses_column
        self.scores_column = scores_column
        self.seed = int(seed)
        self.keep_skipped = bool(keep_skipped)

    def _consumed(self) -> set[str]:
        return {"prompt", self.responses_column, self.scores_column, self.embedding_column}

    def _read_rows(self, batch: Any, indices: Sequence[int] | None) -> list[_Row]:
        prompts = python_column(batch, "prompt")
        responses = python_column(batch, self.responses_column)
        has_scores = self.scores_column in column_names(batch)
        scores = python_column(batch, self.scores_column) if has_scores else [None] * len(prompts)
        scores_ok = has_scores and finite_number_lists(raw_column(batch, self.scores_column))
        rows = []
        for i, (prompt, texts, row_scores) in enumerate(zip(prompts, responses, scores, strict=True)):
            label = row_label(i, indices)
            prompt = check_prompt(prompt, row=label)
            texts = check_text_list(texts, row=label, column=self.responses_column)
            if row_scores is not None:
                if not scores_ok:
                    row_scores = check_list(
                        row_scores, row=label, column=self.scores_column, what="a list of scores"
                    )
                    for j, s in enumerate(row_scores):
                        check_number(s, row=label, column=f"{self.scores_column}[{j}]")
                if len(row_scores) != len(texts):
                    raise RowError(
                        f"expected one score per response ({len(texts)}), found {len(row_scores)} scores",
                        row=label,
                        column=self.scores_column,
                    )
            first: dict[str, int] = {}
            for j, text in enumerate(texts):
                first.setdefault(text, j)
            keep = list(first.values())
            slot = {j: s for s, j in enumerate(keep)}
            rows.append(_Row(prompt, texts, row_scores, keep, [slot[first[t]] for t in texts]))
        return rows

    def _select_group(self, x: np.ndarray, group: list[_Row]) -> None:
        """Fill ``picks`` of rows that all have ``n`` distinct responses (``x``: ``[R, n, d]``, unit rows)."""
        n = x.shape[1]
        k = self.pairs_per_prompt
        gram = np.matmul(x, x.transpose(0, 2, 1))
        first = _first_identical(x, gram)
        gram = _canonical_gram(gram, first)
        iu, ju = np.triu_indices(n, 1)
        sims = gram[:, iu, ju]  # [R, P], pairs in (i, j) ascending order
        for r, row in enumerate(group):
            slots = np.asarray(row.slots)
            row.similarity = gram[r] if len(slots) == n else gram[r][slots[:, None], slots[None, :]]
        if self.strategy == "centroid":
            a, b, valid = _centroid_picks(x, gram, sims, k, first)
            for r, row in enumerate(group):
                pairs = [
                    (min(i, j), max(i, j))
                    for i, j in zip(a[r][valid[r]].tolist(), b[r][valid[r]].tolist(), strict=True)
                ]
                row.picks = [(i, j, float(gram[r, i, j])) for i, j in pairs]
                if not pairs:
                    row.skip = SINGLE_CLUSTER
            return
        if self.strategy == "random":
            keys = np.fromiter(
                (row_key(self.seed, r.prompt, r.responses) for r in group), np.uint64, len(group)
            )
            order = np.argsort(random_priorities(keys, len(iu)), axis=1, kind="stable")
        elif self.strategy == "similar":
            order = np.argsort(-sims, axis=1, kind="stable")
        else:
            order = np.argsort(sims, axis=1, kind="stable")
        order = order[:, :k]
        pick_i, pick_j = iu[order].tolist(), ju[order].tolist()
        pick_s = np.take_along_axis(sims, order, axis=1).tolist()
        for r, row in enumerate(group):
            row.picks = list(zip(pick_i[r], pick_j[r], pick_s[r], strict=True))

    def check_columns(self, present: Sequence[str]) -> None:
        """Refuse data without candidates and their embeddings, saying what to do instead."""
        wanted = ["prompt", self.responses_column, self.embedding_column]
        if all(c in present for c in wanted):
            return
        if self.responses_column not in present and {"chosen", "rejected"} <= set(present):
            hint = (
                "these are pairs (chosen/rejected), not a prompt's candidates: score them with "
                "PairSimilarity and keep the most dissimilar share with budget_filter(pairs, budget)"
            )
        elif self.responses_column in present:
            hint = "embed the candidates first, e.g. with EmbedResponses"
        else:
            hint = "SelectPairs takes candidates (prompt, responses): convert the source with to_candidates"
        require_columns(present, wanted, hint=hint)

    def process(self, batch: dict[str, list], indices: list[int] | None = None) -> dict[str, list]:
        """Return the new pair rows (one per selected pair; plus skipped items with ``keep_skipped``)."""
        names = column_names(batch)
        self.check_columns(names)
        rows = self._read_rows(batch, indices)
        flat, counts = ragged_vectors(
            raw_column(batch, self.embedding_column), self.embedding_column, indices
        )
        for i, (row, count) in enumerate(zip(rows, counts.tolist(), strict=True)):
            if count != len(row.responses):
                raise RowError(
                    f"expected one embedding per response ({len(row.responses)}), found {count}",
                    row=row_label(i, indices),
                    column=self.embedding_column,
                )
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        groups: dict[int, list[int]] = {}
        for i, row in enumerate(rows):
            if len(row.keep) < 2:
                row.skip = FEWER_THAN_TWO_RESPONSES
            else:
                groups.setdefault(len(row.keep), []).append(i)
        for n, members in groups.items():
            where = starts[members][:, None] + np.array([rows[i].keep for i in members], dtype=np.int64)
            owner = np.repeat(np.asarray(members), n)
            x = normalise_rows(flat[where.ravel()], self.embedding_column, owner, indices).reshape(
                len(members), n, -1
            )
            self._select_group(x, [rows[i] for i in members])
        return self._assemble(batch, rows)

    def _assemble(self, batch: Any, rows: list[_Row]) -> dict[str, list]:
        """Orient the picks and lay the output rows out column by column."""
        carried = passthrough_values(batch, self._consumed(), SELECTED_PAIR_COLUMNS)
        out = EmittedRows(SELECTED_PAIR_COLUMNS, carried, keep_skipped=self.keep_skipped)
        for r, row in enumerate(rows):
            if row.similarity is None:  # fewer than two distinct texts: every copy is the same text
                row.similarity = np.ones((len(row.responses),) * 2, dtype=np.float32)
            kept_values = {PROMPT: row.prompt, STRATEGY: self.strategy, CANDIDATE_SIMILARITY: row.similarity}
            if row.skip is not None and not row.picks:
                out.skip(r, row.skip, kept_values)
                continue
            for i, j, sim in row.picks:
                a, b = row.keep[i], row.keep[j]
                if row.scores is not None:
                    if row.scores[a] == row.scores[b]:
                        out.skip(r, TIED_SCORES, kept_values)
                        continue
                    if row.scores[b] > row.scores[a]:
                        a, b = b, a
                    score_a, score_b = float(row.scores[a]), float(row.scores[b])
                else:
                    score_a = score_b = None
                values = {
                    **kept_values,
                    CHOSEN: row.responses[a],
                    REJECTED: row.responses[b],
                    SIMILARITY: sim,
                    "chosen_score": score_a,
                    "rejected_score": score_b,
                    "chosen_index": a,
                    "rejected_index": b,
                }
                out.emit(r, values)
        columns = out.finish("SelectPairs", len(rows), processor=self, hint=SKIP_HINT)
        # One [rows, n, n] array when every prompt of the batch has n candidates: datasets stores it
        # without a Python loop; a mixed batch stays a list of matrices.
        matrices = columns[CANDIDATE_SIMILARITY]
        if len({m.shape for m in matrices}) == 1:
            columns[CANDIDATE_SIMILARITY] = np.stack(matrices).astype(np.float32, copy=False)
        return columns

    def output_features(self, input_features: Features | None = None) -> Features:
        """Features of the output rows; pass the input dataset's features to type ``prompt`` and passthroughs.

        Use it as ``ds.map(sp, batched=True, remove_columns=ds.column_names,
        features=sp.output_features(ds.features))`` so that a batch of only ``None`` scores cannot
        fix a column's type.
        """
        given = input_features or Features()
        features = selected_pair_features(given.get(PROMPT))
        return passthrough_features(features, given, self._consumed(), self.keep_skipped)


# ----------------------------------------------------------------------------------------------
# Dataset-level functions


@dataclass
class SelectionReport:
    """What :func:`select_pairs` did: prompts in, pairs out, and skipped items by reason."""

    strategy: str
    prompts_in: int
    pairs_out: int
    skipped: dict[str, int] = field(default_factory=dict)
    pairs_per_prompt: int = 1
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return asdict(self)


def select_pairs(
    dataset: Dataset,
    strategy: str = "dissimilar",
    *,
    batch_size: int = 1000,
    num_proc: int | None = None,
    **options: Any,
) -> tuple[Dataset, SelectionReport]:
    """Select pairs from a candidates dataset and count what was skipped, robustly under caching.

    Args:
        dataset: Candidates rows with an embedding column.
        strategy: See :class:`SelectPairs`.
        batch_size: Rows per ``map`` batch.
        num_proc: Worker processes for ``map``.
        **options: Other :class:`SelectPairs` options (``pairs_per_prompt``, ``seed``, column names).

    Returns:
        The pairs dataset and a :class:`SelectionReport`.
    """
    options.pop("keep_skipped", None)
    processor = SelectPairs(strategy, keep_skipped=True, **options)
    processor.check_columns(dataset.column_names)
    features = processor.output_features(dataset.features)
    pairs, skipped = map_and_count(
        dataset,
        processor,
        features=features,
        batch_size=batch_size,
        num_proc=num_proc,
        desc=f"Selecting pairs ({processor.strategy})",
    )
    report = SelectionReport(
        strategy=processor.strategy,
        prompts_in=len(dataset),
        pairs_out=len(pairs),
        skipped=skipped,
        pairs_per_prompt=processor.pairs_per_prompt,
        seed=processor.seed,
    )
    logger.info(
        "Selected %d pairs from %d prompts (%s); skipped %s", len(pairs), len(dataset), strategy, skipped
    )
    return pairs, report


__all__ = [
    "ALIASES",
    "STRATEGIES",
    "PairSimilarity",
    "SelectPairs",
    "SelectionReport",
    "select_pairs",
]
