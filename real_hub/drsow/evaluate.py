"""Evaluating rewards: RewardBench-style pair accuracy, and best-of-N against gold scores.

- :func:`reward_accuracy`: on pairs with a reward per side, a pair is correct when the chosen
  reward is strictly higher than the rejected one (a tie counts as wrong, as in RewardBench), overall
  and per group of any column (``subset``, ``domain``, ...).
- :func:`best_of_n`: on candidates with a reward and a gold score per response, pick the response
  with the highest reward (lowest index on ties) and compare its gold score with the oracle's (the best
  gold score) and with a uniformly random pick (its exact expected value: the mean gold score).

Every row counts: a missing or ragged value is a :class:`RowError` naming the row, never skipped.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from datasets import Dataset

from ..errors import RowError
from ..validate import require_columns

logger = logging.getLogger(__name__)


def _number(value: Any, *, row: int, column: str) -> float:
    if value is None:
        raise RowError("expected a number, found None", row=row, column=column)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowError(f"expected a number, found {type(value).__name__} {value!r}", row=row, column=column)
    value = float(value)
    if math.isnan(value):
        raise RowError("expected a number, found NaN", row=row, column=column)
    return value


def _columns(dataset: Dataset, names: list[str]) -> dict[str, list[Any]]:
    table = dataset.with_format("arrow")
    return {n: table[n].to_pylist() for n in names}


# ----------------------------------------------------------------------------------------------
# Pair accuracy


@dataclass
class GroupAccuracy:
    """Accuracy of one group of pairs."""

    group: str
    count: int
    correct: int
    ties: int

    @property
    def accuracy(self) -> float | None:
        """``correct / count`` (None for an empty group)."""
        return self.correct / self.count if self.count else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary, ``accuracy`` included."""
        return {**asdict(self), "accuracy": self.accuracy}


@dataclass
class AccuracyReport:
    """What :func:`reward_accuracy` found: overall and per group (sorted by group name)."""

    count: int
    correct: int
    ties: int
    chosen_column: str
    rejected_column: str
    by: str | None = None
    groups: list[GroupAccuracy] = field(default_factory=list)

    @property
    def accuracy(self) -> float | None:
        """``correct / count`` (None when there are no pairs)."""
        return self.correct / self.count if self.count else None

    def rows(self) -> list[dict[str, Any]]:
        """One table row per group, then ``all``."""
        overall = GroupAccuracy("all", self.count, self.correct, self.ties)
        return [g.to_dict() for g in (*self.groups, overall)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "metric": "accuracy",
            "count": self.count,
            "correct": self.correct,
            "ties": self.ties,
            "accuracy": self.accuracy,
            "chosen_column": self.chosen_column,
            "rejected_column": self.rejected_column,
            "by": self.by,
            "groups": [g.to_dict() for g in self.groups],
        }


def reward_accuracy(
    dataset: Dataset,
    *,
    chosen_column: str = "chosen_reward",
    rejected_column: str = "rejected_reward",
    by: str | None = None,
) -> AccuracyReport:
    """RewardBench-style accuracy: the share of pairs whose chosen reward is strictly higher.

    Args:
        dataset: Pairs with a reward per side.
        chosen_column: Reward of the preferred response.
        rejected_column: Reward of the other response.
        by: Optional column to group by (its values, as strings, name the groups).

    Returns:
        An :class:`AccuracyReport`; equal rewards count as wrong (and are counted in ``ties``).
    """
    wanted = [chosen_column, rejected_column, *([by] if by else [])]
    require_columns(dataset.column_names, wanted, hint="score the pairs first, e.g. with DensityRatioReward")
    values = _columns(dataset, wanted)
    tallies: dict[str, list[int]] = {}
    count = correct = ties = 0
    for i, (a, b) in enumerate(zip(values[chosen_column], values[rejected_column], strict=True)):
        ra = _number(a, row=i, column=chosen_column)
        rb = _number(b, row=i, column=rejected_column)
        hit, tie = int(ra > rb), int(ra == rb)
        count, correct, ties = count + 1, correct + hit, ties + tie
        if by:
            tally = tallies.setdefault(str(values[by][i]), [0, 0, 0])
            tally[0] += 1
            tally[1] += hit
            tally[2] += tie
    groups = [GroupAccuracy(name, *t) for name, t in sorted(tallies.items())]
    report = AccuracyReport(count, correct, ties, chosen_column, rejected_column, by, groups)
    logger.info("Reward accuracy %s over %d pairs (%d ties)", report.accuracy, count, ties)
    return report


