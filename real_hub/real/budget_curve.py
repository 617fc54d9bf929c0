"""How much annotation does a selection save? :func:`budget_curve` measures it on labelled pairs.

For each of ``splits`` seeded 50/50 splits *by prompt* (no prompt in both halves), each strategy keeps its
``budget`` share of the training half with :func:`~real_hub.budget_filter`'s selection
(:func:`~real_hub.real.budget.rank_pairs`), a linear Bradley-Terry reward is fit on what was kept
(:func:`~real_hub.real.learner.fit_reward`) and scored on the whole held-out half: the share of pairs
whose chosen response gets the higher reward. All numbers are paired: every strategy and budget of a split
is scored on the same held-out half.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from datasets import Dataset

from ..errors import ConfigError
from ..progress import progress_enabled
from ..schema import PROMPT
from .budget import rank_pairs
from .learner import PAIR_EMBEDDING_COLUMNS, PairFeatures, agrees, fit_reward, pair_features
from .select import resolve_strategy

logger = logging.getLogger(__name__)

#: Strategies :func:`budget_curve` measures: REAL's three, and two margin rules of later papers.
CURVE_STRATEGIES = ("dissimilar", "similar", "random", "margin_high", "margin_low")
MARGIN_STRATEGIES = ("margin_high", "margin_low")
INTERVAL_METHODS = ("corrected", "t")
ALL = "all"


class Estimate(NamedTuple):
    """A mean and its interval (a plain ``(mean, low, high)`` tuple)."""

    mean: float
    low: float
    high: float


@dataclass
class BudgetCurve:
    """Held-out accuracy of a linear Bradley-Terry reward trained on each strategy's share of the pairs.

    ``scores[strategy][b][s]`` is the accuracy at ``budgets[b]`` on split ``s``; ``reference[s]`` the
    accuracy of all the training half's pairs (strategy ``"all"``, any budget).

    **Intervals** (``interval_method``). Splits overlap: each pair is in the training half of about half of
    them, so the split accuracies are correlated and a plain t-interval over splits is too narrow for what
    the data can tell (it measures only the noise of the split draw). The default, ``"corrected"``, is
    the corrected resampled t-interval of Nadeau and Bengio (2003): the variance over splits ``s^2 / S`` is
    replaced by ``s^2 (1/S + n_test/n_train)``, with ``S - 1`` degrees of freedom; it is approximate (the
    correction is a heuristic for the overlap). ``"t"`` is the plain t-interval over splits. Differences
    use the same interval on the per-split differences (paired: same splits, same held-out halves).
    :meth:`saved` reads its interval off those of :meth:`difference` (see there).
    """

    strategies: tuple[str, ...]
    budgets: tuple[float, ...]
    splits: int
    seed: int
    scores: dict[str, list[list[float]]]
    reference: list[float]
    train_pairs: list[int]
    test_pairs: list[int]
    pairs: int
    prompts: int
    kept_similarity: dict[str, list[float]] = field(default_factory=dict)
    """Mean similarity of the kept pairs at each budget (mean over splits)."""
    C: float = 1.0  # noqa: N815
    unit_differences: bool = False
    margin_seed: float = 0.05
    interval_method: str = "corrected"
    confidence: float = 0.95
    embedding_columns: tuple[str, ...] = PAIR_EMBEDDING_COLUMNS
    similarity: str = "cosine of the embeddings"
    """Where the similarities came from: a column name, or the cosine of the embeddings."""

    # -- reading -------------------------------------------------------------------------------------
    def _budget_index(self, budget: float) -> int:
        for i, b in enumerate(self.budgets):
            if math.isclose(b, budget, abs_tol=1e-9):
                return i
        measured = ", ".join(f"{b:g}" for b in self.budgets)
        raise ConfigError(f"budget {budget!r} was not measured: expected one of {measured}")

    def values(self, strategy: str, budget: float) -> np.ndarray:
        """The accuracy of ``strategy`` at ``budget`` on each split (``"all"``: all pairs, any budget)."""
        if strategy == ALL:
            return np.asarray(self.reference, dtype=np.float64)
        name = resolve_strategy(strategy, self.strategies) if strategy not in self.strategies else strategy
        return np.asarray(self.scores[name][self._budget_index(budget)], dtype=np.float64)

    def accuracy(self, strategy: str, budget: float) -> float:
        """Mean held-out accuracy over splits."""
        return float(self.values(strategy, budget).mean())

    def interval(self, strategy: str, budget: float) -> tuple[float, float]:
        """The interval of :meth:`accuracy` (``confidence``, by ``interval_method``)."""
        est = self._estimate(self.values(strategy, budget))
        return est.low, est.high

    def difference(self, a: str, b: str, budget: float) -> Estimate:
        """Accuracy of ``a`` minus ``b`` at ``budget``, paired over the same splits and held-out halves."""
        return self._estimate(self.values(a, budget) - self.values(b, budget))

    def saved(self, strategy: str, tolerance: float = 0.01) -> Estimate:
        """The largest share of annotation saved while accuracy stays within ``tolerance`` of all pairs.

        On the grid of measured budgets: ``1 - b`` for the smallest budget ``b`` such that at ``b`` and
        every larger budget the paired difference to all pairs is at least ``-tolerance``. The point uses
        the mean difference; ``low`` the lower end of its interval (confidently within tolerance), ``high``
        the upper end (not confidently outside it). Budget 1 is all pairs: always within.
        """
        if not tolerance >= 0:
            raise ConfigError(f"tolerance must be a non-negative accuracy difference, got {tolerance!r}")
        diffs = [self.difference(strategy, ALL, b) for b in self.budgets]
        order = np.argsort(self.budgets)[::-1]  # largest budget first

        def smallest(which: int) -> float:
            best = 1.0
            for i in order:
                if diffs[i][which] < -tolerance - 1e-12:
                    break
                best = self.budgets[i]
            return 1.0 - best

        return Estimate(smallest(0), smallest(1), smallest(2))

    def _estimate(self, values: np.ndarray) -> Estimate:
        from scipy.stats import t

        n = len(values)
        mean = float(values.mean())
        sd = float(values.std(ddof=1))
        ratio = float(np.mean(self.test_pairs) / np.mean(self.train_pairs))
        factor = 1.0 / n + (ratio if self.interval_method == "corrected" else 0.0)
        half = float(t.ppf(0.5 + self.confidence / 2, n - 1)) * sd * math.sqrt(factor)
        return Estimate(mean, mean - half, mean + half)

    # -- writing -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (:meth:`from_dict` reads it back), with the summary figures beside."""
        data = asdict(self)
        data["summary"] = {
            "all": {"accuracy": self.accuracy(ALL, 1.0), "interval": list(self.interval(ALL, 1.0))},
            **{
                s: {
                    "accuracy": [self.accuracy(s, b) for b in self.budgets],
                    "interval": [list(self.interval(s, b)) for b in self.budgets],
                    "saved_within_1_point": list(self.saved(s, 0.01)),
                }
                for s in self.strategies
            },
        }
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BudgetCurve:
        """Inverse of :meth:`to_dict` (the summary is recomputed, not read)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("strategies", "budgets", "embedding_columns"):
            known[key] = tuple(known[key])
        return cls(**known)

    @classmethod
    def load(cls, path: str | Path) -> BudgetCurve:
        """Read a ``budget_curve.json`` written by :meth:`save`."""
        import json

        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"cannot read a budget curve from {path}: {err}") from err

    def to_markdown(self, *, tolerance: float = 0.01) -> str:
        """The tables: accuracy per budget and strategy, differences against random, annotation saved."""
        from .budget_curve_report import curve_markdown

        return curve_markdown(self, tolerance=tolerance)

    def plot(self, path: str | Path, *, title: str | None = None) -> Path:
        """Accuracy against budget, one line per strategy with its interval band, saved as an image."""
        from .budget_curve_report import plot_curve

        return plot_curve(self, path, title=title)

    def save(self, folder: str | Path, *, plot: bool = True) -> dict[str, Path]:
        """Write ``budget_curve.json``, ``.md`` and (``plot``) ``.png`` into ``folder``, atomically."""
        from .budget_curve_report import save_curve

        return save_curve(self, folder, plot=plot)

    def card_summary(self, strategy: str = "dissimilar", budget: float | None = None) -> dict[str, str]:
        """Lines a dataset card can cite: the method, all pairs, ``strategy`` at ``budget``, the saving."""
        from .budget_curve_report import card_summary

        return card_summary(self, strategy, budget)


def _check(
    strategies: Sequence[str], budgets: Sequence[float], splits: int, margin_seed: float, interval: str
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    if isinstance(strategies, str):
        strategies = (strategies,)
    names = tuple(dict.fromkeys(resolve_strategy(s, CURVE_STRATEGIES) for s in strategies))
    if not names:
        raise ConfigError("strategies is empty: expected at least one of " + ", ".join(CURVE_STRATEGIES))
    values = []
    for b in budgets:
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 < b <= 1:
            raise ConfigError(f"budgets must be fractions in (0, 1] of the training pairs, got {b!r}")
        values.append(float(b))
    if not values:
        raise ConfigError("budgets is empty: expected fractions in (0, 1], e.g. (0.1, 0.25, 0.5, 0.75, 1.0)")
    if isinstance(splits, bool) or not isinstance(splits, int) or splits < 2:
        raise ConfigError(f"splits must be an integer of at least 2 (intervals need two), got {splits!r}")
    if not 0 < margin_seed < 1:
        raise ConfigError(
            f"margin_seed must be a fraction in (0, 1) of the training half, got {margin_seed!r}"
        )
    if interval not in INTERVAL_METHODS:
        raise ConfigError(f"interval_method must be one of {INTERVAL_METHODS}, got {interval!r}")
    return names, tuple(sorted(set(values)))


def _split(groups: np.ndarray, n_groups: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out pair indices: a seeded half of the prompts is held out."""
    held_out = rng.permutation(n_groups)[: n_groups // 2]
    mask = np.zeros(n_groups, dtype=bool)
    mask[held_out] = True
    test = mask[groups]
    return np.flatnonzero(~test), np.flatnonzero(test)


def _keep(
    strategy: str,
    k: int,
    sims: np.ndarray,
    seed: int,
    margins: np.ndarray | None,
    seed_part: np.ndarray | None,
) -> np.ndarray:
    """Training-half indices a strategy keeps at ``k`` pairs (margin rules: the seed part, then by margin)."""
    if strategy not in MARGIN_STRATEGIES:
        return rank_pairs(sims, k, strategy, seed)
    assert margins is not None and seed_part is not None
    if k <= len(seed_part):
        return seed_part[:k]
    rest = np.setdiff1d(np.arange(len(sims)), seed_part)
    order = "similar" if strategy == "margin_high" else "dissimilar"  # highest first / lowest first
    return np.concatenate([seed_part, rest[rank_pairs(margins[rest], k - len(seed_part), order)]])


def budget_curve(
    pairs: Dataset,
    *,
    strategies: Sequence[str] = ("dissimilar", "random", "similar"),
    budgets: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 1.0),
    splits: int = 20,
    seed: int = 0,
    embedding_columns: Sequence[str] = PAIR_EMBEDDING_COLUMNS,
    similarity_column: str = "similarity",
    group_column: str | None = PROMPT,
    C: float = 1.0,  # noqa: N803
    unit_differences: bool = False,
    margin_seed: float = 0.05,
    interval_method: str = "corrected",
    confidence: float = 0.95,
    show_progress: bool | None = None,
) -> BudgetCurve:
    """Held-out accuracy of a preference learner trained on each strategy's share of labelled pairs.

    ``pairs`` hold the human label (``chosen`` is the preferred response) and the embeddings of both
    responses, ``chosen_embedding`` and ``rejected_embedding`` as :class:`~real_hub.EmbedResponses` writes
    them (or ``embedding_columns``); their cosine is the similarity unless ``similarity_column`` is present.
    Pairs are split ``splits`` times, 50/50 by prompt (``group_column``), each split seeded by ``(seed,
    split)``. Each strategy keeps ``round(budget * n)`` of the ``n`` training pairs, and a linear
    Bradley-Terry reward (logistic regression on chosen minus rejected, both orientations, no intercept,
    L2 with ``C``; see :func:`~real_hub.real.learner.fit_reward`) is fit on them and scored on the
    held-out half. Same inputs and ``seed``: the same numbers.

    Strategies: ``dissimilar``, ``similar`` and ``random`` select as :func:`~real_hub.budget_filter` does.
    ``margin_high`` (keep the largest reward margin, arXiv 2502.14560) and ``margin_low`` (the smallest,
    arXiv 2508.04149) rank pairs by ``w . (e(chosen) - e(rejected))`` of a reward fit on a random *seed
    part* (``margin_seed`` of the training half) and never on the pairs it ranks. The seed part is
    annotated, so it counts toward the budget: the kept set is the seed part plus the best-ranked of the
    other pairs up to ``round(budget * n)`` (below the seed part's size, a share of the seed part alone,
    which is then a random selection). The margin is signed, as in the papers: these rules read the labels
    of the pairs they rank, so they choose which annotated pairs to train on rather than which to annotate.

    Args:
        pairs: Labelled pairs with both embeddings and a prompt column.
        strategies: Any of :data:`CURVE_STRATEGIES` (REAL's ``easy``/``hard`` are accepted).
        budgets: Shares of the training half to keep, in (0, 1].
        splits: Prompt-grouped 50/50 splits (at least 2).
        seed: Seed of the splits, the random strategy and the margin rules' seed parts.
        embedding_columns: The chosen and the rejected embedding column.
        similarity_column: Used when present, else the cosine of the embeddings.
        group_column: The prompt column (``None``: each pair its own prompt).
        C: Inverse L2 strength of the learner.
        unit_differences: Fit on unit-length differences (each pair weighs the same): a control for the
            mechanical effect that similar pairs have small differences.
        margin_seed: Share of the training half the margin rules' reward is fit on.
        interval_method: ``"corrected"`` (Nadeau-Bengio, default) or ``"t"``; see :class:`BudgetCurve`.
        confidence: Coverage of the intervals.
        show_progress: A progress bar over splits (default: on at INFO; ``REAL_HUB_DISABLE_PROGRESS_BARS=1``
            turns it off).

    Raises:
        ColumnError: an embedding column (named) or the prompt column is absent.
        ConfigError: an option out of range, fewer than two prompts, or a budget that keeps no pair.
    """
    names, grid = _check(strategies, budgets, splits, margin_seed, interval_method)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    if not C > 0:
        raise ConfigError(f"C must be a positive inverse regularisation strength, got {C!r}")
    feats: PairFeatures = pair_features(
        pairs,
        embedding_columns=embedding_columns,
        similarity_column=similarity_column,
        group_column=group_column,
    )
    if feats.n_groups < 2:
        raise ConfigError(f"budget_curve needs pairs of at least 2 prompts to split, found {feats.n_groups}")
    from tqdm.auto import tqdm

    scores = {s: [[0.0] * splits for _ in grid] for s in names}
    kept_sims = {s: np.zeros(len(grid)) for s in names}
    reference, train_sizes, test_sizes = [], [], []
    bar = tqdm(
        range(splits), desc="Budget curve", unit="split", disable=not progress_enabled(show_progress, splits)
    )
    for s in bar:
        rng = np.random.default_rng([seed, s])
        train, test = _split(feats.groups, feats.n_groups, rng)
        random_seed = int(rng.integers(2**63))
        seed_part = rng.permutation(len(train))[: max(1, round(margin_seed * len(train)))]
        x_train, x_test = feats.difference[train], feats.difference[test]
        sims = feats.similarity[train]

        def accuracy(rows: np.ndarray, x_train: np.ndarray = x_train, x_test: np.ndarray = x_test) -> float:
            w = fit_reward(x_train[np.sort(rows)], C=C, unit_differences=unit_differences)
            return float(agrees(w, x_test).mean())

        everything = accuracy(np.arange(len(train)))
        reference.append(everything)
        train_sizes.append(len(train))
        test_sizes.append(len(test))
        margins = None
        if any(n in MARGIN_STRATEGIES for n in names):
            w_seed = fit_reward(x_train[np.sort(seed_part)], C=C, unit_differences=unit_differences)
            margins = x_train @ w_seed
        for i, b in enumerate(grid):
            k = round(b * len(train))
            if k == 0:
                raise ConfigError(
                    f"budget {b:g} keeps no pair of the {len(train)} training pairs of split {s}; "
                    "raise the budget or give more pairs"
                )
            for name in names:
                rows = _keep(name, k, sims, random_seed, margins, seed_part)
                scores[name][i][s] = everything if k == len(train) else accuracy(rows)
                kept_sims[name][i] += float(sims[rows].mean()) / splits
    similarity = similarity_column if similarity_column in pairs.column_names else "cosine of the embeddings"
    logger.info("budget curve: %d pairs, %d prompts, %d splits", len(feats), feats.n_groups, splits)
    return BudgetCurve(
        strategies=names,
        budgets=grid,
        splits=splits,
        seed=seed,
        scores=scores,
        reference=reference,
        train_pairs=train_sizes,
        test_pairs=test_sizes,
        pairs=len(feats),
        prompts=feats.n_groups,
        kept_similarity={k: [float(v) for v in arr] for k, arr in kept_sims.items()},
        C=float(C),
        unit_differences=unit_differences,
        margin_seed=float(margin_seed),
        interval_method=interval_method,
        confidence=float(confidence),
        embedding_columns=tuple(embedding_columns),
        similarity=similarity,
    )


__all__ = ["BudgetCurve", "CURVE_STRATEGIES", "Estimate", "budget_curve"]
