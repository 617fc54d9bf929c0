"""UltraFeedback rows (an instruction and rated completions) into candidates."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import RowError
from ..schema import CANDIDATE_COLUMNS
from ..validate import describe, is_list, row_label
from .values import append_row, new_columns, number_value, text_value

#: UltraFeedback's rating scale (each aspect is rated 1 to 5, or "N/A").
RATING_MIN, RATING_MAX = 1, 5


def ultrafeedback_score(
    completion: Mapping[str, Any], *, row: int | str = "?", item: int = 0
) -> float | None:
    """Mean of a completion's fine-grained ``annotations[aspect]["Rating"]``, "N/A" ratings left out.

    This is UltraFeedback's own ``fine-grained_score`` (OpenBMB's ``calculate_average_rating``), the mean
    rating H4's ultrafeedback_binarized and Argilla's cleaned sets rank by; the stored ``fine-grained_score``
    is used when there are no ratings, and None is returned when there is neither.
    """
    if not isinstance(completion, Mapping):
        raise RowError(
            f"expected a dict, found {describe(completion)}", row=row, column=f"completions[{item}]"
        )
    ratings = []
    annotations = completion.get("annotations") or {}
    if not isinstance(annotations, Mapping):
        raise RowError(
            f"expected a dict of aspects, found {describe(annotations)}",
            row=row,
            column=f"completions[{item}].annotations",
        )
    for aspect, note in annotations.items():
        rating = note.get("Rating") if isinstance(note, Mapping) else None
        if rating is None or rating == "N/A":
            continue
        try:
            number = float(rating)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(rating, bool) or not math.isfinite(number) or not RATING_MIN <= number <= RATING_MAX:
            column = f"completions[{item}].annotations.{aspect}.Rating"
            raise RowError(
                f"expected a rating {RATING_MIN}-{RATING_MAX} (UltraFeedback's scale) or 'N/A', "
                f"found {describe(rating)}",
                row=row,
                column=column,
            ) from None
        ratings.append(number)
    if ratings:
        return sum(ratings) / len(ratings)
    stored = completion.get("fine-grained_score")
    return number_value(stored, row=row, column=f"completions[{item}].fine-grained_score")


def ultrafeedback_batch_to_candidates(
    batch: Mapping[str, list], indices: Sequence[int] | None = None
) -> dict[str, list]:
    """Turn a batch of UltraFeedback rows into candidates (prompt = ``instruction``).

    Scores are :func:`ultrafeedback_score`. Completions with an empty response or no rating are dropped and
    noted (``empty_response``, ``unrated_response``); a row left with no response is skipped
    (``no_responses``), as is an empty instruction (``empty_prompt``). ``source_id`` is the row index.
    """
    out = new_columns(CANDIDATE_COLUMNS, notes=True)
    for i in range(len(batch["instruction"])):
        row = row_label(i, indices)
        prompt = text_value(batch["instruction"][i], row=row, column="instruction")
        completions = batch["completions"][i]
        if not is_list(completions):
            raise RowError(
                f"expected a list of completions, found {describe(completions)}",
                row=row,
                column="completions",
            )
        responses, scores, notes = [], [], []
        for j, completion in enumerate(completions):
            if not isinstance(completion, Mapping):
                raise RowError(
                    f"expected a dict, found {describe(completion)}", row=row, column=f"completions[{j}]"
                )
            text = text_value(completion.get("response"), row=row, column=f"completions[{j}].response")
            score = ultrafeedback_score(completion, row=row, item=j)
            if not text.strip():
                notes.append("empty_response")
            elif score is None:
                notes.append("unrated_response")
            else:
                responses.append(text)
                scores.append(score)
        skip = "empty_prompt" if not prompt.strip() else None if responses else "no_responses"
        sid = None if indices is None else str(indices[i])
        values = {"prompt": prompt, "responses": responses, "scores": scores, "source_id": sid}
        append_row(out, values, skip, notes)
    return out