# ----------------------------------------------------------------------------------------------
# Best-of-N


@dataclass
class BestOfNReport:
    """What :func:`best_of_n` found, averaged over prompts.

    ``mean_gold_picked``: mean gold score of the reward's pick. ``mean_gold_oracle``: of the best gold
    response. ``mean_gold_random``: of a uniformly random pick (exactly, the mean of each prompt's gold
    scores). ``win_rate_vs_random``: probability that the pick's gold score beats a uniformly random
    response of the same prompt (the pick itself included), a tie counting one half. ``hit_rate``: share
    of prompts whose pick has the best gold score (gold ties count as hits).
    """

    prompts: int
    responses: int
    mean_gold_picked: float | None
    mean_gold_oracle: float | None
    mean_gold_random: float | None
    win_rate_vs_random: float | None
    hit_rate: float | None
    rewards_column: str = "rewards"
    gold_column: str = "scores"

    def rows(self) -> list[dict[str, Any]]:
        """The metrics as table rows (metric, value)."""
        names = ("mean_gold_picked", "mean_gold_oracle", "mean_gold_random", "win_rate_vs_random", "hit_rate")
        return [{"metric": n, "value": getattr(self, n)} for n in names]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {"metric": "best_of_n", **asdict(self)}


def _number_list(value: Any, *, row: int, column: str, n: int | None = None) -> list[float]:
    if not isinstance(value, (list, tuple)):
        found = "None" if value is None else type(value).__name__
        raise RowError(f"expected a list of numbers, found {found}", row=row, column=column)
    if n is None and not value:
        raise RowError("expected at least one value, found an empty list", row=row, column=column)
    if n is not None and len(value) != n:
        raise RowError(
            f"expected one value per reward ({n}), found {len(value)} values", row=row, column=column
        )
    return [_number(v, row=row, column=f"{column}[{j}]") for j, v in enumerate(value)]


def best_of_n(
    dataset: Dataset, *, rewards_column: str = "rewards", gold_column: str = "scores"
) -> BestOfNReport:
    """Best-of-N by reward, judged by gold scores (see :class:`BestOfNReport` for the metrics).

    Args:
        dataset: Candidates rows with a reward and a gold score per response.
        rewards_column: Column with one reward per response.
        gold_column: Column with one gold score per response (human rating, a stronger judge).
    """
    require_columns(
        dataset.column_names,
        [rewards_column, gold_column],
        hint="best-of-N needs a reward and a gold score per response",
    )
    values = _columns(dataset, [rewards_column, gold_column])
    picked, oracle, random, wins, hits = [], [], [], [], []
    responses = 0
    for i, (r_row, g_row) in enumerate(zip(values[rewards_column], values[gold_column], strict=True)):
        rewards = _number_list(r_row, row=i, column=rewards_column)
        gold = _number_list(g_row, row=i, column=gold_column, n=len(rewards))
        pick = max(range(len(rewards)), key=lambda j: (rewards[j], -j))
        g = gold[pick]
        best = max(gold)
        n = len(gold)
        responses += n
        picked.append(g)
        oracle.append(best)
        random.append(sum(gold) / n)
        wins.append((sum(g > x for x in gold) + 0.5 * sum(g == x for x in gold)) / n)
        hits.append(float(g == best))

    def mean(xs: list[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    report = BestOfNReport(
        prompts=len(picked),
        responses=responses,
        mean_gold_picked=mean(picked),
        mean_gold_oracle=mean(oracle),
        mean_gold_random=mean(random),
        win_rate_vs_random=mean(wins),
        hit_rate=mean(hits),
        rewards_column=rewards_column,
        gold_column=gold_column,
    )
    logger.info("Best-of-N over %d prompts: hit rate %s", report.prompts, report.hit_rate)
    return report


__all__ = ["AccuracyReport", "BestOfNReport", "GroupAccuracy", "best_of_n", "reward_accuracy"]
