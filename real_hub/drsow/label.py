"""Dr.SoW labelling: preference pairs from rewards.

Two processors, both for ``ds.map(..., batched=True, remove_columns=ds.column_names)`` (they drop
the rows they abstain on, so the output has its own length):

- :class:`OrientByReward` reads **pairs** with a reward per side (``chosen_reward``,
  ``rejected_reward``, e.g. from ``DensityRatioReward``) and orients each pair by reward: when the
  rejected side has the higher reward, ``chosen``/``rejected`` and every paired provenance column
  (``chosen_X``/``rejected_X``, and names with ``chosen``/``rejected`` as a ``_``-separated word such
  as ``ref_chosen_logps``) are swapped. It adds ``margin`` (chosen reward minus rejected reward, >= 0)
  and ``flipped`` (the reward disagreed with the given label).
- :class:`PairsFromRewards` reads **candidates** (``prompt``, ``responses``, ``rewards``, optional
  ``scores``) and builds one pair per prompt, ``best-vs-worst`` or ``best-vs-random`` (the best
  response against one other drawn uniformly, seeded per row by a hash of its content, so the draw does
  not depend on batch size, order or process), as in the Dr.SoW paper.

Abstaining and skipping are counted, never silent. Reasons: ``tie`` (equal rewards: no preference),
``abstain_low_margin`` (margin below ``min_margin``), ``missing_reward`` (a reward is None or NaN,
e.g. a row the reward model could not score), ``fewer_than_two_responses`` and ``tied_rewards`` (every
distinct response of a candidates row has the same reward). A reward that is not a number, or is
infinite, is a :class:`RowError` naming the row: it signals a broken computation, not a missing one.
:func:`label_pairs` runs the right processor over a dataset and returns a :class:`LabelReport`.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, Features, Json, Value

from ..arrays import column_names, python_column
from ..errors import ColumnError, ConfigError, RowError
from ..mapping import map_and_count
from ..processor import EmittedRows, Processor, warn_skipped_once
from ..reporting import summarize
from ..schema import (
    FEWER_THAN_TWO_RESPONSES,
    LOW_MARGIN,
    MISSING_REWARD,
    REWARD_PAIR_COLUMNS,
    SKIP_REASON,
    TIE,
    TIED_REWARDS,
    passthrough_features,
    passthrough_values,
    reward_pair_features,
)
from ..seeding import random_other, row_key
from ..validate import (
    check_list,
    check_number,
    check_prompt,
    check_response,
    check_text_list,
    require_columns,
    row_label,
)

logger = logging.getLogger(__name__)

SKIP_HINT = "label_pairs() returns a report of every skip, or map with {name}(..., keep_skipped=True)"

MODES = ("best-vs-worst", "best-vs-random")
_WORD = re.compile(r"(?<![A-Za-z0-9])chosen(?![A-Za-z0-9])")


def _check_margin(min_margin: Any) -> float:
    if isinstance(min_margin, bool) or not isinstance(min_margin, (int, float)) or not min_margin >= 0:
        raise ConfigError(f"min_margin must be a number >= 0, got {min_margin!r}")
    if math.isinf(min_margin):
        raise ConfigError("min_margin must be finite")
    return float(min_margin)


def _reward(value: Any, *, row: int | str, column: str) -> float | None:
    """A reward as float; None for None/NaN (a counted skip); RowError for non-numbers and infinities."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise RowError(
            f"expected a reward (a number), found {type(value).__name__} {value!r}", row=row, column=column
        )
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        raise RowError(f"expected a finite reward, found {value}", row=row, column=column)
    return value


def _skip_reason(margin: float, min_margin: float) -> str | None:
    if margin == 0:
        return TIE
    if margin < min_margin:
        return LOW_MARGIN
    return None


def paired_columns(names: Sequence[str]) -> list[tuple[str, str]]:
    """The ``(chosen-side, rejected-side)`` column pairs of ``names`` that swap together.

    A column pairs with the one whose name has the word ``chosen`` replaced by ``rejected``:
    ``chosen``/``rejected``, ``chosen_score``/``rejected_score``, ``ref_chosen_logps``/``ref_rejected_logps``.
    """
    present = set(names)
    pairs = []
    for name in names:
        if _WORD.search(name):
            other = _WORD.sub("rejected", name)
            if other in present and other != name:
                pairs.append((name, other))
    return pairs


