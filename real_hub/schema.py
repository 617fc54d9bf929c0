"""Every column name, skip reason and ``datasets`` feature of real-hub's data, in one place.

Shapes (see :mod:`real_hub.convert`):

- **pairs**: ``prompt`` (a string, or a list of chat messages), ``chosen``, ``rejected``, plus provenance;
- **candidates**: ``prompt``, ``responses`` (list of str), ``scores`` (list of float or None), ``source_id``.

Processors that emit rows (``SelectPairs``, ``PairsFromRewards``) declare their outputs here once, as
``Features``; their column tuples are derived from those, and the columns they carry over from the input
follow one pass-through rule (:func:`passthrough_features`, :func:`passthrough_values`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from datasets import ClassLabel, Features, LargeList, List, Value

from .arrays import column_names, is_scalar_column, python_column, raw_column

# ------------------------------------------------------------------------------------------ column names

PROMPT = "prompt"
CHOSEN = "chosen"
REJECTED = "rejected"
RESPONSES = "responses"
SCORES = "scores"
SOURCE_ID = "source_id"
STRATEGY = "strategy"
SIMILARITY = "similarity"
MARGIN = "margin"
DOMAIN = "domain"
#: The selected pair's prompt's candidate similarity matrix (``n x n`` cosines): the Space's heatmap.
CANDIDATE_SIMILARITY = "candidate_similarity"
#: What ``GenerateResponses`` adds besides ``responses``: per sample, and the generator's provenance.
GENERATED_TOKENS = "generated_tokens"
FINISH_REASONS = "finish_reasons"
GENERATOR = "generator"
GENERATOR_REVISION = "generator_revision"
GENERATION_PARAMS = "generation_params"
#: TRL's preference columns.
PREFERENCE_COLUMNS = (PROMPT, CHOSEN, REJECTED)
#: The two response columns of a pair.
PAIR_RESPONSE_COLUMNS = (CHOSEN, REJECTED)
#: Reference log-probs in TRL's names.
REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")
#: The column a processor built with ``keep_skipped=True`` adds: the reason, None for an emitted row.
SKIP_REASON = "skip_reason"
#: The marks the converters' batch functions add (removed by ``to_pairs``/``to_candidates``).
SKIP = "_skip"
NOTES = "_notes"


def embedding_column(column: str) -> str:
    """The embedding column of a response column: ``responses`` -> ``responses_embedding``."""
    return f"{column}_embedding"


#: The embedding columns of pairs and candidates (dropped from curated output unless asked to keep them).
EMBEDDING_COLUMNS = tuple(embedding_column(c) for c in (CHOSEN, REJECTED, RESPONSES))


# ------------------------------------------------------------------------------------------ skip reasons

# converters
EMPTY_PROMPT = "empty_prompt"
EMPTY_RESPONSE = "empty_response"
IDENTICAL_RESPONSES = "identical_responses"
PROMPT_MISMATCH = "prompt_mismatch"
NO_RESPONSES = "no_responses"
NO_ASSISTANT_TURN = "no_assistant_turn"
MULTI_TURN_COMPLETION = "multi_turn_completion"
# REAL selection
FEWER_THAN_TWO_RESPONSES = "fewer_than_two_responses"
TIED_SCORES = "tied_scores"
SINGLE_CLUSTER = "single_cluster"
# Dr.SoW labelling
TIE = "tie"
LOW_MARGIN = "abstain_low_margin"
MISSING_REWARD = "missing_reward"
TIED_REWARDS = "tied_rewards"

# ------------------------------------------------------------------------------------------------ features


def message_feature() -> dict[str, Value]:
    """One chat message: ``{"role": str, "content": str}``."""
    return {"role": Value("string"), "content": Value("string")}


def prompt_feature(conversational: bool) -> Any:
    """A prompt: a list of messages when ``conversational``, else a string."""
    return List(message_feature()) if conversational else Value("string")


def is_messages_feature(feature: Any) -> bool:
    """Whether a feature is a list of chat messages (structs with a ``role``)."""
    return (
        isinstance(feature, (List, LargeList))
        and isinstance(feature.feature, dict)
        and "role" in feature.feature
    )


def pair_features(conversational: bool) -> Features:
    """Features of the canonical pairs shape (prompt as messages when ``conversational``)."""
    return Features(
        {
            PROMPT: prompt_feature(conversational),
            CHOSEN: Value("string"),
            REJECTED: Value("string"),
            "chosen_score": Value("float64"),
            "rejected_score": Value("float64"),
            SOURCE_ID: Value("string"),
        }
    )


def candidate_features(conversational: bool) -> Features:
    """Features of the canonical candidates shape (prompt as messages when ``conversational``)."""
    return Features(
        {
            PROMPT: prompt_feature(conversational),
            RESPONSES: List(Value("string")),
            SCORES: List(Value("float64")),
            SOURCE_ID: Value("string"),
        }
    )


def selected_pair_features(prompt: Any = None) -> Features:
    """Features of the pairs ``SelectPairs`` emits (``prompt`` typed as in its input)."""
    return Features(
        {
            PROMPT: prompt if prompt is not None else Value("string"),
            CHOSEN: Value("string"),
            REJECTED: Value("string"),
            SIMILARITY: Value("float64"),
            STRATEGY: Value("string"),
            "chosen_score": Value("float64"),
            "rejected_score": Value("float64"),
            "chosen_index": Value("int64"),
            "rejected_index": Value("int64"),
            CANDIDATE_SIMILARITY: List(List(Value("float32"))),
        }
    )


def reward_pair_features(prompt: Any = None) -> Features:
    """Features of the pairs ``PairsFromRewards`` emits (``prompt`` typed as in its input)."""
    return Features(
        {
            PROMPT: prompt if prompt is not None else Value("string"),
            CHOSEN: Value("string"),
            REJECTED: Value("string"),
            MARGIN: Value("float64"),
            "chosen_reward": Value("float64"),
            "rejected_reward": Value("float64"),
            "chosen_index": Value("int64"),
            "rejected_index": Value("int64"),
            "chosen_score": Value("float64"),
            "rejected_score": Value("float64"),
            STRATEGY: Value("string"),
        }
    )


def generated_features() -> Features:
    """Features of the columns ``GenerateResponses`` adds: the candidates and their provenance."""
    return Features(
        {
            RESPONSES: List(Value("string")),
            GENERATED_TOKENS: List(Value("int64")),
            FINISH_REASONS: List(Value("string")),
            GENERATOR: Value("string"),
            GENERATOR_REVISION: Value("string"),
            GENERATION_PARAMS: Value("string"),
        }
    )


#: Columns of the canonical pairs and candidates shapes.
PAIR_COLUMNS = tuple(pair_features(False))
CANDIDATE_COLUMNS = tuple(candidate_features(False))
#: Columns of the pairs ``SelectPairs`` and ``PairsFromRewards`` emit (before carried-over columns).
SELECTED_PAIR_COLUMNS = tuple(selected_pair_features())
REWARD_PAIR_COLUMNS = tuple(reward_pair_features())


def with_marks(features: Features, notes: bool = False) -> Features:
    """``features`` plus the converters' ``_skip`` mark (and ``_notes`` when ``notes``)."""
    marks: dict[str, Any] = {SKIP: Value("string")}
    if notes:
        marks[NOTES] = List(Value("string"))
    return Features({**features, **marks})


