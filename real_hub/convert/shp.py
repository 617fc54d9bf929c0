"""SHP / SHP-2 pair rows grouped by post into candidates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import RowError
from ..schema import CANDIDATE_COLUMNS
from ..validate import describe, row_label
from .values import append_row, new_columns, number_value, text_value


class ShpGroups:
    """Groups SHP pair rows into one candidates row per ``post_id`` (order of first appearance)."""

    def __init__(self) -> None:
        self.posts: dict[str, dict[str, Any]] = {}

    def add(self, batch: Mapping[str, list], indices: Sequence[int] | None = None) -> ShpGroups:
        """Add a batch of SHP rows (``indices``: their dataset rows, for errors); returns ``self``."""
        ids = {side: batch.get(f"c_root_id_{side}") for side in "AB"}
        for i in range(len(batch["post_id"])):
            row = row_label(i, indices)
            post_id = batch["post_id"][i]
            if isinstance(post_id, bool) or not isinstance(post_id, (str, int)) or post_id == "":
                raise RowError(
                    f"expected a post id (a string or an integer), found {describe(post_id)}",
                    row=row,
                    column="post_id",
                )
            history = text_value(batch["history"][i], row=row, column="history")
            post = self.posts.get(str(post_id))
            if post is None:
                post = self.posts[str(post_id)] = {"prompt": history, "notes": [], "comments": {}}
                post.update(by_text={}, empty=set(), inconsistent=set())
            elif history != post["prompt"]:
                post["notes"].append("inconsistent_history")  # the first history is kept
            for side in "AB":
                text = text_value(batch[f"human_ref_{side}"][i], row=row, column=f"human_ref_{side}")
                score = number_value(
                    batch[f"score_{side}"][i], row=row, column=f"score_{side}", optional=False
                )
                cid = ids[side][i] if ids[side] is not None else None
                key = ("id", cid) if cid else post["by_text"].get(text, ("text", text))
                if not text.strip():
                    post["empty"].add(key)
                elif key not in post["comments"]:
                    post["comments"][key] = [text, score]
                    post["by_text"].setdefault(text, key)
                elif post["comments"][key][1] != score:
                    post["inconsistent"].add(key)
                    post["comments"][key][1] = max(post["comments"][key][1], score)
        return self

    def columns(self) -> dict[str, list]:
        """One candidates row per post, in order of first appearance, with skip marks and notes."""
        out = new_columns(CANDIDATE_COLUMNS, notes=True)
        for post_id, post in self.posts.items():
            comments = list(post["comments"].values())
            notes = [*post["notes"], *["empty_response"] * len(post["empty"])]
            notes += ["inconsistent_score"] * len(post["inconsistent"])
            skip = "empty_prompt" if not post["prompt"].strip() else None if comments else "no_responses"
            values = {
                "prompt": post["prompt"],
                "responses": [text for text, _ in comments],
                "scores": [score for _, score in comments],
                "source_id": post_id,
            }
            append_row(out, values, skip, notes)
        return out


def shp_batch_to_candidates(
    batch: Mapping[str, list], indices: Sequence[int] | None = None
) -> dict[str, list]:
    """Group a batch of SHP / SHP-2 rows by ``post_id`` into candidates (within this batch only).

    Prompt = ``history``; responses = the distinct comments (by ``c_root_id_A``/``_B``, else by text) in
    order of first appearance; scores = their votes (``score_A``/``score_B``); ``source_id`` = the post id. A
    comment seen with different scores keeps the highest (noted ``inconsistent_score``); empty comments are
    dropped (noted ``empty_response``); a post with no comment left is skipped (``no_responses``).
    :func:`to_candidates` groups over the whole dataset.
    """
    return ShpGroups().add(batch, indices).columns()
