"""The canonical column names and the ``datasets`` features of the pairs and candidates shapes."""

from __future__ import annotations

from typing import Any

from datasets import Features, LargeList, List, Value

PAIR_COLUMNS = ("prompt", "chosen", "rejected", "chosen_score", "rejected_score", "source_id")
CANDIDATE_COLUMNS = ("prompt", "responses", "scores", "source_id")
SKIP = "_skip"
NOTES = "_notes"


def _message_feature() -> dict[str, Value]:
    return {"role": Value("string"), "content": Value("string")}


def _prompt_feature(conversational: bool) -> Any:
    return List(_message_feature()) if conversational else Value("string")


def pair_features(conversational: bool) -> Features:
    """Features of the canonical pairs shape (prompt as messages when ``conversational``)."""
    return Features(
        {
            "prompt": _prompt_feature(conversational),
            "chosen": Value("string"),
            "rejected": Value("string"),
            "chosen_score": Value("float64"),
            "rejected_score": Value("float64"),
            "source_id": Value("string"),
        }
    )


def candidate_features(conversational: bool) -> Features:
    """Features of the canonical candidates shape (prompt as messages when ``conversational``)."""
    return Features(
        {
            "prompt": _prompt_feature(conversational),
            "responses": List(Value("string")),
            "scores": List(Value("float64")),
            "source_id": Value("string"),
        }
    )


def is_messages_feature(feature: Any) -> bool:
    """Whether a feature is a list of chat messages (structs with a ``role``)."""
    return (
        isinstance(feature, (List, LargeList))
        and isinstance(feature.feature, dict)
        and "role" in feature.feature
    )


def _with_marks(features: Features, notes: bool = False) -> Features:
    marks = {SKIP: Value("string")}
    if notes:
        marks[NOTES] = List(Value("string"))
    return Features({**features, **marks})