# ----------------------------------------------------------------------------------------------
# Pairs: orientation by reward


class OrientByReward(Processor):
    """Orient preference pairs by their rewards (chosen = higher), add ``margin`` and ``flipped``.

    Every input column is carried over (swapped where it belongs to a side), so map with
    ``remove_columns=ds.column_names``. An existing ``margin``/``flipped`` column is replaced.

    Args:
        min_margin: Pairs whose margin is below it abstain (not emitted, counted as ``abstain_low_margin``);
            equal rewards always abstain as ``tie``.
        chosen_reward_column: Reward of the ``chosen`` side.
        rejected_reward_column: Reward of the ``rejected`` side.
        keep_skipped: Also emit the skipped pairs (unchanged, ``margin``/``flipped`` None) with a
            ``skip_reason`` column, which is None on emitted pairs.
    """

    adds_columns = False

    def __init__(
        self,
        min_margin: float = 0.0,
        *,
        chosen_reward_column: str = "chosen_reward",
        rejected_reward_column: str = "rejected_reward",
        keep_skipped: bool = False,
    ) -> None:
        self.min_margin = _check_margin(min_margin)
        self.chosen_reward_column = chosen_reward_column
        self.rejected_reward_column = rejected_reward_column
        self.keep_skipped = bool(keep_skipped)

    def _swaps(self, names: Sequence[str]) -> list[tuple[str, str]]:
        swaps = paired_columns(names)
        rewards = (self.chosen_reward_column, self.rejected_reward_column)
        if rewards not in swaps:
            swaps.append(rewards)
        return swaps

    def process(self, batch: dict[str, list], indices: list[int] | None = None) -> dict[str, list]:
        """Return the oriented pairs (all input columns, plus ``margin`` and ``flipped``)."""
        names = column_names(batch)
        require_columns(
            names,
            ["chosen", "rejected", self.chosen_reward_column, self.rejected_reward_column],
            hint="OrientByReward expects pairs with a reward per side, e.g. from DensityRatioReward",
        )
        columns = {n: python_column(batch, n) for n in names if n not in ("margin", "flipped", SKIP_REASON)}
        chosen_r = columns[self.chosen_reward_column]
        rejected_r = columns[self.rejected_reward_column]
        kept: list[int] = []
        flip: list[bool] = []
        margins: list[float | None] = []
        reasons: list[str | None] = []
        skipped: Counter[str] = Counter()
        for i, (a, b) in enumerate(zip(chosen_r, rejected_r, strict=True)):
            label = row_label(i, indices)
            for side in ("chosen", "rejected"):
                check_response(columns[side][i], row=label, column=side)
            ra = _reward(a, row=label, column=self.chosen_reward_column)
            rb = _reward(b, row=label, column=self.rejected_reward_column)
            if ra is None or rb is None:
                reason: str | None = MISSING_REWARD
                margin = None
            else:
                margin = abs(ra - rb)
                reason = _skip_reason(margin, self.min_margin)
            if reason is not None:
                skipped[reason] += 1
                if not self.keep_skipped:
                    continue
            kept.append(i)
            flip.append(reason is None and rb > ra)  # type: ignore[operator]
            margins.append(None if reason is not None else margin)
            reasons.append(reason)
        out = {n: [values[i] for i in kept] for n, values in columns.items()}
        for left, right in self._swaps(names):
            a_values, b_values = out[left], out[right]
            out[left] = [b if f else a for a, b, f in zip(a_values, b_values, flip, strict=True)]
            out[right] = [a if f else b for a, b, f in zip(a_values, b_values, flip, strict=True)]
        out["margin"] = margins
        out["flipped"] = [f if r is None else None for f, r in zip(flip, reasons, strict=True)]
        if self.keep_skipped:
            out[SKIP_REASON] = reasons
        if skipped and not self.keep_skipped:
            warn_skipped_once(self, skipped, len(chosen_r), SKIP_HINT.format(name="OrientByReward"))
        elif skipped:
            logger.debug("OrientByReward skipped %s in a batch of %d pairs", dict(skipped), len(chosen_r))
        return out

    def output_features(self, input_features: Features) -> Features:
        """The input features plus ``margin`` (float64), ``flipped`` (bool) and, if kept, ``skip_reason``."""
        features = Features(
            {k: v for k, v in input_features.items() if k not in ("margin", "flipped", SKIP_REASON)}
        )
        for left, right in self._swaps(list(features)):
            if left in features and right in features and features[left] != features[right]:
                raise ColumnError(
                    f"columns {left!r} and {right!r} swap with each other: expected one type, found"
                    f" {features[left]} and {features[right]}; cast one to the other's type first"
                )
        features["margin"] = Value("float64")
        features["flipped"] = Value("bool")
        if self.keep_skipped:
            features[SKIP_REASON] = Value("string")
        return features