# ------------------------------------------------------------------------------------ the pass-through rule
#
# A processor that emits its own rows (one per selected pair) carries over the input's scalar columns
# (strings, numbers: ids, domains, labels) and ``source_id``, except those it consumes or writes itself.
# List columns (responses, embeddings, scores) do not fit one pair and are dropped.


def passthrough_features(
    features: Features, given: Features, consumed: Iterable[str], keep_skipped: bool
) -> Features:
    """Add the input columns a row-emitting processor carries over to ``features``; returns ``features``.

    Plus ``skip_reason`` when the processor keeps skipped rows.
    """
    consumed = set(consumed)
    for name, feature in given.items():
        if name in consumed or name in features or name == SKIP_REASON:
            continue
        if name == SOURCE_ID or isinstance(feature, (Value, ClassLabel)):
            features[name] = feature
    if keep_skipped:
        features[SKIP_REASON] = Value("string")
    return features


def passthrough_values(batch: Any, consumed: Iterable[str], written: Iterable[str]) -> dict[str, list]:
    """The values of the columns of ``batch`` that a row-emitting processor carries over."""
    skip = set(consumed) | set(written) | {SKIP_REASON}
    return {
        name: python_column(batch, name)
        for name in column_names(batch)
        if name not in skip and (name == SOURCE_ID or is_scalar_column(raw_column(batch, name)))
    }
