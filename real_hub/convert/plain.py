"""Plain candidates (``prompt``, ``responses``, optional ``scores``): checked and normalised."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..errors import RowError
from ..schema import CANDIDATE_COLUMNS
from ..validate import describe, is_list, row_label
from .values import append_row, is_empty_prompt, new_columns, number_value, prompt_value, source_id_of


def candidates_batch_validate(
    batch: Mapping[str, list], indices: Sequence[int] | None = None
) -> dict[str, list]:
    """Check a batch of plain candidates (``prompt``, ``responses``, optional ``scores``) and normalise it.

    They are already in our shape, so bad values are errors, not skips: a None, empty or non-string prompt or
    response, no responses, a non-numeric score, or scores not one per response raise :class:`RowError`.
    """
    out = new_columns(CANDIDATE_COLUMNS)
    for i in range(len(batch["prompt"])):
        row = row_label(i, indices)
        prompt = prompt_value(batch["prompt"][i], row=row)
        if is_empty_prompt(prompt):
            raise RowError("expected a non-empty prompt, found an empty one", row=row, column="prompt")
        responses = batch["responses"][i]
        if not is_list(responses) or not len(responses):
            raise RowError(
                f"expected a non-empty list of strings, found {describe(responses)}",
                row=row,
                column="responses",
            )
        for j, text in enumerate(responses):
            if not isinstance(text, str) or not text.strip():
                raise RowError(
                    f"expected a non-empty string, found {describe(text)}", row=row, column=f"responses[{j}]"
                )
        scores = batch["scores"][i] if "scores" in batch else None
        if scores is not None:
            if not is_list(scores) or len(scores) != len(responses):
                found = f"{len(scores)} scores" if is_list(scores) else describe(scores)
                raise RowError(
                    f"expected one score per response ({len(responses)}), found {found}",
                    row=row,
                    column="scores",
                )
            scores = [
                number_value(s, row=row, column=f"scores[{j}]", optional=False) for j, s in enumerate(scores)
            ]
        values = {"prompt": prompt, "responses": list(responses), "scores": scores}
        values["source_id"] = source_id_of(batch, i, indices)
        append_row(out, values, None)
    return out