# ----------------------------------------------------------------------------------------------
# Candidates: best-vs-worst, best-vs-random


class PairsFromRewards(Processor):
    """One preference pair per candidates row, from a reward per response.

    Only the first copy of a repeated response text is considered. The best response is the one with the
    highest reward and the worst the lowest, the lowest index winning ties. ``best-vs-random`` pairs the
    best with one of the other distinct responses drawn uniformly: position ``splitmix64(key + gamma) % m``
    of the ``m`` others in index order, where ``key`` is the row's 64-bit blake2b hash of ``[seed, prompt,
    responses]`` (see :func:`real_hub.seeding.row_key`).

    Output columns: ``prompt``, ``chosen``, ``rejected``, ``margin``, ``chosen_reward``,
    ``rejected_reward``, ``chosen_index``, ``rejected_index`` (positions in ``responses``),
    ``chosen_score``/``rejected_score`` (from ``scores``, None without), ``strategy`` (the mode), and the
    input's scalar columns (and ``source_id``) carried over. Map with ``remove_columns=ds.column_names``.

    Args:
        mode: ``best-vs-worst`` or ``best-vs-random``.
        min_margin: Pairs whose margin is below it abstain (counted as ``abstain_low_margin``).
        seed: Seed of ``best-vs-random``.
        responses_column: Column with the responses (list of strings).
        rewards_column: Column with one reward per response.
        scores_column: Optional column with one score per response (carried into the pair).
        keep_skipped: Also emit one row per skipped prompt, with its ``skip_reason``.
    """

    adds_columns = False

    def __init__(
        self,
        mode: str = "best-vs-worst",
        *,
        min_margin: float = 0.0,
        seed: int = 0,
        responses_column: str = "responses",
        rewards_column: str = "rewards",
        scores_column: str = "scores",
        keep_skipped: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}: expected one of {', '.join(map(repr, MODES))}")
        self.mode = mode
        self.min_margin = _check_margin(min_margin)
        self.seed = int(seed)
        self.responses_column = responses_column
        self.rewards_column = rewards_column
        self.scores_column = scores_column
        self.keep_skipped = bool(keep_skipped)

    def _consumed(self) -> set[str]:
        return {"prompt", self.responses_column, self.rewards_column, self.scores_column, SKIP_REASON}

    def _list(self, value: Any, n: int, *, row: int | str, column: str) -> list[Any]:
        values = check_list(value, row=row, column=column, what=f"a list of one value per response ({n})")
        if len(values) != n:
            raise RowError(
                f"expected one value per response ({n}), found {len(values)} values", row=row, column=column
            )
        return values

    def _pick(
        self, prompt: Any, texts: list[str], rewards: list[float | None], label: int | str
    ) -> tuple[int, int, float] | str:
        """(chosen position, rejected position, margin) or a skip reason."""
        first: dict[str, int] = {}
        for j, text in enumerate(texts):
            first.setdefault(text, j)
        keep = list(first.values())
        if len(keep) < 2:
            return FEWER_THAN_TWO_RESPONSES
        values = [_reward(rewards[j], row=label, column=f"{self.rewards_column}[{j}]") for j in keep]
        if any(v is None for v in values):
            return MISSING_REWARD
        best = max(range(len(keep)), key=lambda p: (values[p], -p))
        worst = min(range(len(keep)), key=lambda p: (values[p], p))
        if values[best] == values[worst]:
            return TIED_REWARDS
        if self.mode == "best-vs-worst":
            other = worst
        else:
            others = [p for p in range(len(keep)) if p != best]
            other = others[random_other(row_key(self.seed, prompt, texts), len(others))]
        margin = values[best] - values[other]  # type: ignore[operator]
        reason = _skip_reason(margin, self.min_margin)
        return reason if reason is not None else (keep[best], keep[other], margin)

    def process(self, batch: dict[str, list], indices: list[int] | None = None) -> dict[str, list]:
        """Return one pair row per prompt that gives a pair (plus skipped prompts with ``keep_skipped``)."""
        names = column_names(batch)
        require_columns(
            names,
            ["prompt", self.responses_column, self.rewards_column],
            hint="PairsFromRewards expects candidates rows (prompt, responses) with a reward per response,"
            " e.g. from DensityRatioReward",
        )
        prompts = python_column(batch, "prompt")
        responses = python_column(batch, self.responses_column)
        rewards = python_column(batch, self.rewards_column)
        scores = (
            python_column(batch, self.scores_column) if self.scores_column in names else [None] * len(prompts)
        )
        carried = passthrough_values(batch, self._consumed(), REWARD_PAIR_COLUMNS)
        out = EmittedRows(REWARD_PAIR_COLUMNS, carried, keep_skipped=self.keep_skipped)
        for i, prompt in enumerate(prompts):
            label = row_label(i, indices)
            check_prompt(prompt, row=label)
            texts = check_text_list(responses[i], row=label, column=self.responses_column)
            if rewards[i] is None:
                picked: tuple[int, int, float] | str = MISSING_REWARD
            else:
                row_rewards = self._list(rewards[i], len(texts), row=label, column=self.rewards_column)
                picked = self._pick(prompt, texts, row_rewards, label)
            row_scores = scores[i]
            if row_scores is not None:
                row_scores = self._list(row_scores, len(texts), row=label, column=self.scores_column)
                for j, score in enumerate(row_scores):
                    check_number(score, row=label, column=f"{self.scores_column}[{j}]", optional=True)
            if isinstance(picked, str):
                out.skip(i, picked, {"prompt": prompt, "strategy": self.mode})
            else:
                a, b, margin = picked
                values = {
                    "prompt": prompt,
                    "chosen": texts[a],
                    "rejected": texts[b],
                    "margin": margin,
                    "chosen_reward": float(row_rewards[a]),
                    "rejected_reward": float(row_rewards[b]),
                    "chosen_index": a,
                    "rejected_index": b,
                    "chosen_score": None
                    if row_scores is None or row_scores[a] is None
                    else float(row_scores[a]),
                    "rejected_score": None
                    if row_scores is None or row_scores[b] is None
                    else float(row_scores[b]),
                    "strategy": self.mode,
                }
                out.emit(i, values)
        hint = SKIP_HINT.format(name="PairsFromRewards")
        return out.finish("PairsFromRewards", len(prompts), processor=self, hint=hint)

    def output_features(self, input_features: Features | None = None) -> Features:
        """Features of the output rows; pass the input's features to type ``prompt`` and carried columns."""
        given = input_features or Features()
        features = reward_pair_features(given.get("prompt"))
        return passthrough_features(features, given, self._consumed(), self.keep_skipped)


