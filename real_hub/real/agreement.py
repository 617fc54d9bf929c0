"""The label-noise view: how often a learner agrees with the human label, by pair similarity.

:func:`agreement_by_similarity` cross-fits the linear Bradley-Terry reward of
:mod:`~real_hub.real.learner` (folds by prompt: each pair is predicted by a reward fit on the other folds),
and reports, per similarity bin, the share of pairs whose human label it agrees with. REAL's claim predicts
agreement falling with similarity. Read it with the mechanical effect in mind: similar responses have
small embedding differences, so a linear reward's margin on them is small and its sign less reliable,
whatever the label quality; the mean absolute margin per bin is reported beside the agreement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
from datasets import Dataset

from ..errors import ConfigError
from ..schema import PROMPT
from .budget_curve import Estimate
from .learner import PAIR_EMBEDDING_COLUMNS, agrees, fit_reward, pair_features


@dataclass
class AgreementBin:
    """One similarity bin: its pairs, similarity range, agreement with the human label and mean margin."""

    bin: int
    pairs: int
    similarity_min: float
    similarity_mean: float
    similarity_max: float
    agreement: float
    low: float
    high: float
    mean_abs_margin: float
    """Mean ``|w . (e(chosen) - e(rejected))|`` of the cross-fitted reward: how sure the learner is."""


@dataclass
class AgreementCurve:
    """Agreement of a cross-fitted learner with the human label, by similarity bin, and its slope.

    Bin intervals are Wilson score intervals; the slope (least squares of agreement, 0 or 1 per pair, on
    similarity) has a percentile bootstrap interval over prompts (pairs of one prompt drawn together).
    """

    bins: list[AgreementBin]
    slope: Estimate
    agreement: float
    pairs: int
    prompts: int
    folds: int
    seed: int
    C: float = 1.0  # noqa: N815
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        data = asdict(self)
        data["slope"] = list(self.slope)
        return data

    def to_markdown(self) -> str:
        """The table per bin (agreement in %, with intervals) and the slope."""
        level = f"{self.confidence:.0%}"
        lines = [
            f"Agreement of the human label with a linear reward cross-fitted over {self.folds} "
            f"prompt-grouped folds (C={self.C:g}), {self.pairs} pairs: {100 * self.agreement:.1f}% overall. "
            f"Slope of agreement on similarity: {self.slope.mean:+.3f} [{self.slope.low:+.3f}, "
            f"{self.slope.high:+.3f}] per unit of cosine ({level} bootstrap over prompts).",
            "",
            f"| bin | pairs | similarity (min / mean / max) | agreement % [{level} Wilson] "
            "| mean abs margin |",
            "|---|---|---|---|---|",
        ]
        for b in self.bins:
            lines.append(
                f"| {b.bin} | {b.pairs} | {b.similarity_min:.3f} / {b.similarity_mean:.3f} / "
                f"{b.similarity_max:.3f} | {100 * b.agreement:.1f} [{100 * b.low:.1f}, {100 * b.high:.1f}] | "
                f"{b.mean_abs_margin:.3f} |"
            )
        return "\n".join(lines) + "\n"

    def plot(self, path: str | Path, *, label: str | None = None, ax: Any = None) -> Path | None:
        """Agreement (%) against the bins' mean similarity with interval bars; on ``ax`` when given."""
        from .budget_curve_report import require_matplotlib, save_figure

        plt = require_matplotlib()
        own = ax is None
        if own:
            fig, ax = plt.subplots(figsize=(6, 4))
        x = [b.similarity_mean for b in self.bins]
        y = np.array([100 * b.agreement for b in self.bins])
        err = np.array(
            [
                [100 * (b.agreement - b.low) for b in self.bins],
                [100 * (b.high - b.agreement) for b in self.bins],
            ]
        )
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
        if not own:
            return None
        ax.set_xlabel("pair cosine similarity (bin mean)")
        ax.set_ylabel("learner agrees with human label (%)")
        ax.axhline(50, color="grey", lw=0.8, ls="--")
        return save_figure(fig, path)


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    if n == 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _slope(weights: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """Least-squares slopes from per-group sums ``(n, sx, sy, sxx, sxy)`` weighted by draw counts."""
    n, sx, sy, sxx, sxy = (weights @ stats).T
    var = sxx - sx * sx / n
    return np.where(var > 0, (sxy - sx * sy / n) / np.where(var > 0, var, 1.0), 0.0)


def agreement_by_similarity(
    pairs: Dataset,
    *,
    bins: int = 10,
    folds: int = 10,
    seed: int = 0,
    embedding_columns: Sequence[str] = PAIR_EMBEDDING_COLUMNS,
    similarity_column: str = "similarity",
    group_column: str | None = PROMPT,
    C: float = 1.0,  # noqa: N803
    confidence: float = 0.95,
    bootstrap: int = 2000,
) -> AgreementCurve:
    """Agreement of the human label with a cross-fitted linear reward, per similarity bin (deciles).

    Prompts are dealt into ``folds`` seeded folds; each pair is predicted by the reward of
    :func:`~real_hub.real.learner.fit_reward` fit on the other folds. Pairs are sorted by similarity and
    cut into ``bins`` bins of equal size (ties by row). Inputs as for :func:`~real_hub.budget_curve`.
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ConfigError(f"bins must be an integer of at least 2, got {bins!r}")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"folds must be an integer of at least 2, got {folds!r}")
    feats = pair_features(
        pairs,
        embedding_columns=embedding_columns,
        similarity_column=similarity_column,
        group_column=group_column,
    )
    if feats.n_groups < folds or len(feats) < bins:
        raise ConfigError(
            f"agreement_by_similarity needs at least {folds} prompts and {bins} pairs, found "
            f"{feats.n_groups} prompts and {len(feats)} pairs"
        )
    rng = np.random.default_rng(seed)
    fold_of_group = np.empty(feats.n_groups, dtype=np.int64)
    fold_of_group[rng.permutation(feats.n_groups)] = np.arange(feats.n_groups) % folds
    fold = fold_of_group[feats.groups]
    margin = np.empty(len(feats))
    agree = np.empty(len(feats), dtype=bool)
    for k in range(folds):
        held = fold == k
        w = fit_reward(feats.difference[~held], C=C)
        margin[held] = feats.difference[held] @ w
        agree[held] = agrees(w, feats.difference[held])
    x, y = feats.similarity, agree.astype(np.float64)
    rows = []
    for i, idx in enumerate(np.array_split(np.argsort(x, kind="stable"), bins)):
        low, high = wilson(int(agree[idx].sum()), len(idx), confidence)
        rows.append(
            AgreementBin(
                bin=i + 1,
                pairs=len(idx),
                similarity_min=float(x[idx].min()),
                similarity_mean=float(x[idx].mean()),
                similarity_max=float(x[idx].max()),
                agreement=float(y[idx].mean()),
                low=low,
                high=high,
                mean_abs_margin=float(np.abs(margin[idx]).mean()),
            )
        )
    stats = np.zeros((feats.n_groups, 5))
    np.add.at(stats, feats.groups, np.stack([np.ones_like(x), x, y, x * x, x * y], axis=1))
    point = float(_slope(np.ones((1, feats.n_groups)), stats)[0])
    draws = rng.multinomial(feats.n_groups, np.full(feats.n_groups, 1 / feats.n_groups), size=bootstrap)
    slopes = _slope(draws.astype(np.float64), stats)
    low, high = np.percentile(slopes, [50 * (1 - confidence), 50 * (1 + confidence)])
    return AgreementCurve(
        bins=rows,
        slope=Estimate(point, float(low), float(high)),
        agreement=float(y.mean()),
        pairs=len(feats),
        prompts=feats.n_groups,
        folds=folds,
        seed=seed,
        C=float(C),
        confidence=float(confidence),
    )


__all__ = ["AgreementBin", "AgreementCurve", "agreement_by_similarity"]