# ----------------------------------------------------------------------------------------------
# Dataset level


@dataclass
class LabelReport:
    """What :func:`label_pairs` did: rows in, pairs out, skipped rows by reason, flips and margins.

    ``mode`` is ``orient`` for pairs input, else the candidates mode. ``flipped`` counts emitted pairs
    whose reward disagreed with the given label (pairs input only; None for candidates). ``margin``
    summarises the emitted pairs' margins (count, min, mean, median, max).
    """

    mode: str
    rows_in: int
    pairs_out: int
    skipped: dict[str, int] = field(default_factory=dict)
    flipped: int | None = None
    margin: dict[str, float] = field(default_factory=dict)
    min_margin: float = 0.0
    seed: int | None = None

    @property
    def n_skipped(self) -> int:
        """Total number of rows that gave no pair."""
        return sum(self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary, ``n_skipped`` included."""
        return {**asdict(self), "n_skipped": self.n_skipped}


def _check_json_sides(dataset: Dataset, processor: OrientByReward) -> None:
    """Name the row of a ``Json`` (mixed-type) column that breaks a swap: a reward or a response."""
    checks = {
        processor.chosen_reward_column: _reward,
        processor.rejected_reward_column: _reward,
        "chosen": check_response,
        "rejected": check_response,
    }
    for column, check in checks.items():
        if column in dataset.column_names and isinstance(dataset.features[column], Json):
            for i, value in enumerate(dataset[column]):
                check(value, row=i, column=column)


def label_pairs(
    dataset: Dataset,
    mode: str = "best-vs-worst",
    *,
    min_margin: float = 0.0,
    seed: int = 0,
    batch_size: int = 1000,
    num_proc: int | None = None,
    **options: Any,
) -> tuple[Dataset, LabelReport]:
    """Label a rewarded dataset: orient pairs, or build pairs from candidates; count what abstained.

    Pairs (``chosen`` and ``rejected`` columns) go through :class:`OrientByReward` and ``mode`` is not
    used; candidates (a responses column) through :class:`PairsFromRewards` with ``mode``.

    Args:
        dataset: Pairs with ``chosen_reward``/``rejected_reward`` or candidates with ``rewards``.
        mode: ``best-vs-worst`` or ``best-vs-random`` (candidates only).
        min_margin: Abstain below this margin.
        seed: Seed of ``best-vs-random``.
        batch_size: Rows per ``map`` batch.
        num_proc: Worker processes for ``map``.
        **options: Column names of the processor used (``chosen_reward_column``, ``rewards_column``, ...).

    Returns:
        The labelled pairs and a :class:`LabelReport`.
    """
    options.pop("keep_skipped", None)
    names = dataset.column_names
    processor: OrientByReward | PairsFromRewards
    if "chosen" in names and "rejected" in names:
        processor = OrientByReward(min_margin, keep_skipped=True, **options)
        _check_json_sides(dataset, processor)
        features = processor.output_features(dataset.features)
        label, report_seed = "orient", None
        require_columns(
            names,
            [processor.chosen_reward_column, processor.rejected_reward_column],
            hint="score the pairs first, e.g. with DensityRatioReward",
        )
    elif options.get("responses_column", "responses") in names:
        processor = PairsFromRewards(mode, min_margin=min_margin, seed=seed, keep_skipped=True, **options)
        features = processor.output_features(dataset.features)
        label, report_seed = processor.mode, (processor.seed if processor.mode == "best-vs-random" else None)
        require_columns(
            names,
            ["prompt", processor.rewards_column],
            hint="score the candidates first, e.g. with DensityRatioReward",
        )
    else:
        raise ColumnError.missing(
            ["chosen", "rejected"],
            names,
            hint="label_pairs expects pairs (chosen, rejected + a reward per side) or candidates (prompt,"
            " responses, rewards)",
        )
    pairs, skipped = map_and_count(
        dataset,
        processor,
        features=features,
        batch_size=batch_size,
        num_proc=num_proc,
        desc=f"Labelling pairs ({label})",
    )
    margins = pairs.with_format("arrow")["margin"].to_pylist() if len(pairs) else []
    flipped = None
    if label == "orient":
        flipped = int(pc.sum(pairs.with_format("arrow")["flipped"]).as_py() or 0) if len(pairs) else 0
    report = LabelReport(
        mode=label,
        rows_in=len(dataset),
        pairs_out=len(pairs),
        skipped=skipped,
        flipped=flipped,
        margin=summarize(margins),
        min_margin=processor.min_margin,
        seed=report_seed,
    )
    logger.info("Labelled %d pairs from %d rows (%s); skipped %s", len(pairs), len(dataset), label, skipped)
    return pairs, report


__all__ = ["MODES", "LabelReport", "OrientByReward", "PairsFromRewards", "label_pairs", "paired_columns"]
